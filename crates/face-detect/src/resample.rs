//! Area ("box filter") resampling of an image region, PyTorch's
//! `interpolate(mode="area")` = `adaptive_avg_pool2d`, which facenet-pytorch uses for the image
//! pyramid and for the R-/O-Net crops.
//!
//! Output cell `i` of `n` averages input rows `⌊i·H/n⌋ .. ⌈(i+1)·H/n⌉` (and likewise for
//! columns). 8-bit inputs sum exactly in `f32` for any window below 65 000 pixels, and the mean is
//! taken as `sum / kh / kw` as PyTorch's CPU kernel does, so the values are bit-identical.

use image::RgbImage;

/// MTCNN's input normalisation `(v − 127.5) · 0.0078125`.
#[inline]
pub(crate) fn normalize(v: f32) -> f32 {
    (v - 127.5) * 0.007_812_5
}

/// The half-open source windows of `n` outputs over `len` inputs.
fn windows(len: usize, n: usize) -> Vec<(usize, usize)> {
    (0..n)
        .map(|i| ((i * len) / n, ((i + 1) * len).div_ceil(n)))
        .collect()
}

/// Resamples `img[y0..y1, x0..x1]` to `out_h × out_w` by area averaging and writes it, normalised
/// for MTCNN, as planar `3 × out_h × out_w` into `out` (which must hold that many values).
pub(crate) fn area_resample_into(
    img: &RgbImage,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    out_h: usize,
    out_w: usize,
    out: &mut [f32],
) {
    debug_assert!(x1 > x0 && y1 > y0 && x1 <= img.width() as usize && y1 <= img.height() as usize);
    debug_assert_eq!(out.len(), 3 * out_h * out_w);
    let stride = img.width() as usize * 3;
    let raw = img.as_raw();
    let rows = windows(y1 - y0, out_h);
    let cols = windows(x1 - x0, out_w);
    let plane = out_h * out_w;
    for (oy, &(ry0, ry1)) in rows.iter().enumerate() {
        for (ox, &(cx0, cx1)) in cols.iter().enumerate() {
            let mut sum = [0.0f32; 3];
            for y in y0 + ry0..y0 + ry1 {
                let row = &raw[y * stride..];
                for x in x0 + cx0..x0 + cx1 {
                    let p = &row[x * 3..x * 3 + 3];
                    sum[0] += f32::from(p[0]);
                    sum[1] += f32::from(p[1]);
                    sum[2] += f32::from(p[2]);
                }
            }
            let (kh, kw) = ((ry1 - ry0) as f32, (cx1 - cx0) as f32);
            for c in 0..3 {
                out[c * plane + oy * out_w + ox] = normalize(sum[c] / kh / kw);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_match_adaptive_pooling() {
        // 5 → 3: [0,2), [1,4), [3,5) as adaptive_avg_pool2d.
        assert_eq!(windows(5, 3), vec![(0, 2), (1, 4), (3, 5)]);
        // Upsampling repeats pixels.
        assert_eq!(windows(2, 4), vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
    }

    #[test]
    fn averages_a_region() {
        let img = RgbImage::from_fn(4, 2, |x, y| image::Rgb([(10 * x + 100 * y) as u8, 0, 255]));
        let mut out = vec![0.0; 3 * 2];
        // Region columns 1..3 of both rows → 1 × 2 output: each output column averages one
        // source column over both rows.
        area_resample_into(&img, (1, 0, 3, 2), 1, 2, &mut out);
        assert_eq!(out[0], normalize((10.0 + 110.0) / 2.0));
        assert_eq!(out[1], normalize((20.0 + 120.0) / 2.0));
        assert_eq!(out[4], normalize(255.0));
    }
}
