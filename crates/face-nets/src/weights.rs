//! Loading PyTorch state dicts through `burn-store`, with key remaps declared as data next to
//! each model and a strict report: every model weight must be found, and every checkpoint
//! tensor must be used unless it matches an explicit allow-list (e.g. BatchNorm's
//! `num_batches_tracked`, which Burn does not keep).

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};

use crate::error::{NetsError, Result};

/// Checkpoint tensors that no Burn module stores, ignored by every loader.
pub const ALWAYS_UNUSED: &[&str] = &[r"num_batches_tracked$"];

/// What a load applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Model paths that received a tensor.
    pub applied: Vec<String>,
    /// Checkpoint keys left over, all matching the allow-list.
    pub ignored: Vec<String>,
}

/// Loads a PyTorch state dict into `model`: a `.pth`/`.pt` pickle, or a `.safetensors` file
/// with PyTorch's names and layouts (what `facekit export --format torch` writes, and what the
/// Hugging Face hub serves).
///
/// `remaps` are `(regex, replacement)` pairs applied to checkpoint keys in order;
/// `allow_unused` are regexes of checkpoint keys that may be left over (in addition to
/// [`ALWAYS_UNUSED`]); `top_level_key` selects a nested dict such as `state_dict`.
///
/// # Errors
/// An unreadable file, a tensor whose shape differs from the model's, a model weight without a
/// tensor, or a leftover tensor outside the allow-list — each listing the keys.
pub fn load_pytorch<B: Backend, M: Module<B>>(
    model: &mut M,
    path: &Path,
    remaps: &[(&str, &str)],
    allow_unused: &[&str],
    top_level_key: Option<&str>,
) -> Result<LoadReport> {
    let err = |message: String| NetsError::Checkpoint {
        path: path.to_owned(),
        message,
    };
    if !path.is_file() {
        return Err(err("no such checkpoint file".into()));
    }
    let remapper = KeyRemapper::from_pattern_iter(remaps.iter().copied())
        .map_err(|e| err(format!("bad key remap: {e}")))?;
    let safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let result = if safetensors {
        if let Some(k) = top_level_key {
            return Err(err(format!("a safetensors file has no nested dict `{k}`")));
        }
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .remap(remapper)
            .allow_partial(true)
            .validate(false)
            .skip_enum_variants(true);
        model.load_from(&mut store).map_err(|e| err(e.to_string()))?
    } else {
        let mut store = PytorchStore::from_file(path)
            .remap(remapper)
            .allow_partial(true)
            .validate(false)
            .skip_enum_variants(true);
        if let Some(k) = top_level_key {
            store = store.with_top_level_key(k);
        }
        model.load_from(&mut store).map_err(|e| err(e.to_string()))?
    };
    if !result.errors.is_empty() {
        let msgs: Vec<String> = result.errors.iter().take(5).map(|e| format!("{e:?}")).collect();
        return Err(NetsError::Tensor {
            path: path.to_owned(),
            message: msgs.join("; "),
        });
    }
    // burn-store finds a norm layer's `gamma`/`beta` under PyTorch's `weight`/`bias` but still
    // lists those checkpoint keys as unused; they were consumed when their twin was applied.
    let applied: std::collections::HashSet<&str> = result.applied.iter().map(String::as_str).collect();
    let consumed_by_twin = |k: &str| {
        let twin = |stem: &str, burn: &str| applied.contains(format!("{stem}.{burn}").as_str());
        k.strip_suffix(".weight").is_some_and(|s| twin(s, "gamma"))
            || k.strip_suffix(".bias").is_some_and(|s| twin(s, "beta"))
    };
    let allowed: Vec<regex::Regex> = ALWAYS_UNUSED
        .iter()
        .chain(allow_unused)
        .map(|p| regex::Regex::new(p).map_err(|e| err(format!("bad allow-list pattern {p:?}: {e}"))))
        .collect::<Result<_>>()?;
    let (ignored, unused): (Vec<String>, Vec<String>) = result
        .unused
        .iter()
        .filter(|k| !consumed_by_twin(k))
        .cloned()
        .partition(|k| allowed.iter().any(|r| r.is_match(k)));
    if !unused.is_empty() || !result.missing.is_empty() {
        return Err(NetsError::Keys {
            path: path.to_owned(),
            missing: result.missing.iter().map(|(k, _)| k.clone()).collect(),
            unused,
        });
    }
    Ok(LoadReport {
        applied: result.applied.clone(),
        ignored,
    })
}
