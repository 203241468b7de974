//! The teacher-target cache: both teachers run once over an image set (a folder, a list file or
//! an insightface RecordIO set: [`CacheItem`]), the results kept in one
//! safetensors file that the distillation trainer reads instead of re-running the teachers.
//!
//! File layout (`safetensors`): tensors `embeddings [N, D]`, `age_probs [N, bins]`,
//! `expected_age [N]`, `p_male [N]`, `landmarks [N, 5, 2]`, `det_score [N]` (all `f32`, rows in
//! input order, images without a face left out); metadata `facekit.cache` (JSON [`CacheMeta`]:
//! format, teacher versions, recipes), `facekit.ids` (JSON list of image ids, one per row) and
//! `facekit.skipped` (JSON list of `[id, reason]`).
//!
//! Building is resumable: rows are appended to `<out>.journal` (JSON lines after a header that
//! pins the teachers and the item list) and flushed after every batch. A rerun after a kill reads
//! the journal, drops a torn last line, skips the images already done and appends the rest, so no
//! row is lost or repeated. The final file is written to a temporary name and renamed, and the
//! journal removed only then. A journal or cache made by other teachers, recipes or items is
//! refused, never mixed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use face_detect::Mtcnn;
use image::RgbImage;
use safetensors::tensor::{Dtype, TensorView};
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

/// One image to run the teachers on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CacheItem {
    /// A unique id (relative path, RecordIO key, …) stored with the row.
    pub id: String,
    /// The image file, or the directory of an insightface `train.rec`/`train.idx` pair.
    pub path: PathBuf,
    /// Image index inside that RecordIO set (`None` for an image file).
    #[serde(default)]
    pub record: Option<usize>,
}

impl CacheItem {
    /// All images under `dir` ([`face_data::list_images`]: jpg, jpeg, png, recursively, hidden
    /// entries skipped), ids relative to `dir`, sorted.
    ///
    /// # Errors
    /// An unreadable directory.
    pub fn from_folder(dir: &Path) -> Result<Vec<Self>> {
        Ok(face_data::list_images(dir)?
            .into_iter()
            .map(|(id, path)| Self {
                id,
                path,
                record: None,
            })
            .collect())
    }

    /// Every image of an insightface RecordIO training set (`dir/train.rec` + `train.idx`; the
    /// crops are ArcFace-aligned, so build with [`LandmarkSource::Aligned`]); ids are
    /// `rec:<index>:<class label>`.
    ///
    /// # Errors
    /// A missing or corrupt RecordIO pair.
    pub fn from_recordio(dir: &Path) -> Result<Vec<Self>> {
        let set = face_data::formats::recordio::InsightFaceRecordSet::open(dir)?;
        (0..set.len())
            .map(|i| {
                let (label, _) = set.get(i)?;
                Ok(Self {
                    id: format!("rec:{i}:{label}"),
                    path: dir.to_owned(),
                    record: Some(i),
                })
            })
            .collect()
    }

    /// One image path per line of a list file (blank lines and `#` comments skipped; relative
    /// paths are taken from the list's directory).
    ///
    /// # Errors
    /// An unreadable list or a duplicated path (named with its line).
    pub fn from_list(list: &Path) -> Result<Vec<Self>> {
        let text = std::fs::read_to_string(list).map_err(|e| TeacherError::io(list, e))?;
        let base = list.parent().unwrap_or(Path::new("."));
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !seen.insert(line.to_owned()) {
                return Err(TeacherError::cache(
                    list,
                    format!("line {}: `{line}` listed twice", i + 1),
                ));
            }
            out.push(Self {
                id: line.to_owned(),
                path: base.join(line),
                record: None,
            });
        }
        Ok(out)
    }
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
    /// I/O errors.
    pub fn write(&self, path: &Path) -> Result<()> {
        let n = self.len();
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let k = self.meta.age_bins.len();
        let tensors = [
            ("embeddings", bytes(&self.embeddings), vec![n, self.meta.dim]),
            ("age_probs", bytes(&self.age_probs), vec![n, k]),
            ("expected_age", bytes(&self.expected_age), vec![n]),
            ("p_male", bytes(&self.p_male), vec![n]),
            ("landmarks", bytes(&self.landmarks), vec![n, 5, 2]),
            ("det_score", bytes(&self.det_score), vec![n]),
        ];
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(name, data, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), data)
                    .map(|v| (*name, v))
                    .map_err(|e| TeacherError::cache(path, format!("tensor `{name}`: {e}")))
            })
            .collect::<Result<_>>()?;
        let json = |key: &str, v: serde_json::Result<String>| {
            v.map(|s| (key.to_owned(), s))
                .map_err(|e| TeacherError::cache(path, format!("metadata `{key}`: {e}")))
        };
        let info: std::collections::HashMap<String, String> = [
            json("facekit.cache", serde_json::to_string(&self.meta))?,
            json("facekit.ids", serde_json::to_string(&self.ids))?,
            json("facekit.skipped", serde_json::to_string(&self.skipped))?,
        ]
        .into_iter()
        .collect();
        let data = safetensors::serialize(views, Some(info))
            .map_err(|e| TeacherError::cache(path, format!("serialising: {e}")))?;
        Ok(face_io::write_atomic(path, &data)?)
    }

    /// Reads a cache file.
    ///
    /// # Errors
    /// A missing file, a file that is not a facekit cache, a newer format, or inconsistent
    /// shapes — each naming the file and the key.
    pub fn read(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| TeacherError::io(path, e))?;
        // One parse of the header (which holds every id): `read_metadata` validates the tensor
        // offsets, so the views below are cut from the data section directly.
        let (header_len, header) = safetensors::SafeTensors::read_metadata(&data)
            .map_err(|e| TeacherError::cache(path, format!("not a safetensors file: {e}")))?;
        let body = &data[8 + header_len..];
        let info = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| -> Result<&String> {
            info.get(key).ok_or_else(|| {
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
        let tensor = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>> {
            let t = header
                .info(name)
                .ok_or_else(|| TeacherError::cache(path, format!("tensor `{name}` missing")))?;
            if t.dtype != Dtype::F32 || t.shape != shape {
                return Err(TeacherError::cache(
                    path,
                    format!(
                        "tensor `{name}` is {:?} {:?}, expected F32 {shape:?}",
                        t.dtype, t.shape
                    ),
                ));
            }
            let (start, end) = t.data_offsets;
            Ok(body[start..end]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        Ok(Self {
            embeddings: tensor("embeddings", vec![n, meta.dim])?,
            age_probs: tensor("age_probs", vec![n, meta.age_bins.len()])?,
            expected_age: tensor("expected_age", vec![n])?,
            p_male: tensor("p_male", vec![n])?,
            landmarks: tensor("landmarks", vec![n, 5, 2])?,
            det_score: tensor("det_score", vec![n])?,
            meta,
            ids,
            skipped,
        })
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

/// One journal line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct JournalRow {
    i: usize,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    #[serde(default)]
    embedding: Vec<f32>,
    #[serde(default)]
    age_probs: Vec<f32>,
    #[serde(default)]
    expected_age: f32,
    #[serde(default)]
    p_male: f32,
    #[serde(default)]
    landmarks: Vec<f32>,
    #[serde(default)]
    det_score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JournalHeader {
    meta: CacheMeta,
    items: usize,
    items_sha256: String,
}

fn items_hash(items: &[CacheItem]) -> String {
    let mut h = sha2::Sha256::new();
    for it in items {
        h.update(it.id.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The journal path of a cache file.
pub fn journal_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// Runs both teachers over `items` into the cache file `out` (see the module docs for resuming).
///
/// # Errors
/// An existing cache or journal made by other teachers or items, I/O errors, an empty item
/// list or duplicated ids. Unreadable images and images without a face are not errors: they are
/// recorded in the cache's `skipped` list with the reason.
pub fn build_cache<B: Backend>(
    identity: &dyn IdentityTeacher<B>,
    age_gender: &dyn AgeGenderTeacher<B>,
    landmarks: LandmarkSource<'_, B>,
    items: &[CacheItem],
    out: &Path,
    options: &BuildOptions,
    device: &B::Device,
) -> Result<BuildReport> {
    if items.is_empty() {
        return Err(TeacherError::EmptyBatch);
    }
    let mut ids = std::collections::HashSet::new();
    if let Some(dup) = items.iter().find(|it| !ids.insert(it.id.as_str())) {
        return Err(TeacherError::cache(
            out,
            format!("image id `{}` appears twice in the input", dup.id),
        ));
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
    let header = JournalHeader {
        meta: meta.clone(),
        items: items.len(),
        items_sha256: items_hash(items),
    };
    if out.exists() {
        let existing = TargetCache::read(out)?;
        if existing.meta != meta {
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
        let mut want: Vec<&str> = items.iter().map(|it| it.id.as_str()).collect();
        have.sort_unstable();
        want.sort_unstable();
        if have == want {
            return Ok(BuildReport {
                resumed: items.len(),
                processed: 0,
                skipped: existing.skipped.len(),
                finished: true,
            });
        }
        return Err(TeacherError::cache(
            out,
            "exists for another image list; choose another output or delete it".to_string(),
        ));
    }

    let jpath = journal_path(out);
    let mut done: BTreeMap<usize, JournalRow> = BTreeMap::new();
    if jpath.exists() {
        done = read_journal(&jpath, &header, items)?;
    } else {
        write_journal_header(&jpath, &header)?;
    }
    let resumed = done.len();
    let mut journal = OpenOptions::new()
        .append(true)
        .open(&jpath)
        .map_err(|e| TeacherError::io(&jpath, e))?;

    let todo: Vec<usize> = (0..items.len()).filter(|i| !done.contains_key(i)).collect();
    let limit = options.max_new_images.unwrap_or(usize::MAX).min(todo.len());
    let bar = if options.progress {
        indicatif::ProgressBar::new(items.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("teach {bar:40} {pos}/{len} images, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(resumed as u64);
    let batch = options.batch.max(1);
    let mut sets = RecordSets::default();
    for chunk in todo[..limit].chunks(batch) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut faces: Vec<(usize, RgbImage, Located)> = Vec::new();
        for &i in chunk {
            let it = &items[i];
            match face_for(it, &landmarks, &mut sets) {
                Ok((img, at)) => faces.push((i, img, at)),
                Err(reason) => rows.push(JournalRow {
                    i,
                    id: it.id.clone(),
                    skipped: Some(reason),
                    ..JournalRow::default()
                }),
            }
        }
        if !faces.is_empty() {
            let refs: Vec<FaceRef<'_>> = faces
                .iter()
                .map(|(_, img, at)| FaceRef {
                    image: img,
                    landmarks: at.landmarks,
                    bbox: at.bbox,
                })
                .collect();
            let emb = values(identity.embed_faces(&refs, device)?)?;
            let ag = age_gender.predict_faces(&refs, device)?;
            let (probs, ages, males) = (
                values(ag.age_probs)?,
                values(ag.expected_age)?,
                values(ag.p_male)?,
            );
            let (d, k) = (meta.dim, meta.age_bins.len());
            for (r, (i, _, at)) in faces.iter().enumerate() {
                rows.push(JournalRow {
                    i: *i,
                    id: items[*i].id.clone(),
                    skipped: None,
                    embedding: emb[r * d..(r + 1) * d].to_vec(),
                    age_probs: probs[r * k..(r + 1) * k].to_vec(),
                    expected_age: ages[r],
                    p_male: males[r],
                    landmarks: at.landmarks.iter().flatten().copied().collect(),
                    det_score: at.score,
                });
            }
        }
        let mut text = String::new();
        for row in &rows {
            text += &serde_json::to_string(row).map_err(|e| TeacherError::cache(&jpath, e.to_string()))?;
            text.push('\n');
        }
        journal
            .write_all(text.as_bytes())
            .map_err(|e| TeacherError::io(&jpath, e))?;
        journal.sync_data().map_err(|e| TeacherError::io(&jpath, e))?;
        bar.inc(rows.len() as u64);
        for row in rows {
            done.insert(row.i, row);
        }
    }
    bar.finish_and_clear();
    let skipped = done.values().filter(|r| r.skipped.is_some()).count();
    let processed = done.len() - resumed;
    if done.len() < items.len() {
        return Ok(BuildReport {
            resumed,
            processed,
            skipped,
            finished: false,
        });
    }
    let mut cache = TargetCache {
        meta,
        ids: Vec::new(),
        embeddings: Vec::new(),
        age_probs: Vec::new(),
        expected_age: Vec::new(),
        p_male: Vec::new(),
        landmarks: Vec::new(),
        det_score: Vec::new(),
        skipped: Vec::new(),
    };
    for row in done.into_values() {
        if let Some(reason) = row.skipped {
            cache.skipped.push((row.id, reason));
            continue;
        }
        cache.ids.push(row.id);
        cache.embeddings.extend(row.embedding);
        cache.age_probs.extend(row.age_probs);
        cache.expected_age.push(row.expected_age);
        cache.p_male.push(row.p_male);
        cache.landmarks.extend(row.landmarks);
        cache.det_score.push(row.det_score);
    }
    cache.write(out)?;
    std::fs::remove_file(&jpath).map_err(|e| TeacherError::io(&jpath, e))?;
    Ok(BuildReport {
        resumed,
        processed,
        skipped,
        finished: true,
    })
}

/// Starts a journal: its header line, synced to disk.
fn write_journal_header(path: &Path, header: &JournalHeader) -> Result<()> {
    let mut f = File::create(path).map_err(|e| TeacherError::io(path, e))?;
    let line = serde_json::to_string(header).map_err(|e| TeacherError::cache(path, e.to_string()))?;
    writeln!(f, "{line}").map_err(|e| TeacherError::io(path, e))?;
    f.sync_all().map_err(|e| TeacherError::io(path, e))
}

/// Reads a journal: checks its header against this build, keeps the first row of each item,
/// and truncates a torn last line (a kill mid-write) so appends continue on a clean line.
fn read_journal(
    path: &Path,
    header: &JournalHeader,
    items: &[CacheItem],
) -> Result<BTreeMap<usize, JournalRow>> {
    let file = File::open(path).map_err(|e| TeacherError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut offset = 0u64;
    let n = reader
        .read_line(&mut line)
        .map_err(|e| TeacherError::io(path, e))?;
    if !line.ends_with('\n') {
        // Killed while writing the header: nothing was recorded yet, start the journal afresh.
        write_journal_header(path, header)?;
        return Ok(BTreeMap::new());
    }
    let found: JournalHeader = serde_json::from_str(line.trim_end())
        .map_err(|e| TeacherError::cache(path, format!("line 1: not a cache journal header: {e}")))?;
    if &found != header {
        return Err(TeacherError::cache(
            path,
            format!(
                "journal of another build (teachers {} / {}, {} items); refusing to mix targets — delete it or choose another output",
                found.meta.identity_version, found.meta.age_gender_version, found.items
            ),
        ));
    }
    offset += n as u64;
    let mut rows = BTreeMap::new();
    let (d, k) = (header.meta.dim, header.meta.age_bins.len());
    let mut lineno = 1;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| TeacherError::io(path, e))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let complete = line.ends_with('\n');
        match serde_json::from_str::<JournalRow>(line.trim_end()) {
            Ok(row) if complete => {
                let valid = row.i < items.len()
                    && items[row.i].id == row.id
                    && (row.skipped.is_some()
                        || (row.embedding.len() == d
                            && row.age_probs.len() == k
                            && row.landmarks.len() == 10));
                if !valid {
                    return Err(TeacherError::cache(
                        path,
                        format!("line {lineno}: row does not fit this build"),
                    ));
                }
                rows.entry(row.i).or_insert(row);
                offset += n as u64;
            }
            _ if !complete => {
                // A torn final line: cut it off so the next append starts cleanly.
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| TeacherError::io(path, e))?;
                f.set_len(offset).map_err(|e| TeacherError::io(path, e))?;
                break;
            }
            Err(e) => return Err(TeacherError::cache(path, format!("line {lineno}: {e}"))),
            Ok(_) => unreachable!("complete rows are handled above"),
        }
    }
    Ok(rows)
}

fn values<const D: usize, B: Backend>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    Ok(face_nets::to_f32_vec(t)?)
}

/// RecordIO sets opened on first use.
#[derive(Default)]
struct RecordSets(std::collections::HashMap<PathBuf, face_data::formats::recordio::InsightFaceRecordSet>);

impl RecordSets {
    fn open(
        &mut self,
        dir: &Path,
    ) -> std::result::Result<&face_data::formats::recordio::InsightFaceRecordSet, String> {
        if !self.0.contains_key(dir) {
            let set =
                face_data::formats::recordio::InsightFaceRecordSet::open(dir).map_err(|e| e.to_string())?;
            self.0.insert(dir.to_owned(), set);
        }
        Ok(&self.0[dir])
    }
}

/// Decodes an image and finds its landmarks; the error is the reason for skipping it.
/// Where the face of an item is: its landmarks, its box when detected, the detector's score.
struct Located {
    landmarks: [[f32; 2]; 5],
    bbox: Option<[f32; 4]>,
    score: f32,
}

fn face_for<B: Backend>(
    item: &CacheItem,
    source: &LandmarkSource<'_, B>,
    sets: &mut RecordSets,
) -> std::result::Result<(RgbImage, Located), String> {
    let img = match item.record {
        None => face_data::read_rgb(&item.path).map_err(|e| e.to_string())?,
        Some(i) => {
            let set = sets.open(&item.path)?;
            let (_, bytes) = set.get(i).map_err(|e| e.to_string())?;
            face_data::decode_rgb(&bytes, &item.path).map_err(|e| e.to_string())?
        }
    };
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
