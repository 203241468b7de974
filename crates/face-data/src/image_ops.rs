//! Image decoding, planar float images and normalisation presets.

use std::io::Cursor;
use std::path::Path;

use image::RgbImage;

use crate::error::{DataError, Result};

/// Decodes JPEG/PNG bytes to 8-bit RGB; `origin` names the source in errors.
///
/// # Errors
/// Unknown format, corrupt data, or an image whose decoded size exceeds 512 MiB.
pub fn decode_rgb(bytes: &[u8], origin: &Path) -> Result<RgbImage> {
    let err = |m: String| DataError::Decode {
        path: origin.to_owned(),
        message: m,
    };
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| err(e.to_string()))?;
    Ok(img.into_rgb8())
}

/// Reads and decodes an image file to 8-bit RGB.
///
/// # Errors
/// I/O or decoding errors, naming the file.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// A planar `channels × height × width` float image (one item of an NCHW batch).
#[derive(Debug, Clone, PartialEq)]
pub struct Chw {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels·height·width` values, channel-major.
    pub data: Vec<f32>,
}

impl Chw {
    /// A zero image.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    /// Value at `(c, y, x)`.
    ///
    /// # Panics
    /// Out-of-range indices.
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        assert!(
            c < self.channels && y < self.height && x < self.width,
            "index ({c}, {y}, {x}) out of range"
        );
        self.data[(c * self.height + y) * self.width + x]
    }

    /// The `[channels, height, width]` shape.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Converts an 8-bit RGB image with a normalisation.
    pub fn from_rgb(img: &RgbImage, normalize: &Normalize) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut out = Chw::zeros(3, h, w);
        let pixels = img
            .as_raw()
            .chunks_exact(3)
            .map(|p| [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]);
        normalize.planar_into(pixels, &mut out.data);
        out
    }

    /// Mirrors left–right in place.
    pub fn flip_horizontal(&mut self) {
        let w = self.width;
        for row in self.data.chunks_exact_mut(w.max(1)) {
            row.reverse();
        }
    }
}

/// Channel order of a network's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ChannelOrder {
    /// Red, green, blue (PyTorch models).
    #[default]
    Rgb,
    /// Blue, green, red (OpenCV/Caffe-trained models).
    Bgr,
}

impl ChannelOrder {
    /// Source RGB channel of each output channel.
    pub fn indices(self) -> [usize; 3] {
        match self {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        }
    }
}

/// Per-channel normalisation `(x·input_scale − mean[c]) / std[c]` of 8-bit values, with
/// `mean`/`std` given for R, G, B; output channels in `order`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalize {
    /// Multiplies the 0–255 value first (1/255 for presets defined on 0–1 values).
    pub input_scale: f32,
    /// Per-channel mean (R, G, B), after `input_scale`.
    pub mean: [f32; 3],
    /// Per-channel divisor (R, G, B).
    pub std: [f32; 3],
    /// Output channel order.
    pub order: ChannelOrder,
}

impl Normalize {
    /// ArcFace / insightface: `(x/255 − 0.5)/0.5`, i.e. `(x − 127.5)/127.5`, RGB.
    pub fn arcface() -> Self {
        Self {
            input_scale: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
            order: ChannelOrder::Rgb,
        }
    }

    /// The age/gender teacher's dlib recipe: `(x − [122.782, 117.001, 104.298]) / 256`, RGB.
    pub fn dlib_age_gender() -> Self {
        Self {
            input_scale: 1.0,
            mean: [122.782, 117.001, 104.298],
            std: [256.0; 3],
            order: ChannelOrder::Rgb,
        }
    }

    /// ImageNet: `(x/255 − [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]`, RGB.
    pub fn imagenet() -> Self {
        Self {
            input_scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            order: ChannelOrder::Rgb,
        }
    }

    /// facenet-pytorch's `fixed_image_standardization`: `(x − 127.5)/128`, RGB.
    pub fn facenet() -> Self {
        Self {
            input_scale: 1.0,
            mean: [127.5; 3],
            std: [128.0; 3],
            order: ChannelOrder::Rgb,
        }
    }

    /// The same normalisation with another channel order.
    pub fn with_order(mut self, order: ChannelOrder) -> Self {
        self.order = order;
        self
    }

    /// Per-RGB-channel `(scale, shift)` so that the output is `x·scale + shift`.
    pub fn affine(&self) -> ([f32; 3], [f32; 3]) {
        let mut scale = [0.0; 3];
        let mut shift = [0.0; 3];
        for c in 0..3 {
            scale[c] = self.input_scale / self.std[c];
            shift[c] = -self.mean[c] / self.std[c];
        }
        (scale, shift)
    }

    /// Normalises interleaved RGB values (0–255 scale) into `out` as three planes in `order`;
    /// `out.len()` must be 3 × the number of pixels.
    pub(crate) fn planar_into(&self, rgb: impl Iterator<Item = [f32; 3]>, out: &mut [f32]) {
        let plane = out.len() / 3;
        let (scale, shift) = self.affine();
        let order = self.order.indices();
        for (i, px) in rgb.enumerate() {
            for (k, &ch) in order.iter().enumerate() {
                out[k * plane + i] = px[ch] * scale[ch] + shift[ch];
            }
        }
    }

    /// Checks that every divisor is finite and non-zero and the scale finite.
    ///
    /// # Errors
    /// The offending value.
    pub fn validate(&self) -> Result<()> {
        if !self.input_scale.is_finite()
            || self.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(DataError::param(
                "normalize",
                format!("{self:?} has a zero or non-finite term"),
            ));
        }
        Ok(())
    }
}
