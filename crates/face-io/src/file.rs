//! Atomic file output: every file facekit writes goes through [`write_atomic`], so a reader (or a
//! resumed run after a kill) sees the old file or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{IoError, Result};

/// The temporary sibling a write goes through: `<name>.partial` (two outputs of one stem, such
/// as `report.json` and `report.svg`, never share it).
pub fn partial_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    PathBuf::from(tmp)
}

/// Syncs a folder, so a rename inside it survives a power cut (a no-op where folders cannot be
/// opened, as on Windows).
///
/// # Errors
/// The sync failing on a folder that could be opened.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::File::open(dir) {
        Ok(f) => match f.sync_all() {
            Ok(()) => Ok(()),
            // Some file systems refuse fsync on a directory handle; the rename is still atomic.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(IoError::io(dir)(e)),
        },
        Err(_) => Ok(()),
    }
}

/// Creates the folder `path` goes into (nothing for a bare file name).
///
/// # Errors
/// The folder cannot be created.
pub fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent).map_err(IoError::io(parent)),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically: into `<name>.partial` beside it, synced, renamed over
/// `path`, then the folder synced. The folder must exist ([`ensure_parent`] creates it), so a
/// mistyped output path is an error, not a new folder. On failure the partial file is removed
/// and `path` keeps its old content.
///
/// # Errors
/// I/O failure, naming the file.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out/report.txt");
/// assert!(face_io::write_atomic(&path, b"hello").is_err()); // no folder `out`
/// face_io::ensure_parent(&path)?;
/// face_io::write_atomic(&path, b"hello")?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// assert!(!face_io::partial_path(&path).exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = partial_path(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(IoError::io(&tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(IoError::io(path)(e));
    }
    sync_dir(path.parent().unwrap_or(Path::new("")))
}

/// Writes `value` as pretty JSON (a trailing newline), atomically.
///
/// # Errors
/// A value JSON cannot hold (a non-finite float), or I/O failure.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| IoError::Serialise {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// Reads a JSON file into `T` (serde's own rules: no check for unknown keys; configurations use
/// [`crate::read_config`]).
///
/// # Errors
/// An unreadable file, or JSON that does not fit `T` (with line and column).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(IoError::io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| IoError::json(path, &e))
}

/// Reads exactly `buf.len()` bytes of `file` at byte `offset`, without moving a shared cursor
/// (so threads can read one open file at once) and without mapping it: the pages stay in the
/// kernel's cache, outside the reader's resident memory, however much of a large file is read.
///
/// # Errors
/// The read failing or the file ending before `offset + buf.len()`.
pub fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut done, mut buf) = (0u64, buf);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buf, offset + done) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    done += n as u64;
                    buf = &mut buf[n..];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old").unwrap();
        // A folder in the way of the partial file makes the write fail before the rename.
        std::fs::create_dir(partial_path(&path)).unwrap();
        let err = write_atomic(&path, b"new").unwrap_err();
        assert!(err.to_string().contains("a.json.partial"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn json_round_trip_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        write_json(&path, &vec![1.5f64, 2.0]).unwrap();
        assert_eq!(read_json::<Vec<f64>>(&path).unwrap(), vec![1.5, 2.0]);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("]\n"));
        std::fs::write(&path, "[1,\n 2,\n x]").unwrap();
        match read_json::<Vec<f64>>(&path).unwrap_err() {
            IoError::Json { line, column, .. } => assert_eq!((line, column), (3, 2)),
            e => panic!("{e}"),
        }
        let err = write_json(&path, &f64::NAN);
        // serde_json writes NaN as null; reading it back as f64 then fails with a clear error.
        if err.is_ok() {
            assert!(read_json::<f64>(&path).is_err());
        }
    }

    #[test]
    fn positional_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        std::fs::write(&path, b"0123456789").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let mut buf = [0u8; 4];
        super::read_exact_at(&f, &mut buf, 3).unwrap();
        assert_eq!(&buf, b"3456");
        let e = super::read_exact_at(&f, &mut buf, 8).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
