//! Face sources: random access by index to the images of a set too large for memory.
//!
//! One trait, [`FaceSource`], serves the two on-disk layouts of face training data:
//! - [`RecordIoFaces`]: an insightface RecordIO pair (`train.rec` + `train.idx`), ArcFace-aligned
//!   crops, read by positional reads (the pages stay in the kernel's cache, not in the reader's
//!   resident memory, however many are read);
//! - [`FileFaces`]: image files — a folder ([`list_images`]) or a list file of paths.
//!
//! Sources are `Send + Sync` and take `&self`, so worker threads decode from one source at once.
//! Image `i` has a stable id ([`FaceSource::id`]) that the teacher-target cache stores with its
//! row, and [`open_source`] picks the layout of a path.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{DataError, Result};
use crate::formats::folders::list_images;
use crate::formats::recordio::InsightFaceRecordSet;
use crate::image_ops::{decode_rgb, read_rgb};

/// Random access to the images of a face set.
pub trait FaceSource: Send + Sync + std::fmt::Debug {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there is no image.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stable id of image `i`: its path relative to the folder (or as listed), or
    /// `rec:<i>:<class label>` for a RecordIO image.
    ///
    /// # Errors
    /// `i` out of range.
    fn id(&self, i: usize) -> Result<Cow<'_, str>>;

    /// Decodes image `i` to RGB.
    ///
    /// # Errors
    /// `i` out of range, an unreadable file, or a corrupt record (naming file and record).
    fn image(&self, i: usize) -> Result<RgbImage>;

    /// Whether the images are ArcFace-aligned square crops already (insightface training
    /// data), so the template's points are their landmarks.
    fn aligned(&self) -> bool;

    /// Where the images come from (for messages).
    fn origin(&self) -> &Path;
}

fn out_of_range(origin: &Path, i: usize, n: usize) -> DataError {
    DataError::param(
        "index",
        format!("image {i} out of range: {} has {n}", origin.display()),
    )
}

/// The images of an insightface RecordIO training set (`dir/train.rec` + `dir/train.idx`).
#[derive(Debug)]
pub struct RecordIoFaces {
    dir: PathBuf,
    set: InsightFaceRecordSet,
    labels: Vec<u32>,
}

impl RecordIoFaces {
    /// Opens the set in `dir`, reading every record's header once for its class label (the
    /// ids name it).
    ///
    /// # Errors
    /// A missing, truncated or corrupt pair, naming the record.
    pub fn open(dir: &Path) -> Result<Self> {
        let set = InsightFaceRecordSet::open(dir)?;
        let labels = set.labels()?;
        Ok(Self {
            dir: dir.to_owned(),
            set,
            labels,
        })
    }

    /// The class label of image `i`.
    pub fn label(&self, i: usize) -> Option<u32> {
        self.labels.get(i).copied()
    }

    /// The underlying set.
    pub fn set(&self) -> &InsightFaceRecordSet {
        &self.set
    }
}

impl FaceSource for RecordIoFaces {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn id(&self, i: usize) -> Result<Cow<'_, str>> {
        let label = self
            .label(i)
            .ok_or_else(|| out_of_range(&self.dir, i, self.len()))?;
        Ok(Cow::Owned(format!("rec:{i}:{label}")))
    }

    fn image(&self, i: usize) -> Result<RgbImage> {
        let (_, bytes) = self.set.get(i)?;
        let key = self.set.key(i).unwrap_or_default();
        decode_rgb(&bytes, &self.set.reader().path().join(format!("#{key}")))
    }

    fn aligned(&self) -> bool {
        true
    }

    fn origin(&self) -> &Path {
        &self.dir
    }
}

/// Image files: `(id, path)` pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFaces {
    origin: PathBuf,
    files: Vec<(String, PathBuf)>,
    aligned: bool,
}

impl FileFaces {
    /// Every image under `dir` ([`list_images`]: jpg, jpeg, png, recursively, hidden entries
    /// skipped), ids relative to `dir`, sorted.
    ///
    /// # Errors
    /// An unreadable folder.
    pub fn folder(dir: &Path) -> Result<Self> {
        Ok(Self {
            origin: dir.to_owned(),
            files: list_images(dir)?,
            aligned: false,
        })
    }

    /// One image path per line of a list file (blank lines and `#` comments skipped; relative
    /// paths are taken from the list's folder; the id is the line).
    ///
    /// # Errors
    /// An unreadable list or a path listed twice (named with its line).
    pub fn list(list: &Path) -> Result<Self> {
        let text = crate::text::read_text(list)?;
        let base = list.parent().unwrap_or(Path::new("."));
        let mut seen = std::collections::HashMap::new();
        let mut files = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(first) = seen.insert(line.to_owned(), n + 1) {
                return Err(DataError::Parse {
                    path: list.to_owned(),
                    line: n + 1,
                    message: format!("`{line}` already listed on line {first}"),
                });
            }
            files.push((line.to_owned(), base.join(line)));
        }
        Ok(Self {
            origin: list.to_owned(),
            files,
            aligned: false,
        })
    }

    /// Given files, ids as given.
    pub fn from_files(origin: impl Into<PathBuf>, files: Vec<(String, PathBuf)>) -> Self {
        Self {
            origin: origin.into(),
            files,
            aligned: false,
        }
    }

    /// Marks the images as ArcFace-aligned square crops (see [`FaceSource::aligned`]).
    pub fn with_aligned(mut self, aligned: bool) -> Self {
        self.aligned = aligned;
        self
    }

    /// The files, as `(id, path)`.
    pub fn files(&self) -> &[(String, PathBuf)] {
        &self.files
    }

    /// The path of image `i`.
    pub fn path(&self, i: usize) -> Option<&Path> {
        self.files.get(i).map(|(_, p)| p.as_path())
    }
}

impl FaceSource for FileFaces {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn id(&self, i: usize) -> Result<Cow<'_, str>> {
        self.files
            .get(i)
            .map(|(id, _)| Cow::Borrowed(id.as_str()))
            .ok_or_else(|| out_of_range(&self.origin, i, self.len()))
    }

    fn image(&self, i: usize) -> Result<RgbImage> {
        let path = self
            .path(i)
            .ok_or_else(|| out_of_range(&self.origin, i, self.len()))?;
        read_rgb(path)
    }

    fn aligned(&self) -> bool {
        self.aligned
    }

    fn origin(&self) -> &Path {
        &self.origin
    }
}

/// Opens `path` as a face source: a folder holding `train.rec` and `train.idx` is a RecordIO
/// set (always aligned), another folder its image files, a file a list of image paths; files
/// are taken as ArcFace-aligned crops when `aligned_files` says so.
///
/// # Errors
/// A path that does not exist, or as the source's constructor.
pub fn open_source(path: &Path, aligned_files: bool) -> Result<Box<dyn FaceSource>> {
    if path.is_dir() {
        if path.join("train.rec").is_file() && path.join("train.idx").is_file() {
            return Ok(Box::new(RecordIoFaces::open(path)?));
        }
        return Ok(Box::new(FileFaces::folder(path)?.with_aligned(aligned_files)));
    }
    if path.is_file() {
        return Ok(Box::new(FileFaces::list(path)?.with_aligned(aligned_files)));
    }
    Err(DataError::io(
        path,
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder or list file"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        image::RgbImage::from_pixel(4, 4, image::Rgb([9, 8, 7]))
            .save(dir.path().join("a.png"))
            .unwrap();
        std::fs::write(dir.path().join("b.jpg"), b"not a jpeg").unwrap();
        let f = FileFaces::folder(dir.path()).unwrap();
        assert_eq!((f.len(), f.id(1).unwrap().as_ref()), (2, "b.jpg"));
        assert_eq!(f.image(0).unwrap().get_pixel(3, 3).0, [9, 8, 7]);
        assert!(f.image(1).unwrap_err().to_string().contains("b.jpg"));
        assert!(f.image(2).unwrap_err().to_string().contains("out of range"));
        assert!(!f.aligned() && f.clone().with_aligned(true).aligned());

        let list = dir.path().join("list.txt");
        std::fs::write(&list, "# faces\na.png\n\nb.jpg\n").unwrap();
        let l = open_source(&list, true).unwrap();
        assert_eq!((l.len(), l.id(0).unwrap().into_owned()), (2, "a.png".to_owned()));
        assert!(l.aligned());
        std::fs::write(&list, "a.png\nb.jpg\na.png\n").unwrap();
        let e = FileFaces::list(&list).unwrap_err().to_string();
        assert!(e.contains(":3") && e.contains("line 1"), "{e}");
        assert!(open_source(&dir.path().join("missing"), false).is_err());
    }
}
