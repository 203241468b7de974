//! The MTCNN cascade as facenet-pytorch 2.6.0 runs it (`detect_face`), step for step and in the
//! same `f32` arithmetic, so boxes and landmarks agree with it to a fraction of a pixel:
//!
//! 1. image pyramid from scale `12 / min_face_size` down by `factor` while the short side stays
//!    ≥ 12 px, each level area-resampled to `⌊h·s + 1⌋ × ⌊w·s + 1⌋`; P-Net proposes a 12 × 12
//!    window at stride 2 for every cell with face probability ≥ `thresholds[0]`; IoU-NMS 0.5 per
//!    level, 0.7 over all levels; box regression; squared (`rerec`);
//! 2. each candidate cropped (clipped to the image, not padded), area-resampled to 24 × 24,
//!    R-Net keeps probability > `thresholds[1]`; IoU-NMS 0.7; regression; squared;
//! 3. 48 × 48 crops through O-Net, probability > `thresholds[2]`, landmarks from its output,
//!    regression, then NMS 0.7 with the "Min" overlap;
//!
//! and finally, as `MTCNN.detect(select_largest=True)`, the faces ordered by box area, largest
//! first. One difference: a candidate whose clipped crop is empty (a box wholly outside the
//! image) is dropped here; facenet-pytorch skips its crop but keeps the box, which misaligns its
//! later rows.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{DetectError, Result};
use crate::nets::{ONet, PNet, RNet};
use crate::nms::{nms, BoxXyxy, Overlap};
use crate::resample::area_resample_into;

/// One detected face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in image pixels (may extend past the image border).
    pub bbox: [f32; 4],
    /// O-Net's face probability.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corner (as seen in the image), the
    /// order of face-data's ArcFace template.
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    /// Box width × height.
    pub fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]) * (self.bbox[3] - self.bbox[1])
    }
}

/// The padded-retry border the facekit program and the distillation pipeline detect with
/// ([`MtcnnConfig::retry_padding`]; measured in docs/BENCHMARKS.md, "Tight crops").
pub const RETRY_PADDING: f64 = 0.25;

/// Detector settings (facenet-pytorch's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MtcnnConfig {
    /// Smallest face searched for, in pixels (≥ 12).
    pub min_face_size: f64,
    /// Probability thresholds of P-, R- and O-Net.
    pub thresholds: [f32; 3],
    /// Pyramid scale step, in (0, 1).
    pub factor: f64,
    /// Candidates per R-/O-Net forward pass (bounds memory on large images).
    pub max_batch: usize,
    /// When the frame yields no face, or a largest face whose box spans more than half the
    /// frame's shorter side (a tight crop), detect again in the frame surrounded by a border of
    /// this fraction of its longer side, filled with its edge pixels, and keep that pass
    /// (0: never; facenet-pytorch's behaviour). A face that fills or overflows its frame gives
    /// P-Net no context and O-Net a box cut at the border, and the landmarks drift; the border
    /// restores both. Boxes and landmarks are given in the original frame.
    #[serde(default)]
    pub retry_padding: f64,
}

impl Default for MtcnnConfig {
    fn default() -> Self {
        Self {
            min_face_size: 20.0,
            thresholds: [0.6, 0.7, 0.7],
            factor: 0.709,
            max_batch: 512,
            retry_padding: 0.0,
        }
    }
}

impl MtcnnConfig {
    /// facenet-pytorch's defaults plus the padded retry for faces that fill their frame
    /// ([`RETRY_PADDING`]): what the facekit program and the distillation pipeline use.
    pub fn with_tight_crops() -> Self {
        Self {
            retry_padding: RETRY_PADDING,
            ..Self::default()
        }
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// A minimum face below 12 px, a factor outside (0, 1), a threshold outside [0, 1] or a zero
    /// batch.
    pub fn validate(&self) -> Result<()> {
        let param = |name, message: String| Err(DetectError::Param { name, message });
        if !(self.min_face_size >= 12.0 && self.min_face_size.is_finite()) {
            return param("min_face_size", format!("{} must be ≥ 12 px", self.min_face_size));
        }
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return param("factor", format!("{} must lie in (0, 1)", self.factor));
        }
        if self.thresholds.iter().any(|t| !(0.0..=1.0).contains(t)) {
            return param("thresholds", format!("{:?} must lie in [0, 1]", self.thresholds));
        }
        if self.max_batch == 0 {
            return param("max_batch", "must be positive".into());
        }
        if !(self.retry_padding.is_finite() && (0.0..=2.0).contains(&self.retry_padding)) {
            return param(
                "retry_padding",
                format!("{} must lie in [0, 2]", self.retry_padding),
            );
        }
        Ok(())
    }

    /// The pyramid scales for an image of `h × w` pixels.
    pub fn scales(&self, h: usize, w: usize) -> Vec<f64> {
        let m = 12.0 / self.min_face_size;
        let mut minl = h.min(w) as f64 * m;
        let mut scale = m;
        let mut out = Vec::new();
        while minl >= 12.0 {
            out.push(scale);
            scale *= self.factor;
            minl *= self.factor;
        }
        out
    }
}

/// Per-stage figures of one detection: P-Net over the pyramid, R-Net, O-Net.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DetectStats {
    /// Wall-clock seconds of each stage (crop resampling included).
    pub seconds: [f64; 3],
    /// Candidates leaving each stage.
    pub candidates: [usize; 3],
}

/// A candidate box with its score and regression offsets.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    b: BoxXyxy,
    score: f32,
    reg: [f32; 4],
}

/// MTCNN: P-, R- and O-Net with the detection cascade.
#[derive(Debug)]
pub struct Mtcnn<B: Backend> {
    pnet: PNet<B>,
    rnet: RNet<B>,
    onet: ONet<B>,
    config: MtcnnConfig,
    device: B::Device,
}

impl<B: Backend> Mtcnn<B> {
    /// Loads `pnet.pt`, `rnet.pt` and `onet.pt` from `dir` (facenet-pytorch 2.6.0's files, as
    /// bundled in `models/`).
    ///
    /// # Errors
    /// A missing or mismatching weight file, or an invalid config.
    pub fn load(dir: &Path, config: MtcnnConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let (pnet, _) = PNet::load(&dir.join("pnet.pt"), device)?;
        let (rnet, _) = RNet::load(&dir.join("rnet.pt"), device)?;
        let (onet, _) = ONet::load(&dir.join("onet.pt"), device)?;
        Ok(Self {
            pnet,
            rnet,
            onet,
            config,
            device: device.clone(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &MtcnnConfig {
        &self.config
    }

    /// The three networks.
    pub fn nets(&self) -> (&PNet<B>, &RNet<B>, &ONet<B>) {
        (&self.pnet, &self.rnet, &self.onet)
    }

    /// Detects the faces of one image, largest box first.
    pub fn detect(&self, img: &RgbImage) -> Vec<Detection> {
        self.detect_with_stats(img).0
    }

    /// As [`Mtcnn::detect`], with the time and candidate count of each stage (of the last
    /// pass, when the padded retry ran).
    pub fn detect_with_stats(&self, img: &RgbImage) -> (Vec<Detection>, DetectStats) {
        let (faces, stats) = self.detect_frame(img);
        if self.config.retry_padding <= 0.0 {
            return (faces, stats);
        }
        let shorter = img.width().min(img.height()) as f32;
        let fills = |d: &Detection| (d.bbox[2] - d.bbox[0]).max(d.bbox[3] - d.bbox[1]) > 0.5 * shorter;
        match faces.first() {
            Some(d) if !fills(d) => (faces, stats),
            _ => self.detect_padded(img, self.config.retry_padding),
        }
    }

    /// Detects in `img` framed by a border of `padding` × its longer side on every side (edge
    /// pixels repeated), with boxes and landmarks mapped back to `img`'s frame.
    pub fn detect_padded(&self, img: &RgbImage, padding: f64) -> (Vec<Detection>, DetectStats) {
        let (w, h) = img.dimensions();
        let border = (padding.max(0.0) * f64::from(w.max(h))).round() as u32;
        if border == 0 || w == 0 || h == 0 {
            return self.detect_frame(img);
        }
        let framed = RgbImage::from_fn(w + 2 * border, h + 2 * border, |x, y| {
            let sx = x.saturating_sub(border).min(w - 1);
            let sy = y.saturating_sub(border).min(h - 1);
            *img.get_pixel(sx, sy)
        });
        let (mut faces, stats) = self.detect_frame(&framed);
        let b = border as f32;
        for f in &mut faces {
            f.bbox.iter_mut().for_each(|v| *v -= b);
            for p in &mut f.landmarks {
                p[0] -= b;
                p[1] -= b;
            }
        }
        (faces, stats)
    }

    /// One detection pass over the frame as given (facenet-pytorch's `MTCNN.detect`).
    fn detect_frame(&self, img: &RgbImage) -> (Vec<Detection>, DetectStats) {
        let mut stats = DetectStats::default();
        let (h, w) = (img.height() as usize, img.width() as usize);
        if h == 0 || w == 0 {
            return (Vec::new(), stats);
        }
        let t = std::time::Instant::now();
        let cands = self.stage1(img);
        stats.seconds[0] = t.elapsed().as_secs_f64();
        stats.candidates[0] = cands.len();
        let t = std::time::Instant::now();
        let cands = self.stage2(img, cands);
        stats.seconds[1] = t.elapsed().as_secs_f64();
        stats.candidates[1] = cands.len();
        let t = std::time::Instant::now();
        let mut faces = self.stage3(img, cands);
        stats.seconds[2] = t.elapsed().as_secs_f64();
        stats.candidates[2] = faces.len();
        // `MTCNN.detect(select_largest=True)`: largest area first.
        faces.sort_by(|a, b| {
            b.area()
                .partial_cmp(&a.area())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        (faces, stats)
    }

    fn stage1(&self, img: &RgbImage) -> Vec<Candidate> {
        let (h, w) = (img.height() as usize, img.width() as usize);
        let threshold = self.config.thresholds[0];
        let mut all = Vec::new();
        for scale in self.config.scales(h, w) {
            let hs = (h as f64 * scale + 1.0) as usize;
            let ws = (w as f64 * scale + 1.0) as usize;
            let mut buf = vec![0.0f32; 3 * hs * ws];
            area_resample_into(img, (0, 0, w, h), hs, ws, &mut buf);
            let x = Tensor::<B, 4>::from_data(TensorData::new(buf, [1, 3, hs, ws]), &self.device);
            let (reg, prob) = self.pnet.forward(x);
            let [_, gh, gw] = prob.dims();
            let prob = to_vec(prob);
            let reg = to_vec(reg);
            let s = scale as f32;
            let mut level = Vec::new();
            for y in 0..gh {
                for x in 0..gw {
                    let p = prob[y * gw + x];
                    if p >= threshold {
                        let (bx, by) = (x as f32, y as f32);
                        let plane = gh * gw;
                        let r = |c: usize| reg[c * plane + y * gw + x];
                        level.push(Candidate {
                            b: [
                                ((2.0 * bx + 1.0) / s).floor(),
                                ((2.0 * by + 1.0) / s).floor(),
                                ((2.0 * bx + 12.0) / s).floor(),
                                ((2.0 * by + 12.0) / s).floor(),
                            ],
                            score: p,
                            reg: [r(0), r(1), r(2), r(3)],
                        });
                    }
                }
            }
            let keep = nms_of(&level, 0.5, Overlap::Union);
            all.extend(keep.into_iter().map(|i| level[i]));
        }
        let keep = nms_of(&all, 0.7, Overlap::Union);
        keep.into_iter()
            .map(|i| {
                let c = all[i];
                let (rw, rh) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                let b = [
                    c.b[0] + c.reg[0] * rw,
                    c.b[1] + c.reg[1] * rh,
                    c.b[2] + c.reg[2] * rw,
                    c.b[3] + c.reg[3] * rh,
                ];
                Candidate {
                    b: rerec(b),
                    score: c.score,
                    reg: [0.0; 4],
                }
            })
            .collect()
    }

    fn stage2(&self, img: &RgbImage, cands: Vec<Candidate>) -> Vec<Candidate> {
        let (cands, data) = crops(img, cands, 24);
        if cands.is_empty() {
            return cands;
        }
        let mut scored = Vec::new();
        for (chunk, data) in self.chunks(&cands, &data, 24) {
            let (reg, prob) = self.rnet.forward(data);
            let (reg, prob) = (to_vec(reg), to_vec(prob));
            for (k, c) in chunk.iter().enumerate() {
                if prob[k] > self.config.thresholds[1] {
                    scored.push(Candidate {
                        b: c.b,
                        score: prob[k],
                        reg: row4(&reg, k),
                    });
                }
            }
        }
        let keep = nms_of(&scored, 0.7, Overlap::Union);
        keep.into_iter()
            .map(|i| {
                let c = scored[i];
                Candidate {
                    b: rerec(bbreg(c.b, c.reg)),
                    score: c.score,
                    reg: [0.0; 4],
                }
            })
            .collect()
    }

    fn stage3(&self, img: &RgbImage, cands: Vec<Candidate>) -> Vec<Detection> {
        let (cands, data) = crops(img, cands, 48);
        if cands.is_empty() {
            return Vec::new();
        }
        let mut faces = Vec::new();
        for (chunk, data) in self.chunks(&cands, &data, 48) {
            let (reg, points, prob) = self.onet.forward(data);
            let (reg, points, prob) = (to_vec(reg), to_vec(points), to_vec(prob));
            for (k, c) in chunk.iter().enumerate() {
                if prob[k] > self.config.thresholds[2] {
                    let b = c.b;
                    let (bw, bh) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
                    let p = &points[10 * k..10 * k + 10];
                    let landmarks =
                        std::array::from_fn(|j| [bw * p[j] + b[0] - 1.0, bh * p[5 + j] + b[1] - 1.0]);
                    faces.push(Detection {
                        bbox: bbreg(b, row4(&reg, k)),
                        score: prob[k],
                        landmarks,
                    });
                }
            }
        }
        let boxes: Vec<BoxXyxy> = faces.iter().map(|f| f.bbox).collect();
        let scores: Vec<f32> = faces.iter().map(|f| f.score).collect();
        nms(&boxes, &scores, 0.7, Overlap::Min)
            .into_iter()
            .map(|i| faces[i].clone())
            .collect()
    }

    /// Splits candidates and their crop data into forward-pass batches, each tensor built only
    /// when its batch is reached (so `max_batch` bounds the network's input).
    fn chunks<'a>(
        &'a self,
        cands: &'a [Candidate],
        data: &'a [f32],
        size: usize,
    ) -> impl Iterator<Item = (&'a [Candidate], Tensor<B, 4>)> + 'a {
        let per = 3 * size * size;
        cands
            .chunks(self.config.max_batch)
            .zip(data.chunks(self.config.max_batch * per))
            .map(move |(chunk, slice)| {
                let t = Tensor::from_data(
                    TensorData::new(slice.to_vec(), [chunk.len(), 3, size, size]),
                    &self.device,
                );
                (chunk, t)
            })
    }
}

/// A network output read back to the host. The tensor is the backend's own float output, just
/// computed, so the conversion cannot fail (a failure is a broken backend invariant).
fn to_vec<const D: usize, B: Backend>(t: Tensor<B, D>) -> Vec<f32> {
    face_nets::to_f32_vec(t).expect("a backend's float output reads back as f32")
}

/// Row `k` of a `[N, 4]` output read back flat.
fn row4(v: &[f32], k: usize) -> [f32; 4] {
    [v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]]
}

fn nms_of(cands: &[Candidate], threshold: f32, overlap: Overlap) -> Vec<usize> {
    let boxes: Vec<BoxXyxy> = cands.iter().map(|c| c.b).collect();
    let scores: Vec<f32> = cands.iter().map(|c| c.score).collect();
    nms(&boxes, &scores, threshold, overlap)
}

/// Box regression with inclusive-pixel widths (`bbreg`).
fn bbreg(b: BoxXyxy, r: [f32; 4]) -> BoxXyxy {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [b[0] + r[0] * w, b[1] + r[1] * h, b[2] + r[2] * w, b[3] + r[3] * h]
}

/// Squares a box about its centre on its longer side (`rerec`).
fn rerec(b: BoxXyxy) -> BoxXyxy {
    let (h, w) = (b[3] - b[1], b[2] - b[0]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// Crops every candidate (truncated to whole pixels, clipped to the image as facenet-pytorch's
/// `pad`) and area-resamples it to `size × size`; candidates with an empty crop are dropped.
fn crops(img: &RgbImage, cands: Vec<Candidate>, size: usize) -> (Vec<Candidate>, Vec<f32>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let per = 3 * size * size;
    let mut kept = Vec::with_capacity(cands.len());
    let mut data = Vec::with_capacity(cands.len() * per);
    for c in cands {
        // `boxes.trunc().int()`, then 1-based clipping: x ≥ 1, ex ≤ w; the crop is
        // rows y − 1 .. ey and columns x − 1 .. ex.
        let x = (c.b[0].trunc() as i64).max(1);
        let y = (c.b[1].trunc() as i64).max(1);
        let ex = (c.b[2].trunc() as i64).min(w);
        let ey = (c.b[3].trunc() as i64).min(h);
        if ex < x || ey < y {
            continue;
        }
        let start = data.len();
        data.resize(start + per, 0.0);
        area_resample_into(
            img,
            ((x - 1) as usize, (y - 1) as usize, ex as usize, ey as usize),
            size,
            size,
            &mut data[start..],
        );
        kept.push(c);
    }
    (kept, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_matches_facenet_pytorch() {
        // 250 × 250 at min face 20: 0.6 · 0.709^k while 150 · 0.709^k ≥ 12 → 8 levels.
        let s = MtcnnConfig::default().scales(250, 250);
        assert_eq!(s.len(), 8);
        assert!((s[0] - 0.6).abs() < 1e-15 && (s[1] - 0.6 * 0.709).abs() < 1e-15);
    }

    #[test]
    fn rerec_squares_about_the_centre() {
        assert_eq!(rerec([10.0, 20.0, 30.0, 60.0]), [0.0, 20.0, 40.0, 60.0]);
    }

    #[test]
    fn config_is_checked() {
        let bad = |f: fn(&mut MtcnnConfig)| {
            let mut c = MtcnnConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(MtcnnConfig::default().validate().is_ok());
        assert!(bad(|c| c.min_face_size = 5.0));
        assert!(bad(|c| c.factor = 1.0));
        assert!(bad(|c| c.thresholds[1] = 1.5));
        assert!(bad(|c| c.max_batch = 0));
    }
}
