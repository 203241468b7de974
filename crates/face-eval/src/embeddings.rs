//! Embeddings with ids, read from a facekit gallery file (`.fkg`, as written by
//! `facekit embed`) or from a numpy `.npy` matrix (as insightface's scripts save
//! their features) with an optional id list.

use std::collections::HashMap;
use std::path::Path;

use face_search::Gallery;

use crate::error::{EvalError, Result};

/// Row-major f32 embeddings with a unique id per row.
#[derive(Debug, Clone)]
pub struct Embeddings {
    ids: Vec<String>,
    dim: usize,
    data: Vec<f32>,
    index: HashMap<String, usize>,
}

impl Embeddings {
    /// Wraps `ids.len()` rows of `dim` values.
    ///
    /// # Errors
    /// A length mismatch, a zero dimension, a duplicate id or a non-finite value.
    pub fn new(ids: Vec<String>, dim: usize, data: Vec<f32>) -> Result<Self> {
        if dim == 0 || data.len() != ids.len() * dim {
            return Err(EvalError::Inconsistent(format!(
                "{} ids × dimension {dim} do not match {} values",
                ids.len(),
                data.len()
            )));
        }
        if let Some(p) = data.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::Inconsistent(format!(
                "embedding of {:?} (row {}) has a non-finite value at column {}",
                ids[p / dim],
                p / dim,
                p % dim
            )));
        }
        let mut index = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if let Some(j) = index.insert(id.clone(), i) {
                return Err(EvalError::Inconsistent(format!(
                    "id {id:?} appears twice (rows {j} and {i})"
                )));
            }
        }
        Ok(Self {
            ids,
            dim,
            data,
            index,
        })
    }

    /// Reads a `.fkg` gallery file (rows dequantised to f32) or a `.npy` matrix;
    /// for `.npy`, ids come from `ids` (one per line) or are the row numbers.
    ///
    /// # Errors
    /// Unreadable or malformed files, or an id count different from the row count.
    pub fn read(path: &Path, ids: Option<&Path>) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("npy") => {
                let (rows, cols, data) = read_npy_f32(path)?;
                let ids = match ids {
                    Some(p) => {
                        let text = std::fs::read_to_string(p).map_err(|source| EvalError::Io {
                            path: p.into(),
                            source,
                        })?;
                        let v: Vec<String> = text
                            .lines()
                            .map(|l| l.trim_end_matches('\r').to_owned())
                            .collect();
                        if v.len() != rows {
                            return Err(EvalError::Format {
                                path: p.into(),
                                reason: format!("{} ids for the {rows} rows of {}", v.len(), path.display()),
                            });
                        }
                        v
                    }
                    None => (0..rows).map(|i| i.to_string()).collect(),
                };
                Self::new(ids, cols, data)
            }
            _ => {
                let g = Gallery::open(path)?;
                Self::new(
                    (0..g.len()).map(|i| g.id(i).to_owned()).collect(),
                    g.dim(),
                    g.rows_f32(),
                )
            }
        }
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids, in row order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// All values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The row of `id`, if present.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The row of `id`, or an error naming the id and `context` (the protocol
    /// line that needs it).
    ///
    /// # Errors
    /// The id has no embedding.
    pub fn require(&self, id: &str, context: impl FnOnce() -> String) -> Result<usize> {
        self.position(id).ok_or_else(|| EvalError::MissingEmbedding {
            id: id.to_owned(),
            context: context(),
        })
    }

    /// Cosine similarity of rows `a` and `b` (0 when either is a zero vector).
    pub fn cosine(&self, a: usize, b: usize) -> f64 {
        let (x, y) = (self.row(a), self.row(b));
        let (mut d, mut nx, mut ny) = (0f64, 0f64, 0f64);
        for (&p, &q) in x.iter().zip(y) {
            d += f64::from(p) * f64::from(q);
            nx += f64::from(p) * f64::from(p);
            ny += f64::from(q) * f64::from(q);
        }
        if nx == 0.0 || ny == 0.0 {
            0.0
        } else {
            d / (nx.sqrt() * ny.sqrt())
        }
    }
}

/// Reads a 2-D little-endian `<f4` or `<f8` C-order `.npy` matrix as f32
/// (a 1-D array is one row).
///
/// # Errors
/// Not an `.npy` file, another dtype, Fortran order, more than 2 dimensions, or
/// a size that disagrees with the header.
pub fn read_npy_f32(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.into(),
        source,
    })?;
    let fail = |reason: String| EvalError::Format {
        path: path.into(),
        reason,
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(fail("not a .npy file (bad magic)".into()));
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(fail(format!(".npy version {v} not supported"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| fail("truncated or non-text header".into()))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr").ok_or_else(|| fail("header has no 'descr'".into()))?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(fail(format!(
            "dtype {} not supported (need <f4 or <f8)",
            &descr[..descr.find(',').unwrap_or(descr.len())]
        )));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(fail("Fortran-order arrays are not supported".into()));
    }
    let shape = field("shape").ok_or_else(|| fail("header has no 'shape'".into()))?;
    let close = shape.find(')').ok_or_else(|| fail("malformed shape".into()))?;
    let dims: Vec<usize> = shape[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| fail(format!("malformed shape {:?}", &shape[..=close])))
        })
        .collect::<Result<_>>()?;
    let (rows, cols) = match dims.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => return Err(fail(format!("{}-D array; need a 2-D matrix", dims.len()))),
    };
    let body = &bytes[start + hlen..];
    if body.len() != rows * cols * width {
        return Err(fail(format!(
            "{} data bytes, header says {rows} × {cols} × {width}",
            body.len()
        )));
    }
    let data = if width == 4 {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok((rows, cols, data))
}

/// Writes a 2-D `<f4` `.npy` matrix (for interoperability with numpy tools).
///
/// # Errors
/// I/O failure, or `data.len() != rows × cols`.
pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    write_npy(
        path,
        "<f4",
        rows,
        cols,
        data.len(),
        data.iter().flat_map(|v| v.to_le_bytes()),
    )
}

/// Writes a 2-D `<i8` (64-bit integer) `.npy` matrix.
///
/// # Errors
/// I/O failure, or `data.len() != rows × cols`.
pub fn write_npy_i64(path: &Path, rows: usize, cols: usize, data: &[i64]) -> Result<()> {
    write_npy(
        path,
        "<i8",
        rows,
        cols,
        data.len(),
        data.iter().flat_map(|v| v.to_le_bytes()),
    )
}

fn write_npy(
    path: &Path,
    descr: &str,
    rows: usize,
    cols: usize,
    len: usize,
    bytes: impl Iterator<Item = u8>,
) -> Result<()> {
    if len != rows * cols {
        return Err(EvalError::Inconsistent(format!(
            "{len} values for {rows} × {cols}"
        )));
    }
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * len);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(bytes);
    Ok(face_io::write_atomic(path, &out)?)
}
