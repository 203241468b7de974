//! Input recipes: how a teacher wants its faces cropped and normalised. A teacher only accepts a
//! [`Prepared`] batch made by its own recipe, so a crop meant for one model cannot reach another.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_data::{align_face, align_face_pyramid, Chw, FaceTemplate, Normalize};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TeacherError};

/// Where MTCNN's 5 landmarks fall in dlib's unit-square chip frame (`get_face_chip_details`),
/// in MTCNN's order (left eye, right eye, nose tip, left and right mouth corner, as seen in the
/// image): the mean over the 60 dev faces (data/dev-faces) of MTCNN's points carried through
/// dlib's own chip mapping of the same face (dlib's HOG detection, its 5-point landmarks, padding
/// 0.2). Fitted by `tools/reference_age_gender_e2e.py --fit`.
///
/// dlib's 5-point shape marks eye *corners* and the nose base, not MTCNN's points, and the
/// age/gender networks were trained on dlib chips, so this is the template that puts an MTCNN
/// face where dlib would have put it. The earlier, analytic template (the ArcFace eye centres
/// placed on dlib's eye-corner midpoints) put the eyes 5 % closer together and 0.014 lower, and
/// the mouth 0.065 lower, than MTCNN's points really fall; with plain bilinear sampling it missed
/// the package's expected age by more than 1.5 years on 2 photos in 3 (docs/BENCHMARKS.md,
/// "End-to-end age/gender").
pub const DLIB_MTCNN_5: [[f64; 2]; 5] = [
    [0.220_878_249_2, 0.207_184_881_3],
    [0.772_560_590_3, 0.205_050_773_4],
    [0.490_305_502_3, 0.530_078_102_5],
    [0.244_220_524_1, 0.764_286_127_6],
    [0.756_445_531_2, 0.762_912_580_7],
];

/// Which landmark template a recipe aligns to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Alignment {
    /// insightface's ArcFace template (`FaceTemplate::arcface`; scaled for sizes that are not
    /// multiples of 112 or 128, `FaceTemplate::arcface_scaled`).
    ArcFace,
    /// dlib's face-chip geometry with `padding` (fraction of the face width per side), reached
    /// from MTCNN landmarks via [`DLIB_MTCNN_5`], sampled through an image pyramid as dlib's
    /// chips are.
    DlibChip {
        /// dlib's chip padding (0.2 for the age/gender teacher).
        padding: f64,
    },
    /// facenet-pytorch's crop: MTCNN's face box widened by `margin` output pixels and resized
    /// ([`face_data::facenet_crop`]); needs the face's box ([`FaceRef::bbox`]).
    Facenet {
        /// The margin in pixels of the output crop (facenet-pytorch's `margin`, default 0).
        margin: u32,
    },
    /// The whole image resized to the square input (for images that are already face crops).
    Resize,
}

/// Crop size, alignment and normalisation of one model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecipe {
    /// A stable name (part of the target cache's identity).
    pub name: String,
    /// Square crop side in pixels.
    pub size: u32,
    /// The landmark template.
    pub alignment: Alignment,
    /// Pixel normalisation and channel order.
    pub normalize: Normalize,
}

impl InputRecipe {
    /// The input of a facekit face model (a distilled student): the ArcFace template at the
    /// model's input size, `(RGB − 127.5) / 127.5`.
    pub fn face_model(size: u32) -> Self {
        Self {
            name: format!("arcface{size}-rgb-127.5-127.5"),
            size,
            alignment: Alignment::ArcFace,
            normalize: Normalize::arcface(),
        }
    }

    /// The landmark targets in crop pixels.
    ///
    /// # Errors
    /// A zero size, or a recipe that does not align to landmarks (facenet boxes, resizes).
    pub fn template(&self) -> Result<FaceTemplate> {
        Ok(match self.alignment {
            Alignment::Facenet { .. } | Alignment::Resize => {
                return Err(TeacherError::RecipeMismatch {
                    given: format!("recipe `{}` (no landmark template)", self.name),
                    expected: "a recipe that aligns to landmarks (arcface or dlib_chip)".into(),
                })
            }
            Alignment::ArcFace => FaceTemplate::arcface_scaled(self.size)?,
            Alignment::DlibChip { padding } => {
                // dlib maps its chip rectangle's corners onto pixels 0 and size − 1, so a unit
                // point `p` lands at (padding + p) / (1 + 2·padding) · (size − 1).
                let span = f64::from(self.size.saturating_sub(1));
                let points = DLIB_MTCNN_5
                    .iter()
                    .map(|p| p.map(|v| ((padding + v) / (1.0 + 2.0 * padding) * span) as f32))
                    .collect();
                FaceTemplate::custom(points, self.size, self.size)?
            }
        })
    }

    /// Aligns and normalises faces (image + 5 MTCNN-order landmarks, and the box for facenet
    /// crops) into a batch.
    ///
    /// # Errors
    /// An empty list, degenerate landmarks, a facenet recipe given a face without its box.
    pub fn prepare<B: Backend>(&self, faces: &[FaceRef<'_>], device: &B::Device) -> Result<Prepared<B>> {
        if faces.is_empty() {
            return Err(TeacherError::EmptyBatch);
        }
        let s = self.size as usize;
        let mut data = Vec::with_capacity(faces.len() * 3 * s * s);
        match self.alignment {
            Alignment::ArcFace | Alignment::DlibChip { .. } => {
                let template = self.template()?;
                for f in faces {
                    // Warped and normalised in one pass (the values are those of `crop`).
                    let chw = if let Alignment::ArcFace = self.alignment {
                        align_face(f.image, &f.landmarks, &template, &self.normalize, false)?
                    } else {
                        align_face_pyramid(f.image, &f.landmarks, &template, &self.normalize, false)?
                    };
                    data.extend(chw.data);
                }
            }
            Alignment::Facenet { .. } | Alignment::Resize => {
                for f in faces {
                    data.extend(Chw::from_rgb(&self.crop(f)?, &self.normalize).data);
                }
            }
        }
        Ok(self.wrap(data, faces.len(), device))
    }

    /// The 8-bit crop of one face this recipe feeds its network (before normalisation).
    ///
    /// # Errors
    /// Degenerate landmarks, or a facenet recipe given a face without its box.
    pub fn crop(&self, face: &FaceRef<'_>) -> Result<RgbImage> {
        Ok(match self.alignment {
            Alignment::ArcFace => {
                let t = self.template()?;
                face_data::warp_affine(
                    face.image,
                    &t.transform_for(&face.landmarks)?,
                    self.size,
                    self.size,
                )?
            }
            // dlib's chips come through its image pyramid; so do ours.
            Alignment::DlibChip { .. } => {
                let t = self.template()?;
                let m = t.transform_for(&face.landmarks)?;
                let (level, m) = face_data::pyramid_level(face.image, &m, self.size, self.size);
                face_data::warp_affine(&level, &m, self.size, self.size)?
            }
            Alignment::Facenet { margin } => {
                let bbox = face.bbox.ok_or_else(|| TeacherError::RecipeMismatch {
                    given: "a face without its detection box".into(),
                    expected: format!(
                        "a face box for recipe `{}` (facenet crops cut the box)",
                        self.name
                    ),
                })?;
                face_data::facenet_crop(face.image, bbox, self.size, margin)?
            }
            Alignment::Resize => face_data::augment::resize_region(
                face.image,
                [
                    0.0,
                    0.0,
                    f64::from(face.image.width()),
                    f64::from(face.image.height()),
                ],
                self.size,
                self.size,
            ),
        })
    }

    /// Normalises crops that are already aligned to this recipe (e.g. insightface's 112 × 112
    /// training crops for the ArcFace recipe).
    ///
    /// # Errors
    /// An empty list or a crop of another size.
    pub fn prepare_aligned<B: Backend>(
        &self,
        crops: &[&RgbImage],
        device: &B::Device,
    ) -> Result<Prepared<B>> {
        if crops.is_empty() {
            return Err(TeacherError::EmptyBatch);
        }
        let s = self.size as usize;
        let mut data = Vec::with_capacity(crops.len() * 3 * s * s);
        for (index, crop) in crops.iter().enumerate() {
            if crop.dimensions() != (self.size, self.size) {
                return Err(TeacherError::CropSize {
                    index,
                    width: crop.width(),
                    height: crop.height(),
                    recipe: self.name.clone(),
                    size: self.size,
                });
            }
            data.extend(Chw::from_rgb(crop, &self.normalize).data);
        }
        Ok(self.wrap(data, crops.len(), device))
    }

    pub(crate) fn wrap<B: Backend>(&self, data: Vec<f32>, n: usize, device: &B::Device) -> Prepared<B> {
        let s = self.size as usize;
        Prepared {
            recipe: self.name.clone(),
            tensor: Tensor::from_data(TensorData::new(data, [n, 3, s, s]), device),
        }
    }
}

/// One face to prepare: the full image and its 5 landmarks in MTCNN order.
#[derive(Debug, Clone, Copy)]
pub struct FaceRef<'a> {
    /// The image the landmarks refer to.
    pub image: &'a RgbImage,
    /// Left eye, right eye, nose tip, left and right mouth corner (image pixels).
    pub landmarks: [[f32; 2]; 5],
    /// The detection box `[x0, y0, x1, y1]` (image pixels), when there is one: facenet crops
    /// ([`Alignment::Facenet`]) need it.
    pub bbox: Option<[f32; 4]>,
}

impl<'a> FaceRef<'a> {
    /// A face MTCNN found in `image`: its landmarks and its box.
    pub fn detected(image: &'a RgbImage, face: &face_detect::Detection) -> Self {
        Self {
            image,
            landmarks: face.landmarks,
            bbox: Some(face.bbox),
        }
    }
}

/// A normalised `[N, 3, S, S]` batch tagged with the recipe that made it.
#[derive(Debug, Clone)]
pub struct Prepared<B: Backend> {
    recipe: String,
    tensor: Tensor<B, 4>,
}

impl<B: Backend> Prepared<B> {
    /// The recipe's name.
    pub fn recipe(&self) -> &str {
        &self.recipe
    }

    /// The batch tensor.
    pub fn tensor(&self) -> &Tensor<B, 4> {
        &self.tensor
    }

    /// Faces in the batch.
    pub fn len(&self) -> usize {
        self.tensor.dims()[0]
    }

    /// Whether the batch is empty (never, for a batch made by a recipe).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tensor, after checking it was made by `recipe`.
    pub(crate) fn checked(&self, recipe: &InputRecipe) -> Result<Tensor<B, 4>> {
        if self.recipe != recipe.name {
            return Err(TeacherError::RecipeMismatch {
                given: self.recipe.clone(),
                expected: recipe.name.clone(),
            });
        }
        Ok(self.tensor.clone())
    }
}
