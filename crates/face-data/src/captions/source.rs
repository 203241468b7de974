//! Caption columns from the files LAION-style metadata comes in — Parquet (feature `parquet`),
//! CSV, TSV and JSON Lines — read in bounded batches. Rows that cannot give a caption are
//! counted by kind (with a few examples), never fatal and never dropped silently; only a
//! file-level problem (unreadable file, no such column in a header or schema) is an error.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// File format of a caption corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CaptionFormat {
    /// Comma-separated with a header row.
    Csv,
    /// Tab-separated with a header row.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (LAION's metadata format); needs the `parquet` feature.
    Parquet,
}

impl CaptionFormat {
    /// The format implied by a file extension (`.csv`, `.tsv`, `.jsonl`/`.json`, `.parquet`).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(CaptionFormat::Csv),
            "tsv" | "tab" => Some(CaptionFormat::Tsv),
            "jsonl" | "json" | "ndjson" => Some(CaptionFormat::Jsonl),
            "parquet" => Some(CaptionFormat::Parquet),
            _ => None,
        }
    }
}

/// Why a row gave no caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BadRowKind {
    /// The row has no value for the caption column.
    MissingColumn,
    /// The caption is not valid UTF-8.
    InvalidUtf8,
    /// The caption is empty or white space only.
    Empty,
    /// The caption is null (Parquet, JSON `null`).
    Null,
    /// The row itself is malformed (bad JSON, a CSV quoting error, a non-string caption).
    Malformed,
}

/// One reported bad row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRowExample {
    /// The file.
    pub file: PathBuf,
    /// 1-based data row (header not counted).
    pub row: u64,
    /// What was wrong.
    pub kind: BadRowKind,
}

/// Counts of rows without a usable caption.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BadRows {
    /// [`BadRowKind::MissingColumn`] rows.
    pub missing_column: u64,
    /// [`BadRowKind::InvalidUtf8`] rows.
    pub invalid_utf8: u64,
    /// [`BadRowKind::Empty`] rows.
    pub empty: u64,
    /// [`BadRowKind::Null`] rows.
    pub null: u64,
    /// [`BadRowKind::Malformed`] rows.
    pub malformed: u64,
    /// The first [`BadRows::MAX_EXAMPLES`] bad rows.
    pub examples: Vec<BadRowExample>,
}

impl BadRows {
    /// How many examples are kept.
    pub const MAX_EXAMPLES: usize = 20;

    /// Total bad rows.
    pub fn total(&self) -> u64 {
        self.missing_column + self.invalid_utf8 + self.empty + self.null + self.malformed
    }

    /// Records one bad row.
    pub fn record(&mut self, file: &Path, row: u64, kind: BadRowKind) {
        *match kind {
            BadRowKind::MissingColumn => &mut self.missing_column,
            BadRowKind::InvalidUtf8 => &mut self.invalid_utf8,
            BadRowKind::Empty => &mut self.empty,
            BadRowKind::Null => &mut self.null,
            BadRowKind::Malformed => &mut self.malformed,
        } += 1;
        if self.examples.len() < Self::MAX_EXAMPLES {
            self.examples.push(BadRowExample {
                file: file.to_owned(),
                row,
                kind,
            });
        }
    }
}

enum Inner {
    Delimited {
        reader: csv::Reader<File>,
        column: usize,
        record: csv::ByteRecord,
    },
    Jsonl {
        reader: BufReader<File>,
        line: Vec<u8>,
    },
    #[cfg(feature = "parquet")]
    Parquet {
        batches: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
        pending: std::vec::IntoIter<Option<String>>,
    },
}

/// Streams the captions of one file in batches.
pub struct CaptionReader {
    path: PathBuf,
    column: String,
    row: u64,
    inner: Inner,
}

impl std::fmt::Debug for CaptionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptionReader")
            .field("path", &self.path)
            .field("column", &self.column)
            .field("row", &self.row)
            .finish()
    }
}

impl CaptionReader {
    /// Opens `path` in `format`, reading column `column`.
    ///
    /// # Errors
    /// I/O; a CSV/TSV header or Parquet schema without `column` (the message lists the
    /// columns there are); Parquet without the `parquet` feature.
    pub fn open(path: &Path, format: CaptionFormat, column: &str) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let inner = match format {
            CaptionFormat::Csv | CaptionFormat::Tsv => {
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(if format == CaptionFormat::Tsv { b'\t' } else { b',' })
                    .flexible(true)
                    .from_reader(file);
                let headers = reader
                    .byte_headers()
                    .map_err(|e| DataError::parse(path, 1, e.to_string()))?
                    .clone();
                let column = headers
                    .iter()
                    .position(|h| h == column.as_bytes())
                    .ok_or_else(|| {
                        let names: Vec<String> = headers
                            .iter()
                            .map(|h| String::from_utf8_lossy(h).into_owned())
                            .collect();
                        DataError::parse(path, 1, format!("no column {column:?}; the header has {names:?}"))
                    })?;
                Inner::Delimited {
                    reader,
                    column,
                    record: csv::ByteRecord::new(),
                }
            }
            CaptionFormat::Jsonl => Inner::Jsonl {
                reader: BufReader::with_capacity(1 << 20, file),
                line: Vec::new(),
            },
            CaptionFormat::Parquet => Self::open_parquet(path, file, column)?,
        };
        Ok(Self {
            path: path.to_owned(),
            column: column.to_owned(),
            row: 0,
            inner,
        })
    }

    #[cfg(feature = "parquet")]
    fn open_parquet(path: &Path, file: File, column: &str) -> Result<Inner> {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        use parquet::arrow::ProjectionMask;
        let err = |m: String| DataError::parse(path, 0, m);
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(e.to_string()))?;
        let schema = builder.parquet_schema();
        let leaf = (0..schema.num_columns())
            .find(|&i| schema.column(i).path().string() == column)
            .ok_or_else(|| {
                let names: Vec<String> = (0..schema.num_columns())
                    .map(|i| schema.column(i).path().string())
                    .collect();
                err(format!("no column {column:?}; the schema has {names:?}"))
            })?;
        let mask = ProjectionMask::leaves(schema, [leaf]);
        let batches = builder
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Inner::Parquet {
            batches,
            pending: Vec::new().into_iter(),
        })
    }

    #[cfg(not(feature = "parquet"))]
    fn open_parquet(path: &Path, _file: File, _column: &str) -> Result<Inner> {
        Err(DataError::param(
            "format",
            format!(
                "{}: Parquet support needs face-data's `parquet` feature",
                path.display()
            ),
        ))
    }

    /// Rows read so far (good and bad).
    pub fn rows(&self) -> u64 {
        self.row
    }

    /// Reads up to `max` good captions, recording bad rows in `bad`; `None` at the end.
    ///
    /// # Errors
    /// I/O or a corrupt Parquet page (the rows of that file after it cannot be read).
    pub fn next_batch(&mut self, max: usize, bad: &mut BadRows) -> Result<Option<Vec<String>>> {
        let mut out = Vec::with_capacity(max.min(1 << 16));
        let path = self.path.clone();
        let mut accept =
            |row: u64, value: std::result::Result<&str, BadRowKind>, out: &mut Vec<String>| match value {
                Ok(s) if s.trim().is_empty() => bad.record(&path, row, BadRowKind::Empty),
                Ok(s) => out.push(s.to_owned()),
                Err(kind) => bad.record(&path, row, kind),
            };
        let mut eof = false;
        while out.len() < max && !eof {
            match &mut self.inner {
                Inner::Delimited {
                    reader,
                    column,
                    record,
                } => match reader.read_byte_record(record) {
                    Ok(true) => {
                        self.row += 1;
                        let v = match record.get(*column) {
                            None => Err(BadRowKind::MissingColumn),
                            Some(b) => std::str::from_utf8(b).map_err(|_| BadRowKind::InvalidUtf8),
                        };
                        accept(self.row, v, &mut out);
                    }
                    Ok(false) => eof = true,
                    Err(e) if e.is_io_error() => {
                        return Err(DataError::parse(&self.path, self.row as usize + 1, e.to_string()))
                    }
                    Err(_) => {
                        self.row += 1;
                        accept(self.row, Err(BadRowKind::Malformed), &mut out);
                    }
                },
                Inner::Jsonl { reader, line } => {
                    line.clear();
                    let n = reader
                        .read_until(b'\n', line)
                        .map_err(|e| DataError::io(&self.path, e))?;
                    if n == 0 {
                        eof = true;
                        continue;
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.row += 1;
                    let v = match std::str::from_utf8(line) {
                        Err(_) => Err(BadRowKind::InvalidUtf8),
                        Ok(text) => {
                            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
                                Err(_) => Err(BadRowKind::Malformed),
                                Ok(obj) => match obj.get(&self.column) {
                                    None => Err(BadRowKind::MissingColumn),
                                    Some(serde_json::Value::Null) => Err(BadRowKind::Null),
                                    Some(serde_json::Value::String(s)) => {
                                        accept(self.row, Ok(s), &mut out);
                                        continue;
                                    }
                                    Some(_) => Err(BadRowKind::Malformed),
                                },
                            }
                        }
                    };
                    accept(self.row, v, &mut out);
                }
                #[cfg(feature = "parquet")]
                Inner::Parquet { batches, pending } => {
                    if let Some(v) = pending.next() {
                        self.row += 1;
                        accept(self.row, v.as_deref().ok_or(BadRowKind::Null), &mut out);
                        continue;
                    }
                    match batches.next() {
                        None => eof = true,
                        Some(Err(e)) => {
                            return Err(DataError::parse(
                                &self.path,
                                0,
                                format!("after row {}: {e}", self.row),
                            ))
                        }
                        Some(Ok(batch)) => {
                            *pending = strings_of(batch.column(0))
                                .map_err(|m| DataError::parse(&self.path, 0, m))?
                                .into_iter()
                        }
                    }
                }
            }
        }
        Ok(if out.is_empty() && eof { None } else { Some(out) })
    }
}

#[cfg(feature = "parquet")]
fn strings_of(array: &arrow_array::ArrayRef) -> std::result::Result<Vec<Option<String>>, String> {
    use arrow_array::{Array, LargeStringArray, StringArray, StringViewArray};
    let any = array.as_any();
    let collect = |n: usize, get: &dyn Fn(usize) -> Option<String>| (0..n).map(get).collect::<Vec<_>>();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Ok(collect(a.len(), &|i| {
            a.is_valid(i).then(|| a.value(i).to_owned())
        }))
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        Ok(collect(a.len(), &|i| {
            a.is_valid(i).then(|| a.value(i).to_owned())
        }))
    } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
        Ok(collect(a.len(), &|i| {
            a.is_valid(i).then(|| a.value(i).to_owned())
        }))
    } else {
        Err(format!(
            "the caption column has type {}, not a string type",
            array.data_type()
        ))
    }
}
