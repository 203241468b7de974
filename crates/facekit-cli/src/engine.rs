//! Models and the image → face → embedding path shared by the commands (CPU, NdArray).

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use face_data::FaceTemplate;
use face_detect::{Mtcnn, MtcnnConfig};
use face_nets::{FaceModel, FaceModelConfig};
use face_teachers::{FaceRef, IdentityTeacher, InputRecipe, SpecFile, SpecIdentityTeacher, TeacherSpec};
use image::RgbImage;

use crate::error::{bad, Classify, Res};
use crate::output::bar;

/// Crops per forward pass.
const BATCH: usize = 32;

/// The models folder and the detector, loaded on first use.
pub struct Engine {
    /// Folder of the bundled models.
    pub models: PathBuf,
    min_face: f64,
    mtcnn: OnceCell<Mtcnn<NdArray>>,
}

impl Engine {
    /// An engine over `models` (default: `$FACEKIT_MODELS` or the repository's `models/`).
    pub fn new(models: Option<PathBuf>) -> Self {
        Self {
            models: models.unwrap_or_else(face_teachers::default_models_dir),
            min_face: 20.0,
            mtcnn: OnceCell::new(),
        }
    }

    /// Sets the smallest face the detector searches for.
    pub fn with_min_face(mut self, px: f64) -> Self {
        self.min_face = px;
        self
    }

    /// The MTCNN detector.
    pub fn mtcnn(&self) -> Res<&Mtcnn<NdArray>> {
        if let Some(m) = self.mtcnn.get() {
            return Ok(m);
        }
        let config = MtcnnConfig {
            min_face_size: self.min_face,
            // Tight crops get the padded retry (docs/BENCHMARKS.md, "Tight crops").
            ..MtcnnConfig::with_tight_crops()
        };
        let m = Mtcnn::<NdArray>::load(&self.models, config, &Default::default())
            .map_err(|e| bad(format!("cannot load MTCNN from {}: {e}", self.models.display())))?;
        Ok(self.mtcnn.get_or_init(|| m))
    }
}

/// The network that turns aligned crops into identity embeddings.
pub enum Embedder {
    /// The identity network of a teacher spec (any ONNX graph, PyTorch checkpoint or facekit
    /// run a spec describes).
    Spec {
        /// The network.
        teacher: Box<SpecIdentityTeacher<NdArray>>,
        /// Whether it is the bundled identity teacher (`--model teacher`), whose calibration
        /// ships in models/.
        bundled: bool,
    },
    /// A face-nets model folder (a distilled student).
    Model {
        /// The network.
        model: Box<FaceModel<NdArray>>,
        /// Its configuration.
        config: FaceModelConfig,
        /// The folder.
        dir: PathBuf,
    },
}

impl Embedder {
    /// `teacher` (the bundled identity teacher), a teacher spec file (`.json` with an
    /// `identity` network), or a model folder holding `model.json` and `student.bin`.
    pub fn load(engine: &Engine, model: &str) -> Res<Self> {
        let path = PathBuf::from(model);
        let spec = if model == "teacher" {
            SpecFile::in_dir(TeacherSpec::fr_feature(), &engine.models)
        } else if path.is_file() {
            SpecFile::read(&path).map_err(|e| bad(format!("--model {model}: {e}")))?
        } else {
            let files = face_nets::model::files::CONFIG;
            if !path.join(files).is_file() {
                return Err(bad(format!(
                    "--model {model}: expected `teacher`, a teacher spec (.json with an `identity` network) or a model folder with {files} and {} (as `facekit distill` writes)",
                    face_nets::model::files::WEIGHTS
                )));
            }
            let (config, m) = face_nets::load_model::<NdArray>(&path, &Default::default())
                .map_err(|e| bad(format!("--model {model}: {e}")))?;
            return Ok(Self::Model {
                model: Box::new(m),
                config,
                dir: path,
            });
        };
        let teacher = SpecIdentityTeacher::<NdArray>::load(&spec, &Default::default())
            .map_err(|e| bad(format!("--model {model}: cannot load the identity network: {e}")))?;
        Ok(Self::Spec {
            teacher: Box::new(teacher),
            bundled: model == "teacher",
        })
    }

    /// A name for reports.
    pub fn name(&self) -> String {
        match self {
            Self::Spec { teacher, .. } => teacher.version(),
            Self::Model { dir, .. } => format!("model:{}", dir.display()),
        }
    }

    /// The input recipe of the crops it takes (size, template, normalisation).
    pub fn recipe(&self) -> InputRecipe {
        match self {
            Self::Spec { teacher, .. } => teacher.recipe().clone(),
            Self::Model { config, .. } => InputRecipe::face_model(config.input_size() as u32),
        }
    }

    /// The landmark template of the crops it takes (an error for recipes that cut boxes or
    /// resize, which landmarks alone cannot feed).
    pub fn template(&self) -> Res<FaceTemplate> {
        self.recipe().template().input()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        match self {
            Self::Spec { teacher, .. } => teacher.dim(),
            Self::Model { config, .. } => config.embedding_dim,
        }
    }

    /// Raw embeddings of aligned crops (the teacher's are unnormalised, as its ONNX model
    /// returns them; a face model's are L2-normalised), row-major.
    pub fn embed(&self, crops: &[&RgbImage]) -> Res<Vec<f32>> {
        let mut out = Vec::with_capacity(crops.len() * self.dim());
        let recipe = self.recipe();
        for chunk in crops.chunks(BATCH) {
            let x = recipe
                .prepare_aligned::<NdArray>(chunk, &Default::default())
                .input()?;
            let e = match self {
                Self::Spec { teacher, .. } => teacher.raw_embeddings(&x).failure()?,
                Self::Model { model, .. } => model.embed(x.tensor().clone()),
            };
            out.extend(face_nets::to_f32_vec(e).failure()?);
        }
        Ok(out)
    }
}

/// Image files of the inputs: a file stands for itself (id = the path as given); a
/// folder for its images, recursively (id = path relative to the folder).
pub fn collect_images(inputs: &[PathBuf]) -> Res<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let items = face_data::list_images(p).input()?;
            if items.is_empty() {
                return Err(bad(format!(
                    "{}: no {} images in this folder",
                    p.display(),
                    face_data::IMAGE_EXTENSIONS.join("/")
                )));
            }
            out.extend(items);
        } else if p.is_file() {
            out.push((p.display().to_string(), p.clone()));
        } else {
            return Err(bad(format!("{}: no such file or folder", p.display())));
        }
    }
    Ok(out)
}

/// The crop of the largest face of `path` as `recipe` cuts it (or the image itself with
/// `aligned`), or why there is none (an unreadable image is one reason: a failure to enrol,
/// not an abort).
pub fn face_crop(
    engine: &Engine,
    recipe: &InputRecipe,
    aligned: bool,
    path: &Path,
) -> Res<Result<RgbImage, String>> {
    let size = recipe.size;
    let img = match face_data::read_rgb(path) {
        Ok(img) => img,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if aligned {
        if img.dimensions() != (size, size) {
            return Ok(Err(format!(
                "{}×{} is not an aligned {size}×{size} crop (drop --aligned to detect and align)",
                img.width(),
                img.height()
            )));
        }
        return Ok(Ok(img));
    }
    match engine.mtcnn()?.largest(&img) {
        None => Ok(Err("no face found".to_owned())),
        Some(face) => Ok(recipe
            .crop(&FaceRef::detected(&img, &face))
            .map_err(|e| e.to_string())),
    }
}

/// An image that gave no embedding: its id and why.
pub type Miss = face_eval::enrol::EnrolFailure;

/// `id: reason; id: reason; …` for messages.
pub fn describe(misses: &[Miss]) -> String {
    misses
        .iter()
        .map(|m| format!("{}: {}", m.id, m.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Embeddings of the largest face of each item: `(ids, rows, misses)`; with `flip`
/// each row is `[embedding | embedding of the mirrored crop]`.
pub fn embed_items(
    engine: &Engine,
    embedder: &Embedder,
    aligned: bool,
    flip: bool,
    items: &[(String, PathBuf)],
    quiet: bool,
) -> Res<(Vec<String>, Vec<f32>, Vec<Miss>)> {
    let recipe = embedder.recipe();
    let progress = bar(items.len(), "embed", quiet);
    let (mut ids, mut data, mut misses) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in items.chunks(BATCH) {
        let mut crops = Vec::with_capacity(chunk.len());
        for (id, path) in chunk {
            match face_crop(engine, &recipe, aligned, path)? {
                Ok(c) => {
                    ids.push(id.clone());
                    crops.push(c);
                }
                Err(reason) => misses.push(Miss {
                    id: id.clone(),
                    reason,
                }),
            }
            progress.inc(1);
        }
        if crops.is_empty() {
            continue;
        }
        let refs: Vec<&RgbImage> = crops.iter().collect();
        let e = embedder.embed(&refs)?;
        if flip {
            let mirrored: Vec<RgbImage> = crops.iter().map(image::imageops::flip_horizontal).collect();
            let mrefs: Vec<&RgbImage> = mirrored.iter().collect();
            let m = embedder.embed(&mrefs)?;
            let d = embedder.dim();
            for (a, b) in e.chunks_exact(d).zip(m.chunks_exact(d)) {
                data.extend_from_slice(a);
                data.extend_from_slice(b);
            }
        } else {
            data.extend(e);
        }
    }
    progress.finish_and_clear();
    Ok((ids, data, misses))
}
