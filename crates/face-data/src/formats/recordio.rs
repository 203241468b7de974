//! insightface training sets in MXNet RecordIO (`train.rec` + `train.idx`), read without MXNet.
//!
//! Layout (dmlc-core `recordio.h`, MXNet `python/mxnet/recordio.py`, insightface
//! `recognition/arcface_torch/dataset.py`):
//! - `.rec`: records `magic:u32 | lrecord:u32 | data | zero pad to 4 bytes`, little-endian,
//!   magic `0xced7230a`; `lrecord` = `cflag << 29 | length`. A payload that contains the magic
//!   word at a 4-byte-aligned position is stored in parts (cflag 1 = first, 2 = middle,
//!   3 = last; 0 = whole record) with that word removed; the reader puts it back between parts.
//! - `.idx`: text lines `key<TAB>byte offset`.
//! - each record's data starts with the image header `IRHeader { flag: u32, label: f32,
//!   id: u64, id2: u64 }` (24 bytes); when `flag > 0`, `flag` more `f32` labels follow and
//!   `label` is unused. The rest is the encoded image (JPEG).
//! - insightface sets: record 0 is a header whose labels `[a, b]` say that images are keys
//!   `1..a`; without it (flag 0) every key is an image. An image's class is its first label.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::text::{parse_rows, read_text};

/// The RecordIO magic word.
pub const RECORDIO_MAGIC: u32 = 0xced7_230a;
const LENGTH_MASK: u32 = (1 << 29) - 1;
/// Size of the packed image header.
pub const IR_HEADER_SIZE: usize = 24;

/// MXNet's image-record header.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IrHeader {
    /// 0: one label in `label`; `n > 0`: `n` labels follow the header.
    pub flag: u32,
    /// The label when `flag == 0`.
    pub label: f32,
    /// Record id.
    pub id: u64,
    /// Second id (unused by insightface).
    pub id2: u64,
}

/// An unpacked image record.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord<'a> {
    /// The header.
    pub header: IrHeader,
    /// The labels: `[header.label]` when `flag == 0`, otherwise the `flag` trailing labels.
    pub labels: Vec<f32>,
    /// The encoded image.
    pub payload: Cow<'a, [u8]>,
}

/// Splits a record's data into header, labels and payload.
///
/// # Errors
/// Data shorter than the header, or than the `flag` labels it announces (message only; the
/// caller adds file and offset).
pub fn unpack(data: &[u8]) -> std::result::Result<(IrHeader, Vec<f32>, &[u8]), String> {
    if data.len() < IR_HEADER_SIZE {
        return Err(format!(
            "record of {} bytes is shorter than the 24-byte image header",
            data.len()
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
    let header = IrHeader {
        flag: u32_at(0),
        label: f32::from_bits(u32_at(4)),
        id: u64_at(8),
        id2: u64_at(16),
    };
    let rest = &data[IR_HEADER_SIZE..];
    if header.flag == 0 {
        return Ok((header, vec![header.label], rest));
    }
    let n = header.flag as usize;
    if n.checked_mul(4).is_none_or(|b| b > rest.len()) {
        return Err(format!(
            "header announces {n} labels but only {} bytes follow",
            rest.len()
        ));
    }
    let labels = rest[..4 * n]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((header, labels, &rest[4 * n..]))
}

/// Packs a header, labels and payload into record data (the inverse of [`unpack`]). With more
/// than one label, `flag` is set to their count; with one, it goes in `label` and `flag` is 0.
pub fn pack(id: u64, labels: &[f32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(IR_HEADER_SIZE + 4 * labels.len() + payload.len());
    let (flag, label) = if labels.len() == 1 {
        (0u32, labels[0])
    } else {
        (labels.len() as u32, 0.0)
    };
    out.extend_from_slice(&flag.to_le_bytes());
    out.extend_from_slice(&label.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    if flag > 0 {
        for l in labels {
            out.extend_from_slice(&l.to_le_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Reads the record starting at `offset` of `buf`, reassembling multi-part records.
///
/// # Errors
/// A bad magic word, a truncated part, or a part sequence that does not follow 1, 2…, 3.
pub fn read_record(buf: &[u8], offset: usize) -> std::result::Result<Cow<'_, [u8]>, String> {
    let len = buf.len();
    read_parts(offset, len, |start, n| {
        buf.get(start..start.saturating_add(n))
            .map(Cow::Borrowed)
            .ok_or_else(String::new)
    })
}

/// The record framing over any byte source: `fetch(start, n)` gives bytes `start..start + n`
/// of a file of `len` bytes (an error when they are not all there; its text is replaced).
fn read_parts<'a>(
    offset: usize,
    len: usize,
    mut fetch: impl FnMut(usize, usize) -> std::result::Result<Cow<'a, [u8]>, String>,
) -> std::result::Result<Cow<'a, [u8]>, String> {
    let mut pos = offset;
    let mut parts: Option<Vec<u8>> = None;
    loop {
        let head = fetch(pos, 8)
            .map_err(|_| format!("truncated record head at byte {pos} (file has {len} bytes)"))?;
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if magic != RECORDIO_MAGIC {
            return Err(format!("bad magic word {magic:#010x} at byte {pos}"));
        }
        let lrec = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let (cflag, n) = (lrec >> 29, (lrec & LENGTH_MASK) as usize);
        let start = pos + 8;
        let data = fetch(start, n)
            .map_err(|_| format!("record part of {n} bytes at byte {pos} runs past the end of the file"))?;
        match (cflag, parts.as_mut()) {
            (0, None) => return Ok(data),
            (1, None) => parts = Some(data.into_owned()),
            (2, Some(p)) | (3, Some(p)) => {
                p.extend_from_slice(&RECORDIO_MAGIC.to_le_bytes());
                p.extend_from_slice(&data);
                if cflag == 3 {
                    return Ok(Cow::Owned(parts.take().unwrap_or_default()));
                }
            }
            (c, None) => return Err(format!("record at byte {pos} starts with continuation flag {c}")),
            (c, Some(_)) => return Err(format!("multi-part record interrupted by flag {c} at byte {pos}")),
        }
        pos = start + n.div_ceil(4) * 4;
    }
}

/// Parses a `.idx` file: `key<TAB>offset` lines.
///
/// # Errors
/// A line without two integers, or a key listed twice.
pub fn parse_index(text: &str, path: &Path) -> Result<Vec<(u64, u64)>> {
    let mut seen = HashMap::new();
    parse_rows(text, path, 2, "key offset", |at, f| {
        let key: u64 = at.parse(f[0], "key")?;
        let offset: u64 = at.parse(f[1], "byte offset")?;
        if let Some(prev) = seen.insert(key, at.line) {
            return Err(at.err(format!("key {key} already listed on line {prev}")));
        }
        Ok((key, offset))
    })
}

/// Random access to an indexed RecordIO file, by positional reads: threads share one reader,
/// and reading a whole large set (an epoch) leaves the pages in the kernel's cache, not in the
/// process's resident memory (a memory map would count every page read).
#[derive(Debug)]
pub struct RecordIoReader {
    path: PathBuf,
    file: File,
    len: u64,
    keys: Vec<u64>,
    offsets: HashMap<u64, u64>,
}

impl RecordIoReader {
    /// Opens `rec` with its index `idx`.
    ///
    /// # Errors
    /// I/O, a malformed index, or an index offset past the end of `rec`.
    pub fn open(rec: &Path, idx: &Path) -> Result<Self> {
        let file = File::open(rec).map_err(|e| DataError::io(rec, e))?;
        let len = file.metadata().map_err(|e| DataError::io(rec, e))?.len();
        let index = parse_index(&read_text(idx)?, idx)?;
        if let Some((k, o)) = index.iter().find(|(_, o)| *o >= len) {
            return Err(DataError::RecordIo {
                path: idx.to_owned(),
                offset: *o,
                message: format!("key {k} points past the end of {} ({} bytes)", rec.display(), len),
            });
        }
        let keys = index.iter().map(|(k, _)| *k).collect();
        Ok(Self {
            path: rec.to_owned(),
            file,
            len,
            keys,
            offsets: index.into_iter().collect(),
        })
    }

    /// Keys in index-file order.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// The raw data of record `key`.
    ///
    /// # Errors
    /// An unknown key or a corrupt record, naming file and offset.
    pub fn read(&self, key: u64) -> Result<Cow<'_, [u8]>> {
        let offset = self.offset(key)?;
        let len = self.len as usize;
        let fetch = |start: usize, n: usize| {
            if start.saturating_add(n) > len {
                return Err(String::new());
            }
            let mut buf = vec![0u8; n];
            face_io::read_exact_at(&self.file, &mut buf, start as u64).map_err(|e| e.to_string())?;
            Ok(Cow::Owned(buf))
        };
        read_parts(offset as usize, len, fetch).map_err(|message| DataError::RecordIo {
            path: self.path.clone(),
            offset,
            message: format!("key {key}: {message}"),
        })
    }

    /// The first `n` bytes of record `key`'s data (fewer when the record is shorter), reading
    /// only those when its first part holds them.
    ///
    /// # Errors
    /// As [`RecordIoReader::read`].
    pub fn head(&self, key: u64, n: usize) -> Result<Vec<u8>> {
        let offset = self.offset(key)?;
        let mut h = [0u8; 8];
        if offset + 8 <= self.len {
            face_io::read_exact_at(&self.file, &mut h, offset).map_err(|e| DataError::io(&self.path, e))?;
            let lrec = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let first = (lrec & LENGTH_MASK) as u64;
            let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            if magic == RECORDIO_MAGIC && first >= n as u64 && offset + 8 + n as u64 <= self.len {
                let mut buf = vec![0u8; n];
                face_io::read_exact_at(&self.file, &mut buf, offset + 8)
                    .map_err(|e| DataError::io(&self.path, e))?;
                return Ok(buf);
            }
        }
        let mut all = self.read(key)?.into_owned();
        all.truncate(n);
        Ok(all)
    }

    fn offset(&self, key: u64) -> Result<u64> {
        self.offsets
            .get(&key)
            .copied()
            .ok_or_else(|| DataError::RecordIo {
                path: self.path.clone(),
                offset: 0,
                message: format!("key {key} is not in the index"),
            })
    }

    /// An error about record `key`, naming the file and its offset.
    fn error(&self, key: u64, message: String) -> DataError {
        DataError::RecordIo {
            path: self.path.clone(),
            offset: self.offsets.get(&key).copied().unwrap_or(0),
            message: format!("key {key}: {message}"),
        }
    }

    /// Record `key` unpacked as an image record.
    ///
    /// # Errors
    /// As [`RecordIoReader::read`], or a record too short for its header.
    pub fn image(&self, key: u64) -> Result<ImageRecord<'_>> {
        let data = self.read(key)?;
        let err = |message: String| self.error(key, message);
        match data {
            Cow::Borrowed(d) => {
                let (header, labels, payload) = unpack(d).map_err(err)?;
                Ok(ImageRecord {
                    header,
                    labels,
                    payload: Cow::Borrowed(payload),
                })
            }
            Cow::Owned(d) => {
                let (header, labels, payload) = unpack(&d).map_err(err)?;
                Ok(ImageRecord {
                    header,
                    labels,
                    payload: Cow::Owned(payload.to_vec()),
                })
            }
        }
    }

    /// The `.rec` path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An insightface training set: the image keys and their class labels.
#[derive(Debug)]
pub struct InsightFaceRecordSet {
    reader: RecordIoReader,
    image_keys: Vec<u64>,
}

impl InsightFaceRecordSet {
    /// Opens `dir/train.rec` and `dir/train.idx`.
    ///
    /// # Errors
    /// As [`RecordIoReader::open`]; a header record whose image range is not `1 ≤ a`.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::from_reader(RecordIoReader::open(
            &dir.join("train.rec"),
            &dir.join("train.idx"),
        )?)
    }

    /// Wraps an opened reader, reading record 0 to find the image keys.
    ///
    /// # Errors
    /// As [`InsightFaceRecordSet::open`].
    pub fn from_reader(reader: RecordIoReader) -> Result<Self> {
        let first = reader.keys().first().copied();
        let image_keys = match first {
            Some(k0) => {
                let rec = reader.image(k0)?;
                if rec.header.flag > 0 {
                    let a = rec.labels[0];
                    if !(a >= 1.0 && a.fract() == 0.0 && a < u32::MAX as f32) {
                        return Err(DataError::RecordIo {
                            path: reader.path().to_owned(),
                            offset: 0,
                            message: format!("header record {k0} gives image range end {a}"),
                        });
                    }
                    (1..a as u64).collect()
                } else {
                    reader.keys().to_vec()
                }
            }
            None => Vec::new(),
        };
        Ok(Self { reader, image_keys })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.image_keys.len()
    }

    /// `true` without images.
    pub fn is_empty(&self) -> bool {
        self.image_keys.is_empty()
    }

    /// Record key of image `i`.
    pub fn key(&self, i: usize) -> Option<u64> {
        self.image_keys.get(i).copied()
    }

    /// Class label and encoded image of image `i` (0-based).
    ///
    /// # Errors
    /// Out-of-range `i`, a corrupt record, or a label that is not a non-negative integer.
    pub fn get(&self, i: usize) -> Result<(u32, Cow<'_, [u8]>)> {
        let key = self.key(i).ok_or_else(|| DataError::RecordIo {
            path: self.reader.path().to_owned(),
            offset: 0,
            message: format!("image {i} out of range (the set has {})", self.len()),
        })?;
        let rec = self.reader.image(key)?;
        let l = rec.labels[0];
        if !(l >= 0.0 && l.fract() == 0.0 && l <= u32::MAX as f32) {
            return Err(DataError::RecordIo {
                path: self.reader.path().to_owned(),
                offset: 0,
                message: format!("key {key}: class label {l} is not a non-negative integer"),
            });
        }
        Ok((l as u32, rec.payload))
    }

    /// The class label of image `i`, from the first bytes of its record only.
    ///
    /// # Errors
    /// As [`InsightFaceRecordSet::get`].
    pub fn label(&self, i: usize) -> Result<u32> {
        let key = self.key(i).ok_or_else(|| DataError::RecordIo {
            path: self.reader.path().to_owned(),
            offset: 0,
            message: format!("image {i} out of range (the set has {})", self.len()),
        })?;
        // The label is the header's (flag 0) or the first one after it (flag > 0).
        let head = self.reader.head(key, IR_HEADER_SIZE + 4)?;
        let f32_at = |o: usize| {
            head.get(o..o + 4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let flag = head
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let l = match flag {
            Some(0) => f32_at(4),
            Some(_) => f32_at(IR_HEADER_SIZE),
            None => None,
        }
        .ok_or_else(|| {
            self.reader.error(
                key,
                format!(
                    "record of {} bytes is too short for its image header and label",
                    head.len()
                ),
            )
        })?;
        if !(l >= 0.0 && l.fract() == 0.0 && l <= u32::MAX as f32) {
            return Err(self
                .reader
                .error(key, format!("class label {l} is not a non-negative integer")));
        }
        Ok(l as u32)
    }

    /// The class label of every image (reads only the first bytes of each record).
    ///
    /// # Errors
    /// As [`InsightFaceRecordSet::get`].
    pub fn labels(&self) -> Result<Vec<u32>> {
        (0..self.len()).map(|i| self.label(i)).collect()
    }

    /// The underlying reader.
    pub fn reader(&self) -> &RecordIoReader {
        &self.reader
    }
}

/// Writes an indexed RecordIO file pair, as MXNet's `MXIndexedRecordIO` does.
pub struct RecordIoWriter {
    rec_path: PathBuf,
    rec: BufWriter<File>,
    idx: BufWriter<File>,
    offset: u64,
}

impl RecordIoWriter {
    /// Creates (truncates) `rec` and `idx`.
    ///
    /// # Errors
    /// I/O.
    pub fn create(rec: &Path, idx: &Path) -> Result<Self> {
        let r = File::create(rec).map_err(|e| DataError::io(rec, e))?;
        let i = File::create(idx).map_err(|e| DataError::io(idx, e))?;
        Ok(Self {
            rec_path: rec.to_owned(),
            rec: BufWriter::new(r),
            idx: BufWriter::new(i),
            offset: 0,
        })
    }

    /// Appends `data` under `key`.
    ///
    /// # Errors
    /// I/O, or data of 2²⁹ bytes or more (the format's limit).
    pub fn write(&mut self, key: u64, data: &[u8]) -> Result<()> {
        if data.len() > LENGTH_MASK as usize {
            return Err(DataError::param(
                "data",
                format!("record of {} bytes exceeds the 2^29-byte limit", data.len()),
            ));
        }
        let io = |e| DataError::io(&self.rec_path, e);
        writeln!(self.idx, "{key}\t{}", self.offset).map_err(io)?;
        let mut bytes = Vec::with_capacity(data.len() + 16);
        encode_record(data, &mut bytes);
        self.rec
            .write_all(&bytes)
            .map_err(|e| DataError::io(&self.rec_path, e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Flushes both files.
    ///
    /// # Errors
    /// I/O.
    pub fn finish(mut self) -> Result<()> {
        self.rec.flush().map_err(|e| DataError::io(&self.rec_path, e))?;
        self.idx.flush().map_err(|e| DataError::io(&self.rec_path, e))
    }
}

/// Frames `data` as one RecordIO record (split at aligned magic words), appending to `out`.
pub fn encode_record(data: &[u8], out: &mut Vec<u8>) {
    let magic = RECORDIO_MAGIC.to_le_bytes();
    let head = |out: &mut Vec<u8>, cflag: u32, len: usize| {
        out.extend_from_slice(&magic);
        out.extend_from_slice(&((cflag << 29) | len as u32).to_le_bytes());
    };
    let mut start = 0;
    let aligned_end = data.len() / 4 * 4;
    for i in (0..aligned_end).step_by(4) {
        if data[i..i + 4] == magic {
            head(out, if start == 0 { 1 } else { 2 }, i - start);
            out.extend_from_slice(&data[start..i]);
            start = i + 4;
        }
    }
    head(out, if start == 0 { 0 } else { 3 }, data.len() - start);
    out.extend_from_slice(&data[start..]);
    out.resize(out.len() + (4 - data.len() % 4) % 4, 0);
}
