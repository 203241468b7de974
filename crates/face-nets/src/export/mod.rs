//! Taking a face model out of facekit: its weights under the state-dict names of the
//! architecture's PyTorch class ([`write_torch`], read back by [`read_torch`]), or the whole
//! model as an ONNX graph ([`onnx_bytes`], [`write_onnx`]).
//!
//! **ONNX.** Opset 17, one input `input` `[n, 3, S, S]` (dynamic batch axis; RGB aligned to the
//! ArcFace template, `(x − 127.5) / 127.5`) and four named outputs: `embedding` `[n, D]` (unit
//! rows), `age_probs` `[n, bins]`, `expected_age` `[n]` (years) and `p_male` `[n]`. Every
//! backbone family is written, each next to its `forward` (`write_onnx`):
//! - the convolutional ones (iResNet, MobileFaceNet, ResNet, Inception-ResNet-V1) with the
//!   BatchNorms that follow a convolution or linear layer folded into it; the others stay as
//!   `BatchNormalization` nodes (iResNet's pre-activation ones, which precede padded
//!   convolutions);
//! - the ViTs (arcface_torch's, CLIP's, the token ViT) with `LayerNormalization`, attention as
//!   `MatMul` / `Softmax` over heads, and exact GELU as `Erf` (opset 17 has no `Gelu`). A class
//!   token is prepended by padding the tokens with a zero row and adding one constant. The token
//!   ViT's bilinear patch sampling at fixed centres is folded with its patch projection into
//!   one matrix per token (or one for all when the tokens share their sub-pixel offsets).
//!
//! `tools/check_onnx_export.py` runs the files in onnxruntime, and face-nets' own executor runs
//! them in the tests.
//!
//! **PyTorch layout.** A `.safetensors` file whose keys are those of a PyTorch `nn.Module`
//! with two children:
//! - `backbone`: the reference class of the architecture, whose `state_dict()` names the
//!   backbone's tensors, e.g. arcface_torch `iresnet`
//!   (`backbones/iresnet.py IResNet`), arcface_torch `mbf` (`backbones/mobilefacenet.py
//!   MobileFaceNet`), arcface_torch `vit` (`backbones/vit.py VisionTransformer`), torchvision
//!   `resnet50` (`fc = nn.Identity()` when the backbone has no classifier; with one, the head
//!   reads the pooled features, not `fc`), facenet-pytorch `InceptionResnetV1(classify=False)`
//!   (the head reads `last_bn`, before its L2 normalisation), OpenAI CLIP's `VisionTransformer`
//!   (`model.py`; open_clip's `transformer.py VisionTransformer` has the same keys: packed
//!   `attn.in_proj_weight`, `ln_1`, `mlp.c_fc`, `proj`), or, for the token ViT (LAFS/DINO),
//!   which has no outside reference, facekit's own class `TokenViT` in `tools/torch_nets.py`
//!   (timm block names; its docstring states the tokenisation);
//! - `head`: facekit's multitask head:
//!   - `head.embedding.linear` (`nn.Linear(features, dim)`);
//!   - `head.embedding.bn` (`nn.BatchNorm1d(dim)`; absent when the head has none);
//!   - `head.age.linear` (`nn.Linear(features, bins)`);
//!   - `head.gender.linear` (`nn.Linear(features, 1)`).
//!
//!   Forward: the embedding is `F.normalize(bn(linear(f)))`, the age distribution is
//!   `softmax(age(f))` over the bins, and P(male) is `sigmoid(gender(f))`.
//!
//! Linear weights are `[out, in]`, BatchNorm's γ/β are `weight`/`bias`, and every BatchNorm has
//! its `num_batches_tracked`, so `load_state_dict(strict=True)` takes the file as it is.
//! `tools/check_torch_export.py` does exactly that, with the classes above.
//!
//! A JSON sidecar (`<file>.json`, [`TorchExport`]) holds the model configuration and the age
//! bins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorData};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use crate::error::{NetsError, Result};
use crate::model::{BackboneConfig, FaceModel, FaceModelConfig};

/// The `format` of a PyTorch-layout export's sidecar.
pub const TORCH_FORMAT: &str = "facekit-torch-export/1";

/// The sidecar of a PyTorch-layout export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchExport {
    /// [`TORCH_FORMAT`].
    pub format: String,
    /// The PyTorch class whose `state_dict` names the `backbone.*` tensors.
    pub backbone_class: String,
    /// The input the model takes.
    pub input: String,
    /// The face model's configuration (backbone, embedding width, age bins).
    pub model: FaceModelConfig,
}

/// The sidecar path of an export file: `<file>.json`.
pub fn sidecar_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Key rules: regex → replacement, applied in order to each key.
type KeyRules = Vec<(&'static str, &'static str)>;

/// The PyTorch reference class of a backbone, and the key rules: the rules from our module
/// paths to its `state_dict` names, then from those names back to ours. Both are regex →
/// replacement, applied in order to each key. The second set is what the PyTorch loaders use.
fn torch_layout(backbone: &BackboneConfig) -> (&'static str, KeyRules, KeyRules) {
    use crate::backbones::{clip_vit, face_vit, iresnet, mobilefacenet, resnet};
    match backbone {
        BackboneConfig::IResNet(_) => (
            "arcface_torch backbones/iresnet.py IResNet",
            iresnet::TORCH_EXPORT_KEYS.to_vec(),
            iresnet::TORCH_KEYS.to_vec(),
        ),
        BackboneConfig::MobileFaceNet(c) => (
            "arcface_torch backbones/mobilefacenet.py MobileFaceNet",
            mobilefacenet::torch_export_keys(c.blocks[0] == 1),
            mobilefacenet::torch_keys(c.blocks[0] == 1),
        ),
        BackboneConfig::ResNet(_) => (
            "torchvision.models.resnet50 (fc = nn.Identity() without num_classes)",
            resnet::TORCH_EXPORT_KEYS.to_vec(),
            resnet::TORCH_KEYS.to_vec(),
        ),
        BackboneConfig::InceptionResnetV1(_) => (
            "facenet_pytorch InceptionResnetV1(classify=False)",
            Vec::new(),
            Vec::new(),
        ),
        BackboneConfig::Vit(_) => (
            "arcface_torch backbones/vit.py VisionTransformer",
            face_vit::TORCH_EXPORT_KEYS.to_vec(),
            face_vit::TORCH_KEYS.to_vec(),
        ),
        BackboneConfig::ClipVit(_) => (
            "OpenAI CLIP model.py VisionTransformer (open_clip transformer.py VisionTransformer)",
            clip_vit::TORCH_EXPORT_KEYS.to_vec(),
            clip_vit::BLOCK_KEYS.to_vec(),
        ),
        BackboneConfig::TokenVit(_) => ("facekit tools/torch_nets.py TokenViT", Vec::new(), Vec::new()),
    }
}

fn apply_rules(rules: &[regex::Regex], replacements: &[&str], key: &str) -> String {
    let mut k = key.to_owned();
    for (r, rep) in rules.iter().zip(replacements) {
        k = r.replace(&k, *rep).into_owned();
    }
    k
}

fn compile(rules: &[(&str, &str)]) -> Result<(Vec<regex::Regex>, Vec<String>)> {
    let mut res = Vec::with_capacity(rules.len());
    for (p, _) in rules {
        res.push(regex::Regex::new(p).map_err(|e| NetsError::Config {
            name: "key rules",
            message: format!("{p}: {e}"),
        })?);
    }
    Ok((res, rules.iter().map(|(_, r)| (*r).to_owned()).collect()))
}

/// The model's tensors under PyTorch's names and layouts (see the module docs), in a stable
/// order; BatchNorm layers gain their `num_batches_tracked` (0).
///
/// # Errors
/// A folded model (its BatchNorms are gone), or a tensor that cannot be read back.
pub fn torch_state_dict<B: Backend>(
    model: &FaceModel<B>,
    config: &FaceModelConfig,
) -> Result<Vec<(String, TensorData)>> {
    if model.is_folded() || config.folded {
        return Err(NetsError::Config {
            name: "folded",
            message: "a folded model has no BatchNorm layers to name; export the model before folding".into(),
        });
    }
    let (_, to_torch, _) = torch_layout(&config.backbone);
    let (rules, reps) = compile(&to_torch)?;
    let reps: Vec<&str> = reps.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for s in model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        let path = s.full_path();
        let name = match path.strip_prefix("backbone.") {
            Some(rest) => format!("backbone.{}", apply_rules(&rules, &reps, rest)),
            None => path,
        };
        let data = s
            .to_data()
            .map_err(|e| NetsError::Readback(format!("{name}: {e}")))?
            .convert::<f32>();
        let is_bn = s.module_type().as_deref() == Some("Struct:BatchNorm");
        if is_bn {
            if let Some(stem) = name.strip_suffix(".running_var") {
                out.push((
                    format!("{stem}.num_batches_tracked"),
                    TensorData::new(vec![0i64], [0usize; 0]),
                ));
            }
        }
        out.push((name, data));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes `model` in PyTorch layout to `file` (`.safetensors`) and its sidecar
/// (`<file>.json`), each atomically.
///
/// # Errors
/// As [`torch_state_dict`], or I/O failure.
pub fn write_torch<B: Backend>(
    model: &FaceModel<B>,
    config: &FaceModelConfig,
    file: &Path,
) -> Result<TorchExport> {
    let tensors = torch_state_dict(model, config)?;
    let (class, _, _) = torch_layout(&config.backbone);
    let mut bytes: Vec<(String, Vec<u8>, safetensors::Dtype, Vec<usize>)> = Vec::with_capacity(tensors.len());
    for (name, data) in &tensors {
        let (dtype, raw) = match data.dtype {
            DType::I64 => (safetensors::Dtype::I64, data.as_bytes().to_vec()),
            _ => (safetensors::Dtype::F32, data.as_bytes().to_vec()),
        };
        bytes.push((name.clone(), raw, dtype, data.shape.to_vec()));
    }
    let views = bytes
        .iter()
        .map(|(n, raw, dtype, shape)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), raw)
                .map(|v| (n.clone(), v))
                .map_err(|e| NetsError::Checkpoint {
                    path: file.to_owned(),
                    message: format!("{n}: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    let blob = safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| NetsError::Checkpoint {
        path: file.to_owned(),
        message: e.to_string(),
    })?;
    face_io::write_atomic(file, &blob)?;
    let meta = TorchExport {
        format: TORCH_FORMAT.into(),
        backbone_class: class.into(),
        input: format!(
            "[N, 3, {s}, {s}] RGB face aligned to the ArcFace template, (x - 127.5) / 127.5",
            s = config.input_size()
        ),
        model: config.clone(),
    };
    face_io::write_config(&sidecar_path(file), &meta)?;
    Ok(meta)
}

/// Reads a PyTorch-layout export (the file and its sidecar) back into a face model, strictly:
/// every weight must be found and every tensor used.
///
/// # Errors
/// A missing or malformed sidecar, another format, or a state dict that does not fit the
/// configuration (missing and unused keys listed).
pub fn read_torch<B: Backend>(file: &Path, device: &B::Device) -> Result<(FaceModelConfig, FaceModel<B>)> {
    let side = sidecar_path(file);
    if !side.is_file() {
        return Err(NetsError::Checkpoint {
            path: side,
            message: "no sidecar: a PyTorch-layout export has its configuration beside it".into(),
        });
    }
    let meta: TorchExport = face_io::read_config(&side)?;
    if meta.format != TORCH_FORMAT {
        return Err(NetsError::Checkpoint {
            path: side,
            message: format!("format `{}`, expected `{TORCH_FORMAT}`", meta.format),
        });
    }
    let config = meta.model;
    let (_, _, from_torch) = torch_layout(&config.backbone);
    // The backbone's rules, moved under `backbone.`: anchored ones gain the prefix, the others
    // (suffix rules) already match only inside it.
    let prefixed: Vec<(String, String)> = from_torch
        .iter()
        .map(|(p, r)| match p.strip_prefix('^') {
            Some(rest) => (format!(r"^backbone\.{rest}"), format!("backbone.{r}")),
            None => ((*p).to_owned(), (*r).to_owned()),
        })
        .collect();
    let rules: Vec<(&str, &str)> = prefixed.iter().map(|(p, r)| (p.as_str(), r.as_str())).collect();
    let mut model = config.init::<B>(device)?;
    crate::weights::load_pytorch(&mut model, file, &rules, &[], None)?;
    Ok((config, model))
}

/// The model as an ONNX graph (see the module docs).
///
/// # Errors
/// A folded model (export the unfolded one: folding happens as the graph is written), a
/// convolution with `Same` padding (no fixed ONNX pads), or a tensor that cannot be read back.
pub fn onnx_bytes<B: Backend>(model: &FaceModel<B>, config: &FaceModelConfig) -> Result<Vec<u8>> {
    if model.is_folded() || config.folded {
        return Err(NetsError::Config {
            name: "folded",
            message: "export the model before folding: its BatchNorms are folded as the graph is written"
                .into(),
        });
    }
    let mut w = crate::onnx_writer::OnnxWriter::new(&format!("facekit_{}", config.backbone.arch()));
    let f = model.backbone.write_onnx(&mut w, "input")?;
    model.head.write_onnx(&mut w, &f, model.age_bins())?;
    w.finish(
        config.input_size(),
        &[
            ("embedding", Some(config.embedding_dim)),
            ("age_probs", Some(config.age_bins.len())),
            ("expected_age", None),
            ("p_male", None),
        ],
    )
}

/// Writes [`onnx_bytes`] to `file`, atomically.
///
/// # Errors
/// As [`onnx_bytes`], or I/O failure.
pub fn write_onnx<B: Backend>(model: &FaceModel<B>, config: &FaceModelConfig, file: &Path) -> Result<()> {
    let bytes = onnx_bytes(model, config)?;
    Ok(face_io::write_atomic(file, &bytes)?)
}
