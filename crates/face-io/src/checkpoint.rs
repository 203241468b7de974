//! Step-numbered checkpoint folders: `dir/step-NNNNNNNN/`, written whole into `dir/.staging/`
//! and committed by one rename, the newest `keep` kept. A kill at any moment leaves the last
//! committed checkpoint intact (at worst a `.staging` folder, which the next save replaces).
//! The trainer of face-distill and the pretrainer of face-ssl both checkpoint through this.

use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};
use crate::file::sync_dir;

/// The checkpoint folder of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointDir {
    /// Checkpoints under `dir`, of which the newest `keep` (at least 1) are kept.
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Self {
        Self {
            dir: dir.into(),
            keep: keep.max(1),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The committed checkpoints `(step, folder)`, oldest first (none when the folder does not
    /// exist).
    ///
    /// # Errors
    /// An unreadable folder.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(IoError::io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(IoError::io(&self.dir))?;
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

    /// The newest committed checkpoint.
    ///
    /// # Errors
    /// An unreadable folder.
    pub fn latest(&self) -> Result<Option<(u64, PathBuf)>> {
        Ok(self.list()?.pop())
    }

    /// An empty `.staging` folder to write the next checkpoint into (a leftover of a killed
    /// save is removed first).
    ///
    /// # Errors
    /// I/O failure.
    pub fn staging(&self) -> Result<PathBuf> {
        let staging = self.dir.join(".staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(IoError::io(&staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(IoError::io(&staging))?;
        Ok(staging)
    }

    /// Commits the fully written staging folder as the checkpoint of `step` (the rename is the
    /// commit point) and deletes all but the newest `keep`.
    ///
    /// # Errors
    /// I/O failure.
    pub fn commit(&self, step: u64) -> Result<PathBuf> {
        let staging = self.dir.join(".staging");
        sync_dir(&staging)?;
        let target = self.dir.join(format!("step-{step:08}"));
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(IoError::io(&target))?;
        }
        std::fs::rename(&staging, &target).map_err(IoError::io(&target))?;
        sync_dir(&self.dir)?;
        let all = self.list()?;
        if all.len() > self.keep {
            for (_, old) in &all[..all.len() - self.keep] {
                std::fs::remove_dir_all(old).map_err(IoError::io(old))?;
            }
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_keeps_the_newest_and_ignores_a_torn_save() {
        let dir = tempfile::tempdir().unwrap();
        let ck = CheckpointDir::new(dir.path().join("checkpoints"), 2);
        assert!(ck.list().unwrap().is_empty());
        for step in [3u64, 10, 7] {
            let staging = ck.staging().unwrap();
            crate::write_atomic(&staging.join("state.json"), step.to_string().as_bytes()).unwrap();
            ck.commit(step).unwrap();
        }
        let kept: Vec<u64> = ck.list().unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(kept, vec![7, 10]);
        // A save killed before its commit leaves `.staging`, which is not a checkpoint.
        let torn = ck.staging().unwrap();
        std::fs::write(torn.join("state.json"), "1").unwrap();
        let (step, path) = ck.latest().unwrap().unwrap();
        assert_eq!(step, 10);
        assert_eq!(std::fs::read_to_string(path.join("state.json")).unwrap(), "10");
        // The next save starts from an empty staging folder.
        assert_eq!(std::fs::read_dir(ck.staging().unwrap()).unwrap().count(), 0);
    }
}
