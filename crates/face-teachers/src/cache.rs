//! The teacher-target cache: both teachers run once over a face source (an image folder, a
//! list file or an insightface RecordIO set: [`face_data::FaceSource`]), the results kept in one
//! safetensors file that the distillation trainer reads row by row instead of re-running the
//! teachers.
//!
//! File layout (`safetensors`): tensors `embeddings [N, D]`, `age_probs [N, bins]`,
//! `expected_age [N]`, `p_male [N]`, `landmarks [N, 5, 2]`, `det_score [N]` (all `f32`, rows in
//! source order, images without a face left out); metadata `facekit.cache` (JSON [`CacheMeta`]:
//! format, teacher versions, recipes), `facekit.ids` (JSON list of image ids, one per row) and
//! `facekit.skipped` (JSON list of `[id, reason]`).
//!
//! [`CacheFile`] reads rows by positional reads, so a trainer holds only the rows of its batch
//! (and the ids); [`TargetCache`] is the whole file in memory, for small sets.
//!
//! Building is resumable, in memory independent of the number of images: one fixed-size binary
//! record per image, in source order, is appended to `<out>.journal` (after a JSON header line
//! that pins the teachers and the image ids) and synced after every batch; the reasons of
//! skipped images go to `<out>.journal.skipped` (JSON lines) first. A rerun after a kill cuts a
//! torn last record, drops reasons past the last whole record, and goes on from the next image,
//! so no row is lost or repeated. The final file is streamed from the journal to a temporary
//! name and renamed, and the journal removed only then. A journal or cache made by other
//! teachers, recipes or images is refused, never mixed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use face_data::FaceSource;
use face_detect::Mtcnn;
use image::RgbImage;
use rayon::prelude::*;
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Result, TeacherError};
use crate::recipe::{FaceRef, InputRecipe};
use crate::teachers::{AgeGenderTeacher, IdentityTeacher};

/// Cache file format version.
pub const CACHE_FORMAT: u32 = 1;

/// What identifies a cache: the teachers, their recipes and where landmarks came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMeta {
    /// [`CACHE_FORMAT`].
    pub format: u32,
    /// The identity teacher's version.
    pub identity_version: String,
    /// The age/gender teacher's version.
    pub age_gender_version: String,
    /// The identity teacher's recipe.
    pub identity_recipe: InputRecipe,
    /// The age network's recipe.
    pub age_recipe: InputRecipe,
    /// The gender network's recipe.
    pub gender_recipe: InputRecipe,
    /// Embedding dimension.
    pub dim: usize,
    /// Age bins (years).
    pub age_bins: Vec<f32>,
    /// `"mtcnn"` (detected, largest face) or `"aligned"` (inputs are ArcFace-aligned crops).
    pub landmarks: String,
}

/// The finished cache, in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCache {
    /// Teachers and recipes.
    pub meta: CacheMeta,
    /// Image id of each row.
    pub ids: Vec<String>,
    /// `[N × dim]` unit-norm identity embeddings.
    pub embeddings: Vec<f32>,
    /// `[N × bins]` age distributions.
    pub age_probs: Vec<f32>,
    /// `[N]` expected ages.
    pub expected_age: Vec<f32>,
    /// `[N]` P(male).
    pub p_male: Vec<f32>,
    /// `[N × 10]` landmarks used for the crops (x, y per point).
    pub landmarks: Vec<f32>,
    /// `[N]` detection score (1 for pre-aligned inputs).
    pub det_score: Vec<f32>,
    /// Images left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl TargetCache {
    /// Rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Row `i`'s embedding.
    pub fn embedding(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.meta.dim..(i + 1) * self.meta.dim]
    }

    /// Row `i`'s age distribution.
    pub fn age_distribution(&self, i: usize) -> &[f32] {
        let k = self.meta.age_bins.len();
        &self.age_probs[i * k..(i + 1) * k]
    }

    /// Row `i`'s landmarks.
    pub fn landmarks(&self, i: usize) -> [[f32; 2]; 5] {
        std::array::from_fn(|j| [self.landmarks[i * 10 + 2 * j], self.landmarks[i * 10 + 2 * j + 1]])
    }

    /// Row `i` as one record.
    pub fn row(&self, i: usize) -> CacheRow {
        CacheRow {
            embedding: self.embedding(i).to_vec(),
            age_probs: self.age_distribution(i).to_vec(),
            expected_age: self.expected_age[i],
            p_male: self.p_male[i],
            landmarks: self.landmarks(i),
            det_score: self.det_score[i],
        }
    }

    /// The embeddings of `rows` as a `[rows, dim]` tensor.
    pub fn embeddings_tensor<B: Backend>(&self, rows: &[usize], device: &B::Device) -> Tensor<B, 2> {
        gather(&self.embeddings, self.meta.dim, rows, device)
    }

    /// The age distributions of `rows` as a `[rows, bins]` tensor.
    pub fn age_probs_tensor<B: Backend>(&self, rows: &[usize], device: &B::Device) -> Tensor<B, 2> {
        gather(&self.age_probs, self.meta.age_bins.len(), rows, device)
    }

    /// Writes the safetensors file atomically (temporary file, then rename).
    ///
    /// # Errors
    /// I/O errors, or arrays whose lengths do not fit the row count.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut w = CacheWriter::create(path, &self.meta, &self.ids, &self.skipped)?;
        for i in 0..self.len() {
            w.push(&self.row(i))?;
        }
        w.finish()
    }

    /// Reads a cache file whole.
    ///
    /// # Errors
    /// A missing file, a file that is not a facekit cache, a newer format, or inconsistent
    /// shapes — each naming the file and the key.
    pub fn read(path: &Path) -> Result<Self> {
        let file = CacheFile::open(path)?;
        let column = |t: usize| -> Result<Vec<f32>> {
            let (start, end) = file.spans[t];
            let mut bytes = vec![0u8; (end - start) as usize];
            face_io::read_exact_at(&file.file, &mut bytes, start).map_err(|e| TeacherError::io(path, e))?;
            Ok(f32s(&bytes))
        };
        Ok(Self {
            embeddings: column(0)?,
            age_probs: column(1)?,
            expected_age: column(2)?,
            p_male: column(3)?,
            landmarks: column(4)?,
            det_score: column(5)?,
            ids: file.ids,
            skipped: file.skipped,
            meta: file.meta,
        })
    }
}

/// One row of a cache: what both teachers gave for one face, and where the face was.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheRow {
    /// The identity teacher's unit embedding.
    pub embedding: Vec<f32>,
    /// The age distribution over the bins.
    pub age_probs: Vec<f32>,
    /// The expected age.
    pub expected_age: f32,
    /// P(male).
    pub p_male: f32,
    /// The landmarks the crops were cut with.
    pub landmarks: [[f32; 2]; 5],
    /// The detector's score (1 for pre-aligned inputs).
    pub det_score: f32,
}

/// The tensors of a cache file, in file order.
const TENSORS: [&str; 6] = [
    "embeddings",
    "age_probs",
    "expected_age",
    "p_male",
    "landmarks",
    "det_score",
];

/// Values per row of each tensor of [`TENSORS`].
fn widths(meta: &CacheMeta) -> [usize; 6] {
    [meta.dim, meta.age_bins.len(), 1, 1, 10, 1]
}

fn shape(t: usize, n: usize, width: usize) -> Vec<usize> {
    match t {
        4 => vec![n, 5, 2],
        _ if width == 1 => vec![n],
        _ => vec![n, width],
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A cache file opened for row reads: the header (teachers, ids, skipped images) in memory, the
/// rows read on demand by positional reads, so memory holds only what a batch asks for.
#[derive(Debug)]
pub struct CacheFile {
    path: PathBuf,
    file: File,
    /// Teachers and recipes.
    pub meta: CacheMeta,
    /// Image id of each row.
    pub ids: Vec<String>,
    /// Images left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Absolute byte span of each tensor of [`TENSORS`].
    spans: [(u64, u64); 6],
    rows: usize,
}

impl CacheFile {
    /// Opens a cache file, reading and checking its header only.
    ///
    /// # Errors
    /// A missing file, a file that is not a facekit cache, a newer format, or inconsistent
    /// shapes — each naming the file and the key.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| TeacherError::io(path, e))?;
        let size = file.metadata().map_err(|e| TeacherError::io(path, e))?.len();
        let not_st = |m: String| TeacherError::cache(path, format!("not a safetensors file: {m}"));
        let mut len8 = [0u8; 8];
        file.read_exact(&mut len8)
            .map_err(|e| not_st(format!("no header length ({e})")))?;
        let header_len = u64::from_le_bytes(len8);
        if header_len > (100 << 20) || 8 + header_len > size {
            return Err(not_st(format!(
                "header length {header_len} does not fit the file"
            )));
        }
        let mut text = vec![0u8; header_len as usize];
        file.read_exact(&mut text)
            .map_err(|e| TeacherError::io(path, e))?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&text).map_err(|e| not_st(e.to_string()))?;
        drop(text);
        let info = header.get("__metadata__").and_then(|m| m.as_object());
        let field = |key: &str| -> Result<&str> {
            info.and_then(|m| m.get(key))
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    TeacherError::cache(
                        path,
                        format!("metadata key `{key}` missing: not a facekit target cache"),
                    )
                })
        };
        let parse_err =
            |key: &str, e: serde_json::Error| TeacherError::cache(path, format!("metadata `{key}`: {e}"));
        let meta: CacheMeta =
            serde_json::from_str(field("facekit.cache")?).map_err(|e| parse_err("facekit.cache", e))?;
        if meta.format != CACHE_FORMAT {
            return Err(TeacherError::cache(
                path,
                format!("cache format {} (this build reads {CACHE_FORMAT})", meta.format),
            ));
        }
        let ids: Vec<String> =
            serde_json::from_str(field("facekit.ids")?).map_err(|e| parse_err("facekit.ids", e))?;
        let skipped: Vec<(String, String)> =
            serde_json::from_str(field("facekit.skipped")?).map_err(|e| parse_err("facekit.skipped", e))?;
        let n = ids.len();
        let body = 8 + header_len;
        let ws = widths(&meta);
        let mut spans = [(0u64, 0u64); 6];
        for (t, name) in TENSORS.iter().enumerate() {
            let want = shape(t, n, ws[t]);
            let info: Option<TensorInfo> = header
                .get(*name)
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            let info = info.ok_or_else(|| TeacherError::cache(path, format!("tensor `{name}` missing")))?;
            let (a, b) = (info.data_offsets[0], info.data_offsets[1]);
            if info.dtype != "F32" || info.shape != want || b < a || b - a != (n * ws[t] * 4) as u64 {
                return Err(TeacherError::cache(
                    path,
                    format!(
                        "tensor `{name}` is {} {:?}, expected F32 {want:?}",
                        info.dtype, info.shape
                    ),
                ));
            }
            if body + b > size {
                return Err(TeacherError::cache(
                    path,
                    format!("tensor `{name}` runs past the end of the file ({size} bytes)"),
                ));
            }
            spans[t] = (body + a, body + b);
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            meta,
            ids,
            skipped,
            spans,
            rows: n,
        })
    }

    /// Rows (also after a reader has taken the ids out).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Row `i`, read from the file.
    ///
    /// # Errors
    /// `i` out of range, or a read failing.
    pub fn row(&self, i: usize) -> Result<CacheRow> {
        if i >= self.len() {
            return Err(TeacherError::cache(
                &self.path,
                format!("row {i} out of range (the cache has {})", self.len()),
            ));
        }
        let ws = widths(&self.meta);
        let mut cols: Vec<Vec<f32>> = Vec::with_capacity(6);
        for (t, &w) in ws.iter().enumerate() {
            let mut bytes = vec![0u8; w * 4];
            face_io::read_exact_at(&self.file, &mut bytes, self.spans[t].0 + (i * w * 4) as u64)
                .map_err(|e| TeacherError::io(&self.path, e))?;
            cols.push(f32s(&bytes));
        }
        let lm = &cols[4];
        Ok(CacheRow {
            expected_age: cols[2][0],
            p_male: cols[3][0],
            landmarks: std::array::from_fn(|j| [lm[2 * j], lm[2 * j + 1]]),
            det_score: cols[5][0],
            age_probs: std::mem::take(&mut cols[1]),
            embedding: std::mem::take(&mut cols[0]),
        })
    }
}

/// A tensor's entry in a safetensors header.
#[derive(Debug, Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// Writes a cache file row by row, in memory independent of the row count: the header first
/// (it needs the ids), then each row's values straight to their places in the six tensors.
/// The file appears whole at `finish` (temporary name, fsync, rename) or not at all.
#[derive(Debug)]
pub struct CacheWriter {
    path: PathBuf,
    partial: PathBuf,
    widths: [usize; 6],
    columns: Vec<BufWriter<File>>,
    rows: usize,
    written: usize,
}

impl CacheWriter {
    /// Starts the file for `ids.len()` rows.
    ///
    /// # Errors
    /// I/O, or metadata that cannot be serialised.
    pub fn create(
        path: &Path,
        meta: &CacheMeta,
        ids: &[String],
        skipped: &[(String, String)],
    ) -> Result<Self> {
        let n = ids.len();
        let ws = widths(meta);
        let json = |key: &str, v: serde_json::Result<String>| {
            v.map_err(|e| TeacherError::cache(path, format!("metadata `{key}`: {e}")))
        };
        let mut header = serde_json::Map::new();
        let mut info = serde_json::Map::new();
        info.insert(
            "facekit.cache".into(),
            json("facekit.cache", serde_json::to_string(meta))?.into(),
        );
        info.insert(
            "facekit.ids".into(),
            json("facekit.ids", serde_json::to_string(ids))?.into(),
        );
        info.insert(
            "facekit.skipped".into(),
            json("facekit.skipped", serde_json::to_string(skipped))?.into(),
        );
        header.insert("__metadata__".into(), info.into());
        let mut at = 0u64;
        let mut starts = [0u64; 6];
        for (t, name) in TENSORS.iter().enumerate() {
            let bytes = (n * ws[t] * 4) as u64;
            starts[t] = at;
            header.insert(
                (*name).into(),
                serde_json::json!({
                    "dtype": Dtype::F32.to_string(),
                    "shape": shape(t, n, ws[t]),
                    "data_offsets": [at, at + bytes],
                }),
            );
            at += bytes;
        }
        let mut text =
            serde_json::to_vec(&header).map_err(|e| TeacherError::cache(path, format!("header: {e}")))?;
        // The data section starts 8-byte aligned, padded with spaces as safetensors does.
        text.resize(text.len().div_ceil(8) * 8, b' ');
        face_io::ensure_parent(path)?;
        let partial = face_io::partial_path(path);
        let io = |e| TeacherError::io(&partial, e);
        let mut f = File::create(&partial).map_err(io)?;
        f.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        let body = 8 + text.len() as u64;
        f.set_len(body + at).map_err(io)?;
        drop(f);
        let mut columns = Vec::with_capacity(6);
        for start in starts {
            let mut c = OpenOptions::new().write(true).open(&partial).map_err(io)?;
            c.seek(SeekFrom::Start(body + start)).map_err(io)?;
            columns.push(BufWriter::with_capacity(1 << 16, c));
        }
        Ok(Self {
            path: path.to_owned(),
            partial,
            widths: ws,
            columns,
            rows: n,
            written: 0,
        })
    }

    /// Appends the next row.
    ///
    /// # Errors
    /// More rows than ids, a row of the wrong widths, or I/O.
    pub fn push(&mut self, row: &CacheRow) -> Result<()> {
        if self.written == self.rows {
            return Err(TeacherError::cache(
                &self.path,
                format!("more than the {} rows announced", self.rows),
            ));
        }
        if row.embedding.len() != self.widths[0] || row.age_probs.len() != self.widths[1] {
            return Err(TeacherError::cache(
                &self.path,
                format!(
                    "row {}: {} embedding values and {} age bins, the cache has {} and {}",
                    self.written,
                    row.embedding.len(),
                    row.age_probs.len(),
                    self.widths[0],
                    self.widths[1]
                ),
            ));
        }
        let lm: Vec<f32> = row.landmarks.iter().flatten().copied().collect();
        let parts: [&[f32]; 6] = [
            &row.embedding,
            &row.age_probs,
            &[row.expected_age],
            &[row.p_male],
            &lm,
            &[row.det_score],
        ];
        let mut bytes = Vec::with_capacity(4 * self.widths[0]);
        for (c, part) in self.columns.iter_mut().zip(parts) {
            bytes.clear();
            put_f32s(&mut bytes, part);
            c.write_all(&bytes)
                .map_err(|e| TeacherError::io(&self.partial, e))?;
        }
        self.written += 1;
        Ok(())
    }

    /// Flushes, syncs and renames the file into place.
    ///
    /// # Errors
    /// Fewer rows than ids, or I/O.
    pub fn finish(self) -> Result<()> {
        if self.written != self.rows {
            return Err(TeacherError::cache(
                &self.path,
                format!("{} rows written, {} announced", self.written, self.rows),
            ));
        }
        let io = |e| TeacherError::io(&self.partial, e);
        for c in self.columns {
            let f = c.into_inner().map_err(|e| io(e.into_error()))?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&self.partial, &self.path).map_err(|e| TeacherError::io(&self.path, e))?;
        Ok(face_io::sync_dir(self.path.parent().unwrap_or(Path::new("")))?)
    }
}

fn gather<B: Backend>(data: &[f32], width: usize, rows: &[usize], device: &B::Device) -> Tensor<B, 2> {
    let mut v = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        v.extend_from_slice(&data[r * width..(r + 1) * width]);
    }
    Tensor::from_data(burn::tensor::TensorData::new(v, [rows.len(), width]), device)
}

/// Where crops' landmarks come from.
#[derive(Debug)]
pub enum LandmarkSource<'a, B: Backend> {
    /// Detect with MTCNN and use the largest face.
    Detect(&'a Mtcnn<B>),
    /// The images are already ArcFace-aligned square crops (insightface training data): the
    /// template points scaled to the image size are the landmarks.
    Aligned,
}

/// Settings of a cache build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Faces per teacher forward pass.
    pub batch: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Stop after this many new images (the journal stays for a later resume); `None` runs to the
    /// end.
    pub max_new_images: Option<usize>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            batch: 32,
            progress: false,
            max_new_images: None,
        }
    }
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Images whose rows were already in the journal.
    pub resumed: usize,
    /// Images processed in this run.
    pub processed: usize,
    /// Images left out (no face, unreadable), cumulative.
    pub skipped: usize,
    /// Whether the cache file was written (false when stopped early).
    pub finished: bool,
}

/// The journal's layout version (its records are binary; version 1 wrote JSON lines).
const JOURNAL_FORMAT: u32 = 2;

/// The journal's first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalHeader {
    journal: u32,
    meta: CacheMeta,
    items: usize,
    items_sha256: String,
}

/// A skipped image's line in `<out>.journal.skipped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SkipLine {
    i: usize,
    reason: String,
}

/// SHA-256 over the source's ids, in order.
fn items_hash(source: &dyn FaceSource) -> Result<String> {
    let mut h = sha2::Sha256::new();
    for i in 0..source.len() {
        h.update(source.id(i)?.as_bytes());
        h.update([0u8]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The journal path of a cache file.
pub fn journal_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// The skipped-image reasons beside a journal.
pub fn skipped_path(out: &Path) -> PathBuf {
    let mut s = journal_path(out).into_os_string();
    s.push(".skipped");
    PathBuf::from(s)
}

/// Bytes of one journal record: a status word (0 = row, 1 = skipped) and the row's values.
fn record_size(meta: &CacheMeta) -> usize {
    4 * (1 + widths(meta).iter().sum::<usize>())
}

fn encode_record(row: Option<&CacheRow>, meta: &CacheMeta, out: &mut Vec<u8>) {
    let start = out.len();
    match row {
        Some(r) => {
            out.extend_from_slice(&0u32.to_le_bytes());
            put_f32s(out, &r.embedding);
            put_f32s(out, &r.age_probs);
            put_f32s(out, &[r.expected_age, r.p_male]);
            put_f32s(out, r.landmarks.as_flattened());
            put_f32s(out, &[r.det_score]);
        }
        None => out.extend_from_slice(&1u32.to_le_bytes()),
    }
    out.resize(start + record_size(meta), 0);
}

fn decode_record(bytes: &[u8], meta: &CacheMeta) -> Option<CacheRow> {
    if bytes[..4] != 0u32.to_le_bytes() {
        return None;
    }
    let v = f32s(&bytes[4..]);
    let (d, k) = (meta.dim, meta.age_bins.len());
    let lm = &v[d + k + 2..d + k + 12];
    Some(CacheRow {
        embedding: v[..d].to_vec(),
        age_probs: v[d..d + k].to_vec(),
        expected_age: v[d + k],
        p_male: v[d + k + 1],
        landmarks: std::array::from_fn(|j| [lm[2 * j], lm[2 * j + 1]]),
        det_score: v[d + k + 12],
    })
}

/// Runs both teachers over every image of `source` into the cache file `out` (see the module
/// docs for resuming). Memory does not grow with the number of images, except for the ids the
/// finished file's header lists.
///
/// # Errors
/// An existing cache or journal made by other teachers or images, I/O errors, an empty source
/// or duplicated ids. Unreadable images and images without a face are not errors: they are
/// recorded in the cache's `skipped` list with the reason.
pub fn build_cache<B: Backend>(
    identity: &dyn IdentityTeacher<B>,
    age_gender: &dyn AgeGenderTeacher<B>,
    landmarks: LandmarkSource<'_, B>,
    source: &dyn FaceSource,
    out: &Path,
    options: &BuildOptions,
    device: &B::Device,
) -> Result<BuildReport> {
    let n = source.len();
    if n == 0 {
        return Err(TeacherError::EmptyBatch);
    }
    let meta = CacheMeta {
        format: CACHE_FORMAT,
        identity_version: identity.version(),
        age_gender_version: age_gender.version(),
        identity_recipe: identity.recipe().clone(),
        age_recipe: age_gender.age_recipe().clone(),
        gender_recipe: age_gender.gender_recipe().clone(),
        dim: identity.dim(),
        age_bins: age_gender.age_bins().to_vec(),
        landmarks: match landmarks {
            LandmarkSource::Detect(_) => "mtcnn".into(),
            LandmarkSource::Aligned => "aligned".into(),
        },
    };
    check_unique_ids(source, out)?;
    if out.exists() {
        return check_finished(out, &meta, source);
    }
    let header = JournalHeader {
        journal: JOURNAL_FORMAT,
        meta: meta.clone(),
        items: n,
        items_sha256: items_hash(source)?,
    };
    let jpath = journal_path(out);
    let spath = skipped_path(out);
    let (resumed, header_len) = if jpath.exists() {
        read_journal(&jpath, &spath, &header)?
    } else {
        (0, write_journal_header(&jpath, &spath, &header)?)
    };
    let mut journal = OpenOptions::new()
        .append(true)
        .open(&jpath)
        .map_err(|e| TeacherError::io(&jpath, e))?;
    let mut skip_log = OpenOptions::new()
        .append(true)
        .open(&spath)
        .map_err(|e| TeacherError::io(&spath, e))?;

    let end = n.min(resumed.saturating_add(options.max_new_images.unwrap_or(usize::MAX)));
    let bar = if options.progress {
        indicatif::ProgressBar::new(n as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("teach {bar:40} {pos}/{len} images, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(resumed as u64);
    bar.reset_eta();
    let batch = options.batch.max(1);
    let (d, k) = (meta.dim, meta.age_bins.len());
    let mut record = Vec::with_capacity(batch * record_size(&meta));
    let mut start = resumed;
    while start < end {
        let stop = (start + batch).min(end);
        // Decoding (and the aligned case's checks) in parallel; detection after, in order.
        let decoded: Vec<std::result::Result<RgbImage, String>> = (start..stop)
            .into_par_iter()
            .map(|i| source.image(i).map_err(|e| e.to_string()))
            .collect();
        let mut located: Vec<std::result::Result<(RgbImage, Located), String>> =
            Vec::with_capacity(stop - start);
        for img in decoded {
            located.push(img.and_then(|img| locate(img, &landmarks)));
        }
        let faces: Vec<FaceRef<'_>> = located
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|(img, at)| FaceRef {
                image: img,
                landmarks: at.landmarks,
                bbox: at.bbox,
            })
            .collect();
        let (mut emb, mut probs, mut ages, mut males) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        if !faces.is_empty() {
            emb = values(identity.embed_faces(&faces, device)?)?;
            let ag = age_gender.predict_faces(&faces, device)?;
            probs = values(ag.age_probs)?;
            ages = values(ag.expected_age)?;
            males = values(ag.p_male)?;
        }
        let mut skips = String::new();
        record.clear();
        let mut r = 0;
        for (i, item) in (start..stop).zip(&located) {
            match item {
                Ok((_, at)) => {
                    let row = CacheRow {
                        embedding: emb[r * d..(r + 1) * d].to_vec(),
                        age_probs: probs[r * k..(r + 1) * k].to_vec(),
                        expected_age: ages[r],
                        p_male: males[r],
                        landmarks: at.landmarks,
                        det_score: at.score,
                    };
                    encode_record(Some(&row), &meta, &mut record);
                    r += 1;
                }
                Err(reason) => {
                    encode_record(None, &meta, &mut record);
                    let line = SkipLine {
                        i,
                        reason: reason.clone(),
                    };
                    skips += &serde_json::to_string(&line)
                        .map_err(|e| TeacherError::cache(&spath, e.to_string()))?;
                    skips.push('\n');
                }
            }
        }
        // Reasons first: a kill between the two writes leaves a reason past the last record,
        // which the next run drops.
        if !skips.is_empty() {
            skip_log
                .write_all(skips.as_bytes())
                .and_then(|()| skip_log.sync_data())
                .map_err(|e| TeacherError::io(&spath, e))?;
        }
        journal
            .write_all(&record)
            .and_then(|()| journal.sync_data())
            .map_err(|e| TeacherError::io(&jpath, e))?;
        bar.inc((stop - start) as u64);
        start = stop;
    }
    bar.finish_and_clear();
    drop(journal);
    let processed = end - resumed;
    let skipped = read_skips(&spath, end)?;
    if end < n {
        return Ok(BuildReport {
            resumed,
            processed,
            skipped: skipped.len(),
            finished: false,
        });
    }
    finish_journal(&jpath, header_len, &meta, source, &skipped, out)?;
    std::fs::remove_file(&jpath).map_err(|e| TeacherError::io(&jpath, e))?;
    std::fs::remove_file(&spath).map_err(|e| TeacherError::io(&spath, e))?;
    Ok(BuildReport {
        resumed,
        processed,
        skipped: skipped.len(),
        finished: true,
    })
}

/// Refuses a source with an id twice. It keeps an 8-byte hash per id, not the ids, and
/// compares the ids themselves only where two hashes meet.
fn check_unique_ids(source: &dyn FaceSource, out: &Path) -> Result<()> {
    use std::hash::{BuildHasher, Hash, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::with_capacity(source.len());
    for i in 0..source.len() {
        let id = source.id(i)?;
        let mut h = state.build_hasher();
        id.hash(&mut h);
        if seen.contains(&h.finish()) {
            let earlier = (0..i).find(|&k| source.id(k).is_ok_and(|other| other == id));
            if earlier.is_some() {
                return Err(TeacherError::cache(
                    out,
                    format!("image id `{id}` appears twice in the input"),
                ));
            }
        }
        seen.insert(h.finish());
    }
    Ok(())
}

/// An existing cache: a no-op when it holds these teachers and exactly these images, an error
/// otherwise.
fn check_finished(out: &Path, meta: &CacheMeta, source: &dyn FaceSource) -> Result<BuildReport> {
    let existing = CacheFile::open(out)?;
    if &existing.meta != meta {
        return Err(TeacherError::cache(
            out,
            format!(
                "exists with other teachers or recipes ({} / {}); refusing to mix targets — choose another output",
                existing.meta.identity_version, existing.meta.age_gender_version
            ),
        ));
    }
    let mut have: Vec<&str> = existing
        .ids
        .iter()
        .map(String::as_str)
        .chain(existing.skipped.iter().map(|(id, _)| id.as_str()))
        .collect();
    let mut want: Vec<String> = Vec::with_capacity(source.len());
    for i in 0..source.len() {
        want.push(source.id(i)?.into_owned());
    }
    have.sort_unstable();
    want.sort_unstable();
    if have.len() == want.len() && have.iter().zip(&want).all(|(a, b)| *a == b.as_str()) {
        // A kill between the rename of the finished file and the journal's removal leaves the
        // journal behind: the file is whole, so it goes now.
        for stale in [journal_path(out), skipped_path(out)] {
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|e| TeacherError::io(&stale, e))?;
            }
        }
        return Ok(BuildReport {
            resumed: source.len(),
            processed: 0,
            skipped: existing.skipped.len(),
            finished: true,
        });
    }
    Err(TeacherError::cache(
        out,
        "exists for another image list; choose another output or delete it".to_string(),
    ))
}

/// Starts a journal (its header line) and an empty reasons file, synced; returns the header's
/// length in bytes.
fn write_journal_header(path: &Path, skipped: &Path, header: &JournalHeader) -> Result<u64> {
    let mut f = File::create(path).map_err(|e| TeacherError::io(path, e))?;
    let line = serde_json::to_string(header).map_err(|e| TeacherError::cache(path, e.to_string()))?;
    writeln!(f, "{line}").map_err(|e| TeacherError::io(path, e))?;
    f.sync_all().map_err(|e| TeacherError::io(path, e))?;
    File::create(skipped)
        .and_then(|f| f.sync_all())
        .map_err(|e| TeacherError::io(skipped, e))?;
    Ok(line.len() as u64 + 1)
}

/// Reads a journal: checks its header against this build, cuts a torn last record (a kill
/// mid-write), and rewrites the reasons file without lines past the last whole record. Returns
/// the number of whole records and the header's length.
fn read_journal(path: &Path, skipped: &Path, header: &JournalHeader) -> Result<(usize, u64)> {
    let file = File::open(path).map_err(|e| TeacherError::io(path, e))?;
    let size = file.metadata().map_err(|e| TeacherError::io(path, e))?.len();
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .map_err(|e| TeacherError::io(path, e))?;
    if !line.ends_with('\n') {
        // Killed while writing the header: nothing was recorded yet, start the journal afresh.
        return Ok((0, write_journal_header(path, skipped, header)?));
    }
    let found: JournalHeader = serde_json::from_str(line.trim_end()).map_err(|e| {
        TeacherError::cache(
            path,
            format!("line 1: not a cache journal of this facekit ({e}); delete it to start again"),
        )
    })?;
    if &found != header {
        return Err(TeacherError::cache(
            path,
            format!(
                "journal of another build (teachers {} / {}, {} images); refusing to mix targets — delete it or choose another output",
                found.meta.identity_version, found.meta.age_gender_version, found.items
            ),
        ));
    }
    let header_len = n as u64;
    let rec = record_size(&header.meta) as u64;
    let whole = (size - header_len) / rec;
    if header_len + whole * rec != size {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| TeacherError::io(path, e))?;
        f.set_len(header_len + whole * rec)
            .and_then(|()| f.sync_all())
            .map_err(|e| TeacherError::io(path, e))?;
    }
    let whole = whole as usize;
    // Keep the reasons of whole records only, each once.
    let kept = read_skips(skipped, whole)?;
    let mut text = String::new();
    for (i, reason) in &kept {
        let line = SkipLine {
            i: *i,
            reason: reason.clone(),
        };
        text += &serde_json::to_string(&line).map_err(|e| TeacherError::cache(skipped, e.to_string()))?;
        text.push('\n');
    }
    face_io::write_atomic(skipped, text.as_bytes())?;
    Ok((whole, header_len))
}

/// The reasons of skipped images below `end`, first per image, in image order (a missing file
/// or a torn last line reads as fewer reasons).
fn read_skips(path: &Path, end: usize) -> Result<Vec<(usize, String)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TeacherError::io(path, e)),
    };
    let mut out = std::collections::BTreeMap::new();
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        if let Ok(s) = serde_json::from_str::<SkipLine>(line.trim_end()) {
            if s.i < end {
                out.entry(s.i).or_insert(s.reason);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Streams a finished journal into the cache file `out`.
fn finish_journal(
    jpath: &Path,
    header_len: u64,
    meta: &CacheMeta,
    source: &dyn FaceSource,
    skipped: &[(usize, String)],
    out: &Path,
) -> Result<()> {
    let rec = record_size(meta);
    let open = || -> Result<BufReader<File>> {
        let mut f = File::open(jpath).map_err(|e| TeacherError::io(jpath, e))?;
        f.seek(SeekFrom::Start(header_len))
            .map_err(|e| TeacherError::io(jpath, e))?;
        Ok(BufReader::with_capacity(1 << 20, f))
    };
    // First pass: which images have rows (the header lists their ids).
    let mut ids = Vec::new();
    let mut r = open()?;
    let mut buf = vec![0u8; rec];
    let mut reasons = skipped.iter().peekable();
    let mut skip_list = Vec::with_capacity(skipped.len());
    for i in 0..source.len() {
        r.read_exact(&mut buf).map_err(|e| TeacherError::io(jpath, e))?;
        if buf[..4] == 0u32.to_le_bytes() {
            ids.push(source.id(i)?.into_owned());
        } else {
            let reason = match reasons.peek() {
                Some((j, why)) if *j == i => {
                    reasons.next();
                    why.clone()
                }
                _ => "skipped (reason lost)".to_owned(),
            };
            skip_list.push((source.id(i)?.into_owned(), reason));
        }
    }
    let mut w = CacheWriter::create(out, meta, &ids, &skip_list)?;
    drop((ids, skip_list));
    let mut r = open()?;
    for _ in 0..source.len() {
        r.read_exact(&mut buf).map_err(|e| TeacherError::io(jpath, e))?;
        if let Some(row) = decode_record(&buf, meta) {
            w.push(&row)?;
        }
    }
    w.finish()
}

fn values<const D: usize, B: Backend>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    Ok(face_nets::to_f32_vec(t)?)
}

/// Where the face of an image is: its landmarks, its box when detected, the detector's score.
struct Located {
    landmarks: [[f32; 2]; 5],
    bbox: Option<[f32; 4]>,
    score: f32,
}

/// Finds the face of a decoded image; the error is the reason for skipping it.
fn locate<B: Backend>(
    img: RgbImage,
    source: &LandmarkSource<'_, B>,
) -> std::result::Result<(RgbImage, Located), String> {
    match source {
        LandmarkSource::Detect(mtcnn) => {
            let faces = mtcnn.detect(&img);
            let face = faces.first().ok_or_else(|| "no face detected".to_string())?;
            let at = Located {
                landmarks: face.landmarks,
                bbox: Some(face.bbox),
                score: face.score,
            };
            Ok((img, at))
        }
        LandmarkSource::Aligned => {
            if img.width() != img.height() {
                return Err(format!(
                    "aligned input must be square, is {}×{}",
                    img.width(),
                    img.height()
                ));
            }
            let t = face_data::FaceTemplate::arcface(img.width()).map_err(|e| e.to_string())?;
            let at = Located {
                landmarks: std::array::from_fn(|j| t.points[j]),
                bbox: None,
                score: 1.0,
            };
            Ok((img, at))
        }
    }
}
