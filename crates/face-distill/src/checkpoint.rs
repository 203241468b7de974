//! Atomic files and step-exact checkpoints (model, optimizer state and loop state).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Record, Recorder};
use burn::tensor::backend::Backend;

use crate::error::{DistillError, Result};

/// Writes `bytes` to a temporary sibling, syncs it and renames it over `path`, so a reader
/// (or a resumed run after a kill) sees the old file or the new one, never half of one.
///
/// # Errors
/// I/O failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp).map_err(DistillError::io(&tmp))?;
        f.write_all(bytes).map_err(DistillError::io(&tmp))?;
        f.sync_all().map_err(DistillError::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(DistillError::io(path))
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::default()
}

/// Serialises a record (model or optimizer state) at full precision.
///
/// # Errors
/// The recorder failing.
pub fn record_bytes<B: Backend, R: Record<B>>(record: R, path: &Path) -> Result<Vec<u8>> {
    Recorder::<B>::record(&recorder(), record, ())
        .map_err(|e| DistillError::checkpoint(path, format!("cannot serialise: {e}")))
}

/// Reads back a record written by [`record_bytes`].
///
/// # Errors
/// A corrupt or foreign file.
pub fn read_record<B: Backend, R: Record<B>>(path: &Path, device: &B::Device) -> Result<R> {
    let bytes = std::fs::read(path).map_err(DistillError::io(path))?;
    Recorder::<B>::load(&recorder(), bytes, device)
        .map_err(|e| DistillError::checkpoint(path, format!("cannot read: {e}")))
}

/// Saves a module's weights to `path` atomically.
///
/// # Errors
/// I/O failure.
pub fn save_module<B: Backend, M: Module<B>>(module: &M, path: &Path) -> Result<()> {
    let bytes = record_bytes::<B, _>(module.clone().into_record(), path)?;
    write_atomic(path, &bytes)
}

/// Loads weights saved by [`save_module`] into `module` (same architecture).
///
/// # Errors
/// A missing, corrupt or mismatched file.
pub fn load_module<B: Backend, M: Module<B>>(module: M, path: &Path, device: &B::Device) -> Result<M> {
    let record = read_record::<B, M::Record>(path, device)?;
    Ok(module.load_record(record))
}

/// The checkpoint directories of a run, `step-NNNNNNNN`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(DistillError::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(DistillError::io(dir))?;
        let name = entry.file_name();
        if let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Moves a fully written `staging` directory to `dir/step-NNNNNNNN` and deletes all but the
/// newest `keep` checkpoints. The rename is the commit point: a kill before it leaves only a
/// `.staging` directory, which the next save replaces.
pub fn commit(dir: &Path, staging: &Path, step: u64, keep: usize) -> Result<PathBuf> {
    let target = dir.join(format!("step-{step:08}"));
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(DistillError::io(&target))?;
    }
    std::fs::rename(staging, &target).map_err(DistillError::io(&target))?;
    let all = list(dir)?;
    if all.len() > keep {
        for (_, old) in &all[..all.len() - keep] {
            std::fs::remove_dir_all(old).map_err(DistillError::io(old))?;
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for step in [3u64, 10, 7] {
            let staging = dir.path().join(".staging");
            std::fs::create_dir_all(&staging).unwrap();
            write_atomic(&staging.join("state.json"), step.to_string().as_bytes()).unwrap();
            commit(dir.path(), &staging, step, 2).unwrap();
        }
        let kept: Vec<u64> = list(dir.path()).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(kept, vec![7, 10]);
        let text = std::fs::read_to_string(dir.path().join("step-00000010/state.json")).unwrap();
        assert_eq!(text, "10");
        assert!(list(&dir.path().join("absent")).unwrap().is_empty());
    }
}
