//! Non-maximum suppression in the two flavours MTCNN uses.

/// Corner box `[x1, y1, x2, y2]`.
pub type BoxXyxy = [f32; 4];

/// How overlap is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// torchvision `nms`: intersection over union, areas `(x2 − x1)·(y2 − y1)` (continuous
    /// coordinates); a box is suppressed when its IoU with a kept box is `> threshold`.
    Union,
    /// The original MTCNN "Min" rule (facenet-pytorch `nms_numpy(..., 'Min')`): intersection over
    /// the smaller box, areas and widths with the inclusive-pixel `+1`; a box survives when its
    /// overlap is `≤ threshold`.
    Min,
}

/// Indices of the boxes kept, in descending score order (ties keep their input order).
pub fn nms(boxes: &[BoxXyxy], scores: &[f32], threshold: f32, overlap: Overlap) -> Vec<usize> {
    debug_assert_eq!(boxes.len(), scores.len());
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // Stable sort, highest score first (NaN scores sort last and are still considered).
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let plus = match overlap {
        Overlap::Union => 0.0f32,
        Overlap::Min => 1.0,
    };
    let area = |b: &BoxXyxy| (b[2] - b[0] + plus) * (b[3] - b[1] + plus);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = &boxes[i];
        let ai = area(bi);
        for &j in &order[pos + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = &boxes[j];
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0]) + plus).max(0.0);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1]) + plus).max(0.0);
            let inter = w * h;
            let suppress = match overlap {
                Overlap::Union => inter / (ai + area(bj) - inter) > threshold,
                // Kept only when `overlap <= threshold`: a NaN overlap suppresses, as numpy's filter.
                Overlap::Min => !matches!(
                    (inter / ai.min(area(bj))).partial_cmp(&threshold),
                    Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                ),
            };
            if suppress {
                suppressed[j] = true;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [20.0, 20.0, 30.0, 30.0],
        ];
        // IoU(0, 1) = 81 / 119 = 0.68.
        assert_eq!(nms(&boxes, &[0.9, 0.95, 0.5], 0.5, Overlap::Union), vec![1, 2]);
        assert_eq!(nms(&boxes, &[0.9, 0.95, 0.5], 0.7, Overlap::Union), vec![1, 0, 2]);
    }

    #[test]
    fn min_rule_suppresses_a_box_inside_another() {
        // A small box inside a large one: IoU 0.04 but overlap-over-min 1.
        let boxes = [[0.0, 0.0, 49.0, 49.0], [10.0, 10.0, 19.0, 19.0]];
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.7, Overlap::Union), vec![0, 1]);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.7, Overlap::Min), vec![0]);
    }

    #[test]
    fn empty_input() {
        assert!(nms(&[], &[], 0.5, Overlap::Union).is_empty());
    }
}
