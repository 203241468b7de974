//! The teacher traits (the two bundled teachers are in `bundled`).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::recipe::{FaceRef, InputRecipe, Prepared};

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
