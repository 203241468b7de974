//! Area ("box filter") resampling of an image region, PyTorch's
//! `interpolate(mode="area")` = `adaptive_avg_pool2d`, which facenet-pytorch uses for the image
//! pyramid and for the R-/O-Net crops.
//!
//! Output cell `i` of `n` averages input rows `⌊i·H/n⌋ .. ⌈(i+1)·H/n⌉` (and likewise for
//! columns). 8-bit inputs sum exactly in `f32` for any window below 65 000 pixels, and the mean is
//! taken as `sum / kh / kw` as PyTorch's CPU kernel does, so the values are bit-identical.

use image::RgbImage;
use rayon::prelude::*;

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

/// One output row in each of the three planes.
type RowPlanes<'a> = ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]);

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
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    // Output rows in parallel (the pyramid's first levels are most of a detection's serial
    // work otherwise). Each row sums its window's pixel rows first, then the columns'
    // windows; the sums are of integers, exact in f32, so the order does not change them.
    let row = |(oy, ((r, g), b)): (usize, RowPlanes<'_>)| {
        let (ry0, ry1) = rows[oy];
        let mut sums = vec![0f32; 3 * (x1 - x0)];
        for y in y0 + ry0..y0 + ry1 {
            let line = &raw[y * stride + 3 * x0..y * stride + 3 * x1];
            sums.iter_mut().zip(line).for_each(|(s, &v)| *s += f32::from(v));
        }
        let kh = (ry1 - ry0) as f32;
        for (ox, &(cx0, cx1)) in cols.iter().enumerate() {
            let mut sum = [0.0f32; 3];
            for p in sums[3 * cx0..3 * cx1].chunks_exact(3) {
                sum[0] += p[0];
                sum[1] += p[1];
                sum[2] += p[2];
            }
            let kw = (cx1 - cx0) as f32;
            r[ox] = normalize(sum[0] / kh / kw);
            g[ox] = normalize(sum[1] / kh / kw);
            b[ox] = normalize(sum[2] / kh / kw);
        }
    };
    red.par_chunks_mut(out_w)
        .zip(green.par_chunks_mut(out_w))
        .zip(blue.par_chunks_mut(out_w))
        .enumerate()
        .for_each(row);
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

    /// Down- and upsampling a region of a noisy image, row-parallel, equals the definition
    /// (each output the mean of its window, summed pixel by pixel) bit for bit.
    #[test]
    fn every_output_is_its_windows_mean_exactly() {
        let img = RgbImage::from_fn(37, 29, |x, y| {
            let v = (x * 7919 + y * 104_729) % 251;
            image::Rgb([v as u8, (v * 3 % 256) as u8, (255 - v) as u8])
        });
        let (x0, y0, x1, y1) = (3, 2, 35, 27);
        for (out_h, out_w) in [(7, 11), (40, 50), (25, 32), (1, 1)] {
            let mut out = vec![f32::NAN; 3 * out_h * out_w];
            area_resample_into(&img, (x0, y0, x1, y1), out_h, out_w, &mut out);
            let (rows, cols) = (windows(y1 - y0, out_h), windows(x1 - x0, out_w));
            for (oy, &(ry0, ry1)) in rows.iter().enumerate() {
                for (ox, &(cx0, cx1)) in cols.iter().enumerate() {
                    for c in 0..3 {
                        let mut sum = 0f32;
                        for y in y0 + ry0..y0 + ry1 {
                            for x in x0 + cx0..x0 + cx1 {
                                sum += f32::from(img.get_pixel(x as u32, y as u32)[c]);
                            }
                        }
                        let want = normalize(sum / (ry1 - ry0) as f32 / (cx1 - cx0) as f32);
                        let got = out[(c * out_h + oy) * out_w + ox];
                        assert_eq!(got.to_bits(), want.to_bits(), "{out_h}×{out_w} ({oy}, {ox}, {c})");
                    }
                }
            }
        }
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
