//! The gallery: embeddings with string ids, stored in one file that is read by
//! memory-mapping it (nothing is copied or parsed beyond a 64-byte header).
//!
//! # File layout (little-endian, version 1)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `FKGALRY1` |
//! | 8 | 4 | version (1) |
//! | 12 | 4 | storage: 0 = f32, 1 = f16, 2 = int8, 3 = sparse f32 |
//! | 16 | 4 | dimension |
//! | 20 | 4 | flags: bit 0 = rows were L2-normalised when stored |
//! | 24 | 8 | rows |
//! | 32 | 8 | stored non-zeros (sparse; 0 otherwise) |
//! | 40 | 8 | bytes of the id section |
//! | 48 | 16 | zero |
//!
//! Then sections, each starting at a multiple of 64 bytes, zero-padded between:
//! dense rows (`rows × dim` values of the storage type); for int8 the per-row
//! scales (`rows` f32, value = scale × int8); for sparse the row offsets
//! (`rows + 1` u64), column indices (`nnz` u32, increasing within a row) and values
//! (`nnz` f32); last the ids, UTF-8, each followed by `\n`.

use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SearchError};

const MAGIC: &[u8; 8] = b"FKGALRY1";
const VERSION: u32 = 1;
const HEADER: usize = 64;
const ALIGN: usize = 64;
const FLAG_NORMALISED: u32 = 1;

/// How a gallery stores its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// 4 bytes a value; search is exact.
    F32,
    /// IEEE half precision, 2 bytes a value (relative error ≤ 2⁻¹¹ per value).
    F16,
    /// Symmetric per-row int8 quantisation (value ≈ scale × q, |q| ≤ 127), 1 byte a
    /// value + 4 bytes a row; queries are quantised the same way and scored with
    /// exact integer dot products.
    Int8,
    /// Only the non-zero values (u32 column + f32 value each): for sparse embeddings
    /// such as ReLU outputs. Search is exact.
    Sparse,
}

impl Storage {
    fn code(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Int8 => 2,
            Self::Sparse => 3,
        }
    }

    fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Int8,
            3 => Self::Sparse,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Storage {
    type Err = SearchError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" => Self::F32,
            "f16" => Self::F16,
            "int8" | "i8" => Self::Int8,
            "sparse" => Self::Sparse,
            other => {
                return Err(SearchError::Invalid(format!(
                    "unknown storage {other:?} (expected f32, f16, int8 or sparse)"
                )))
            }
        })
    }
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Int8 => "int8",
            Self::Sparse => "sparse",
        })
    }
}

/// Options for [`Gallery::build`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Storage form.
    pub storage: Storage,
    /// L2-normalise rows before storing (and queries before searching), so
    /// scores are cosine similarities. Default true.
    pub normalise: bool,
}

impl BuildOptions {
    /// Normalised rows in the given storage.
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            normalise: true,
        }
    }
}

/// Byte offsets of the sections, computed from the header fields.
#[derive(Debug, Clone, Copy)]
struct Layout {
    data: usize,
    data_len: usize,
    scales: usize,
    row_ptr: usize,
    indices: usize,
    values: usize,
    ids: usize,
    total: usize,
}

fn align_up(x: usize) -> usize {
    x.div_ceil(ALIGN) * ALIGN
}

impl Layout {
    fn new(storage: Storage, dim: usize, rows: usize, nnz: usize, ids_len: usize) -> Option<Self> {
        let mut at = HEADER;
        let (mut data, mut data_len, mut scales, mut row_ptr, mut indices, mut values) = (0, 0, 0, 0, 0, 0);
        match storage {
            Storage::F32 | Storage::F16 | Storage::Int8 => {
                let width = match storage {
                    Storage::F32 => 4,
                    Storage::F16 => 2,
                    _ => 1,
                };
                data = at;
                data_len = rows.checked_mul(dim)?.checked_mul(width)?;
                at = align_up(at.checked_add(data_len)?);
                if storage == Storage::Int8 {
                    scales = at;
                    at = align_up(at.checked_add(rows.checked_mul(4)?)?);
                }
            }
            Storage::Sparse => {
                row_ptr = at;
                at = align_up(at.checked_add(rows.checked_add(1)?.checked_mul(8)?)?);
                indices = at;
                at = align_up(at.checked_add(nnz.checked_mul(4)?)?);
                values = at;
                at = align_up(at.checked_add(nnz.checked_mul(4)?)?);
            }
        }
        let ids = at;
        let total = ids.checked_add(ids_len)?;
        Some(Self {
            data,
            data_len,
            scales,
            row_ptr,
            indices,
            values,
            ids,
            total,
        })
    }
}

/// The bytes behind a gallery: built in memory (8-byte aligned) or mapped from a file.
enum Backing {
    Heap(Vec<u64>, usize),
    Map(Mmap),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Heap(words, len) => &bytemuck::cast_slice(words)[..*len],
            Self::Map(m) => m,
        }
    }
}

/// Borrowed views of a gallery's rows, one variant per storage.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Int8 {
        data: &'a [i8],
        scales: &'a [f32],
    },
    Sparse {
        row_ptr: &'a [u64],
        indices: &'a [u32],
        values: &'a [f32],
    },
}

/// A searchable set of embeddings with ids. See the module docs for the file format.
pub struct Gallery {
    backing: Backing,
    storage: Storage,
    dim: usize,
    rows: usize,
    nnz: usize,
    normalised: bool,
    layout: Layout,
    /// Byte range of each id inside the id section.
    id_spans: Vec<(u32, u32)>,
    source: Option<PathBuf>,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("storage", &self.storage)
            .field("dim", &self.dim)
            .field("rows", &self.rows)
            .field("nnz", &self.nnz)
            .field("normalised", &self.normalised)
            .field("source", &self.source)
            .finish()
    }
}

/// Checks that every value is finite, naming the first bad one.
pub(crate) fn check_finite(what: &'static str, data: &[f32], dim: usize) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(p) => Err(SearchError::NonFinite {
            what,
            row: p / dim.max(1),
            column: p % dim.max(1),
            value: data[p],
        }),
    }
}

/// L2-normalises each row in place (zero rows stay zero).
pub(crate) fn normalise_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let n = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        if n > 0.0 {
            let inv = (1.0 / n) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// Symmetric int8 quantisation of one row: (values, scale) with value ≈ scale × q.
pub(crate) fn quantise_row(row: &[f32], out: &mut [i8]) -> f32 {
    let max = row.iter().fold(0f32, |m, &v| m.max(v.abs()));
    if max == 0.0 {
        out.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let scale = max / 127.0;
    for (q, &v) in out.iter_mut().zip(row) {
        *q = (v / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn write_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Gallery {
    /// Builds a gallery in memory from `ids.len()` dense rows of `dim` f32 values
    /// (row-major), in the storage of `options`.
    ///
    /// # Errors
    /// No rows, a zero dimension, `data.len() != ids.len() × dim`, a non-finite
    /// value (named by row and column), or an id containing a newline.
    pub fn build(ids: &[impl AsRef<str>], dim: usize, data: &[f32], options: BuildOptions) -> Result<Self> {
        if dim == 0 {
            return Err(SearchError::Empty {
                what: "embedding dimension",
            });
        }
        if ids.is_empty() {
            return Err(SearchError::Empty { what: "gallery" });
        }
        if data.len() != ids.len() * dim {
            return Err(SearchError::Dimension {
                what: "gallery rows",
                expected: ids.len() * dim,
                found: data.len(),
            });
        }
        if options.storage == Storage::Sparse && dim > u32::MAX as usize {
            return Err(SearchError::Invalid(format!(
                "dimension {dim} too large for sparse storage"
            )));
        }
        check_finite("gallery", data, dim)?;
        let mut rows_f32;
        let data = if options.normalise {
            rows_f32 = data.to_vec();
            normalise_rows(&mut rows_f32, dim);
            &rows_f32[..]
        } else {
            data
        };
        let mut id_text = String::new();
        for (i, id) in ids.iter().enumerate() {
            let id = id.as_ref();
            if id.contains('\n') {
                return Err(SearchError::Invalid(format!(
                    "gallery id {i} ({id:?}) contains a newline"
                )));
            }
            id_text.push_str(id);
            id_text.push('\n');
        }
        let rows = ids.len();
        let nnz = match options.storage {
            Storage::Sparse => data.iter().filter(|&&v| v != 0.0).count(),
            _ => 0,
        };
        let layout = Layout::new(options.storage, dim, rows, nnz, id_text.len())
            .ok_or_else(|| SearchError::Invalid("gallery too large".into()))?;
        let mut words = vec![0u64; layout.total.div_ceil(8)];
        {
            let b: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
            b[..8].copy_from_slice(MAGIC);
            write_u32(b, 8, VERSION);
            write_u32(b, 12, options.storage.code());
            write_u32(b, 16, dim as u32);
            write_u32(b, 20, if options.normalise { FLAG_NORMALISED } else { 0 });
            write_u64(b, 24, rows as u64);
            write_u64(b, 32, nnz as u64);
            write_u64(b, 40, id_text.len() as u64);
            match options.storage {
                Storage::F32 => {
                    bytemuck::cast_slice_mut::<u8, f32>(&mut b[layout.data..layout.data + layout.data_len])
                        .copy_from_slice(data);
                }
                Storage::F16 => {
                    let out: &mut [f16] =
                        bytemuck::cast_slice_mut(&mut b[layout.data..layout.data + layout.data_len]);
                    half::slice::HalfFloatSliceExt::convert_from_f32_slice(out, data);
                }
                Storage::Int8 => {
                    let mut scales = vec![0f32; rows];
                    {
                        let q: &mut [i8] =
                            bytemuck::cast_slice_mut(&mut b[layout.data..layout.data + layout.data_len]);
                        for ((row, out), s) in data
                            .chunks_exact(dim)
                            .zip(q.chunks_exact_mut(dim))
                            .zip(&mut scales)
                        {
                            *s = quantise_row(row, out);
                        }
                    }
                    bytemuck::cast_slice_mut::<u8, f32>(&mut b[layout.scales..layout.scales + 4 * rows])
                        .copy_from_slice(&scales);
                }
                Storage::Sparse => {
                    let mut row_ptr = Vec::with_capacity(rows + 1);
                    let mut indices = Vec::with_capacity(nnz);
                    let mut values = Vec::with_capacity(nnz);
                    row_ptr.push(0u64);
                    for row in data.chunks_exact(dim) {
                        for (c, &v) in row.iter().enumerate() {
                            if v != 0.0 {
                                indices.push(c as u32);
                                values.push(v);
                            }
                        }
                        row_ptr.push(indices.len() as u64);
                    }
                    bytemuck::cast_slice_mut::<u8, u64>(
                        &mut b[layout.row_ptr..layout.row_ptr + 8 * (rows + 1)],
                    )
                    .copy_from_slice(&row_ptr);
                    bytemuck::cast_slice_mut::<u8, u32>(&mut b[layout.indices..layout.indices + 4 * nnz])
                        .copy_from_slice(&indices);
                    bytemuck::cast_slice_mut::<u8, f32>(&mut b[layout.values..layout.values + 4 * nnz])
                        .copy_from_slice(&values);
                }
            }
            b[layout.ids..layout.ids + id_text.len()].copy_from_slice(id_text.as_bytes());
        }
        Self::from_backing(Backing::Heap(words, layout.total), None)
    }

    /// Opens a gallery file written by [`Gallery::write`] by memory-mapping it.
    /// The header, section sizes, sparse row offsets and ids are validated; the
    /// values themselves are not read until searched.
    ///
    /// # Errors
    /// The file cannot be opened or mapped, or is not a valid gallery (the reason
    /// names the inconsistency: magic, version, size, offsets).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| SearchError::Io {
            path: path.into(),
            source,
        })?;
        // SAFETY: the map is read-only; like every memory-mapped reader, we rely on
        // the file not being truncated by another process while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| SearchError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_backing(Backing::Map(map), Some(path.to_path_buf()))
    }

    fn from_backing(backing: Backing, source: Option<PathBuf>) -> Result<Self> {
        let fail = |reason: String| SearchError::Format {
            path: source.clone().unwrap_or_else(|| PathBuf::from("<memory>")),
            reason,
        };
        let b = backing.bytes();
        if b.len() < HEADER {
            return Err(fail(format!(
                "{} bytes, shorter than the 64-byte header",
                b.len()
            )));
        }
        if &b[..8] != MAGIC {
            return Err(fail("wrong magic bytes (expected FKGALRY1)".into()));
        }
        let version = read_u32(b, 8);
        if version != VERSION {
            return Err(fail(format!(
                "version {version}, this build reads version {VERSION}"
            )));
        }
        let storage = Storage::from_code(read_u32(b, 12))
            .ok_or_else(|| fail(format!("unknown storage code {}", read_u32(b, 12))))?;
        let dim = read_u32(b, 16) as usize;
        let normalised = read_u32(b, 20) & FLAG_NORMALISED != 0;
        let to_usize =
            |v: u64, what: &str| usize::try_from(v).map_err(|_| fail(format!("{what} {v} too large")));
        let rows = to_usize(read_u64(b, 24), "row count")?;
        let nnz = to_usize(read_u64(b, 32), "non-zero count")?;
        let ids_len = to_usize(read_u64(b, 40), "id section length")?;
        if dim == 0 || rows == 0 {
            return Err(fail(format!("dimension {dim}, rows {rows}: empty gallery")));
        }
        let layout =
            Layout::new(storage, dim, rows, nnz, ids_len).ok_or_else(|| fail("sizes overflow".into()))?;
        if layout.total != b.len() {
            return Err(fail(format!(
                "{} bytes, but the header ({storage}, {rows} rows × {dim}, {nnz} non-zeros, {ids_len} id bytes) implies {} (truncated or appended to?)",
                b.len(),
                layout.total
            )));
        }
        if !(b.as_ptr() as usize).is_multiple_of(8) {
            return Err(fail("mapping is not 8-byte aligned".into()));
        }
        let id_bytes = &b[layout.ids..layout.ids + ids_len];
        let text = std::str::from_utf8(id_bytes).map_err(|e| fail(format!("ids are not UTF-8: {e}")))?;
        let mut id_spans = Vec::with_capacity(rows);
        let mut start = 0usize;
        for (i, c) in text.bytes().enumerate() {
            if c == b'\n' {
                id_spans.push((start as u32, i as u32));
                start = i + 1;
            }
        }
        if id_spans.len() != rows || start != text.len() {
            return Err(fail(format!("{} ids for {rows} rows", id_spans.len())));
        }
        if storage == Storage::Sparse {
            let row_ptr: &[u64] = bytemuck::cast_slice(&b[layout.row_ptr..layout.row_ptr + 8 * (rows + 1)]);
            let indices: &[u32] = bytemuck::cast_slice(&b[layout.indices..layout.indices + 4 * nnz]);
            if row_ptr[0] != 0 || row_ptr[rows] != nnz as u64 {
                return Err(fail("sparse row offsets do not span the non-zeros".into()));
            }
            for r in 0..rows {
                let (s, e) = (row_ptr[r], row_ptr[r + 1]);
                if s > e {
                    return Err(fail(format!("sparse row {r}: offsets decrease")));
                }
                let cols = &indices[s as usize..e as usize];
                if cols.windows(2).any(|w| w[0] >= w[1]) || cols.last().is_some_and(|&c| c as usize >= dim) {
                    return Err(fail(format!(
                        "sparse row {r}: columns not increasing or ≥ dimension {dim}"
                    )));
                }
            }
        }
        Ok(Self {
            backing,
            storage,
            dim,
            rows,
            nnz,
            normalised,
            layout,
            id_spans,
            source,
        })
    }

    /// Writes the gallery to `path` (to a temporary file renamed into place, so
    /// a crash never leaves a partial gallery under the final name).
    ///
    /// # Errors
    /// I/O failure, naming the path.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(face_io::write_atomic(path.as_ref(), self.backing.bytes())?)
    }

    /// Storage form.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the gallery has no rows (never true for a built or opened one).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Whether rows were L2-normalised when stored (queries then are too).
    pub fn normalised(&self) -> bool {
        self.normalised
    }

    /// Stored non-zero values (sparse storage), else `len() × dim()`.
    pub fn stored_values(&self) -> usize {
        match self.storage {
            Storage::Sparse => self.nnz,
            _ => self.rows * self.dim,
        }
    }

    /// Size of the gallery in bytes (the file size).
    pub fn byte_len(&self) -> usize {
        self.layout.total
    }

    /// The file this gallery was opened from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The id of row `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn id(&self, i: usize) -> &str {
        let (s, e) = self.id_spans[i];
        let b = &self.backing.bytes()[self.layout.ids + s as usize..self.layout.ids + e as usize];
        // Validated as UTF-8 when built or opened; spans end at '\n' boundaries.
        std::str::from_utf8(b).unwrap_or_default()
    }

    /// Row `i` as f32 (dequantised / densified for non-f32 storage).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn row(&self, i: usize) -> Vec<f32> {
        let d = self.dim;
        match self.rows_view() {
            Rows::F32(v) => v[i * d..(i + 1) * d].to_vec(),
            Rows::F16(v) => v[i * d..(i + 1) * d].iter().map(|x| x.to_f32()).collect(),
            Rows::Int8 { data, scales } => data[i * d..(i + 1) * d]
                .iter()
                .map(|&q| f32::from(q) * scales[i])
                .collect(),
            Rows::Sparse {
                row_ptr,
                indices,
                values,
            } => {
                let mut out = vec![0f32; d];
                for k in row_ptr[i] as usize..row_ptr[i + 1] as usize {
                    out[indices[k] as usize] = values[k];
                }
                out
            }
        }
    }

    /// Every row as f32, row-major (`len() × dim()` values; dequantised / densified).
    pub fn rows_f32(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.dim);
        for i in 0..self.rows {
            out.extend(self.row(i));
        }
        out
    }

    pub(crate) fn rows_view(&self) -> Rows<'_> {
        let b = self.backing.bytes();
        let l = &self.layout;
        match self.storage {
            Storage::F32 => Rows::F32(bytemuck::cast_slice(&b[l.data..l.data + l.data_len])),
            Storage::F16 => Rows::F16(bytemuck::cast_slice(&b[l.data..l.data + l.data_len])),
            Storage::Int8 => Rows::Int8 {
                data: bytemuck::cast_slice(&b[l.data..l.data + l.data_len]),
                scales: bytemuck::cast_slice(&b[l.scales..l.scales + 4 * self.rows]),
            },
            Storage::Sparse => Rows::Sparse {
                row_ptr: bytemuck::cast_slice(&b[l.row_ptr..l.row_ptr + 8 * (self.rows + 1)]),
                indices: bytemuck::cast_slice(&b[l.indices..l.indices + 4 * self.nnz]),
                values: bytemuck::cast_slice(&b[l.values..l.values + 4 * self.nnz]),
            },
        }
    }
}
