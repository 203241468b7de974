//! CelebA annotation files (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015;
//! <https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html>), as distributed in `Anno/` and `Eval/`:
//!
//! | file | layout |
//! |---|---|
//! | `identity_CelebA.txt` | `000001.jpg 2880` — image, identity (no header) |
//! | `list_eval_partition.txt` | `000001.jpg 0` — 0 train, 1 validation, 2 test (no header) |
//! | `list_attr_celeba.txt` | line 1: image count; line 2: the 40 attribute names; then `000001.jpg -1  1 …` (40 values ±1) |
//! | `list_landmarks_align_celeba.txt` (and the in-the-wild `list_landmarks_celeba.txt`) | count; 10 column names `lefteye_x … rightmouth_y`; then image + 10 integers |
//! | `list_bbox_celeba.txt` | count; `image_id x_1 y_1 width height`; then image + 4 integers |
//!
//! The declared count on line 1 must equal the number of rows, so a truncated download is an
//! error rather than a silently smaller dataset.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::text::{clip, lines, parse_rows, read_text, At};

/// The standard CelebA split of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Partition {
    /// `0` in `list_eval_partition.txt`.
    Train,
    /// `1`.
    Validation,
    /// `2`.
    Test,
}

/// `(image, value)` rows of a two-column file, in file order.
fn two_columns<T>(
    text: &str,
    path: &Path,
    what: &str,
    f: impl Fn(&At, &str) -> Result<T>,
) -> Result<Vec<(String, T)>> {
    parse_rows(text, path, 2, what, |at, fields| {
        Ok((fields[0].to_owned(), f(at, fields[1])?))
    })
}

/// Parses `identity_CelebA.txt`: `(image, identity)` rows in file order.
///
/// # Errors
/// A line without exactly two fields or with a non-integer identity, naming its line.
pub fn parse_identities(text: &str, path: &Path) -> Result<Vec<(String, u32)>> {
    two_columns(text, path, "image identity", |at, t| at.parse(t, "identity"))
}

/// Parses `list_eval_partition.txt`.
///
/// # Errors
/// A malformed line, or a partition other than 0, 1, 2.
pub fn parse_partitions(text: &str, path: &Path) -> Result<Vec<(String, Partition)>> {
    two_columns(text, path, "image partition", |at, t| match t {
        "0" => Ok(Partition::Train),
        "1" => Ok(Partition::Validation),
        "2" => Ok(Partition::Test),
        other => Err(at.err(format!("partition must be 0, 1 or 2, found {:?}", clip(other)))),
    })
}

/// A file with a declared row count, a header of column names, then `image v1 … vn` rows.
struct CountedTable<T> {
    columns: Vec<String>,
    /// `(image, values, line number)`.
    rows: Vec<(String, Vec<T>, usize)>,
}

fn counted_table<T>(
    text: &str,
    path: &Path,
    expected_columns: Option<usize>,
    value: impl Fn(&At, &str) -> Result<T>,
) -> Result<CountedTable<T>> {
    let mut it = lines(text);
    let first = it
        .next()
        .ok_or_else(|| DataError::parse(path, 1, "empty file: expected the image count"))?;
    let at = At {
        path,
        line: first.number,
    };
    let declared: usize = at.parse(first.text, "image count")?;
    let header = it
        .next()
        .ok_or_else(|| DataError::parse(path, first.number + 1, "missing the line of column names"))?;
    let mut columns: Vec<String> = header.text.split_whitespace().map(str::to_owned).collect();
    // The bbox file names the image column too (`image_id x_1 …`); the others do not.
    if columns.first().map(String::as_str) == Some("image_id") {
        columns.remove(0);
    }
    if let Some(n) = expected_columns {
        if columns.len() != n {
            return Err(DataError::parse(
                path,
                header.number,
                format!("expected {n} column names, found {}", columns.len()),
            ));
        }
    }
    let mut rows = Vec::with_capacity(declared.min(1 << 20));
    for line in it {
        let at = At {
            path,
            line: line.number,
        };
        let fields = at.fields(line.text, columns.len() + 1, "image and one value per column")?;
        let values = fields[1..]
            .iter()
            .map(|t| value(&at, t))
            .collect::<Result<Vec<T>>>()?;
        rows.push((fields[0].to_owned(), values, line.number));
    }
    if rows.len() != declared {
        return Err(DataError::parse(
            path,
            first.number,
            format!(
                "line 1 declares {declared} images but the file has {} rows",
                rows.len()
            ),
        ));
    }
    Ok(CountedTable { columns, rows })
}

/// `list_attr_celeba.txt`: 40 binary attributes per image.
#[derive(Debug, Clone, PartialEq)]
pub struct CelebaAttributes {
    /// Attribute names in file order (`5_o_Clock_Shadow`, …, `Young`).
    pub names: Vec<String>,
    /// Image file names in file order.
    pub images: Vec<String>,
    /// Row-major `images.len() × names.len()`; `true` where the file says `1`.
    pub values: Vec<bool>,
}

impl CelebaAttributes {
    /// Parses the text of `list_attr_celeba.txt`. Any number of attributes is accepted as long
    /// as every row has one ±1 value per name.
    ///
    /// # Errors
    /// A missing count or header, a row with the wrong number of values, a value other than
    /// `1`/`-1`, or a row count different from the declared one.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let table = counted_table(text, path, None, |at, t| match t {
            "1" => Ok(true),
            "-1" => Ok(false),
            other => Err(at.err(format!("attribute values are 1 or -1, found {:?}", clip(other)))),
        })?;
        let mut images = Vec::with_capacity(table.rows.len());
        let mut values = Vec::with_capacity(table.rows.len() * table.columns.len());
        for (image, row, _) in table.rows {
            images.push(image);
            values.extend(row);
        }
        Ok(Self {
            names: table.columns,
            images,
            values,
        })
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// As [`CelebaAttributes::parse`], or I/O.
    pub fn read(path: &Path) -> Result<Self> {
        Self::parse(&read_text(path)?, path)
    }

    /// Column index of an attribute name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The value of attribute `attribute` for row `row`.
    ///
    /// # Panics
    /// If either index is out of range.
    pub fn get(&self, row: usize, attribute: usize) -> bool {
        assert!(
            attribute < self.names.len(),
            "attribute index {attribute} out of range"
        );
        self.values[row * self.names.len() + attribute]
    }
}

/// Five facial landmarks, `[x, y]` in pixels, in CelebA's order: left eye, right eye, nose,
/// left mouth corner, right mouth corner (the same order as the ArcFace template).
pub type FivePoints = [[f32; 2]; 5];

/// Parses `list_landmarks_align_celeba.txt` or `list_landmarks_celeba.txt`.
///
/// # Errors
/// A missing count or header, a header without 10 names, a row without 10 numbers, or a row
/// count different from the declared one.
pub fn parse_landmarks(text: &str, path: &Path) -> Result<Vec<(String, FivePoints)>> {
    let table = counted_table(text, path, Some(10), |at, t| at.finite(t, "landmark coordinate"))?;
    Ok(table
        .rows
        .into_iter()
        .map(|(image, v, _)| {
            let mut p = [[0.0; 2]; 5];
            for (k, point) in p.iter_mut().enumerate() {
                *point = [v[2 * k], v[2 * k + 1]];
            }
            (image, p)
        })
        .collect())
}

/// A face box in pixels: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoundingBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

/// Parses `list_bbox_celeba.txt`.
///
/// # Errors
/// As [`parse_landmarks`], for 4 columns; a negative width or height.
pub fn parse_bboxes(text: &str, path: &Path) -> Result<Vec<(String, BoundingBox)>> {
    let table = counted_table(text, path, Some(4), |at, t| at.finite(t, "box coordinate"))?;
    table
        .rows
        .into_iter()
        .map(|(image, v, line)| {
            if v[2] < 0.0 || v[3] < 0.0 {
                return Err(DataError::parse(
                    path,
                    line,
                    format!("{image}: negative box size {}×{}", v[2], v[3]),
                ));
            }
            Ok((
                image,
                BoundingBox {
                    x: v[0],
                    y: v[1],
                    width: v[2],
                    height: v[3],
                },
            ))
        })
        .collect()
}

/// One CelebA image with everything known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct CelebaImage {
    /// File name (`000001.jpg`), relative to the image directory.
    pub file: String,
    /// Identity number from `identity_CelebA.txt`.
    pub identity: u32,
    /// Split from `list_eval_partition.txt`.
    pub partition: Partition,
    /// Row in [`CelebA::attributes`].
    pub attribute_row: usize,
    /// Aligned-image landmarks, when `list_landmarks_align_celeba.txt` was given.
    pub landmarks: Option<FivePoints>,
}

/// The CelebA annotations joined by file name.
#[derive(Debug, Clone)]
pub struct CelebA {
    /// Images in the order of `identity_CelebA.txt`.
    pub images: Vec<CelebaImage>,
    /// The attribute table (rows referenced by [`CelebaImage::attribute_row`]).
    pub attributes: CelebaAttributes,
}

impl CelebA {
    /// Loads `identity_CelebA.txt`, `list_eval_partition.txt`, `list_attr_celeba.txt` and, when
    /// present, `list_landmarks_align_celeba.txt` from `dir` and joins them by file name.
    ///
    /// # Errors
    /// Any file's parse error; an image listed in the identity file but missing from the
    /// partition or attribute file (named), or a duplicated image.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = |name: &str| dir.join(name);
        let ids_path = p("identity_CelebA.txt");
        let ids = parse_identities(&read_text(&ids_path)?, &ids_path)?;
        let part_path = p("list_eval_partition.txt");
        let parts = parse_partitions(&read_text(&part_path)?, &part_path)?;
        let attributes = CelebaAttributes::read(&p("list_attr_celeba.txt"))?;
        let lm_path = p("list_landmarks_align_celeba.txt");
        let landmarks = if lm_path.exists() {
            Some(parse_landmarks(&read_text(&lm_path)?, &lm_path)?)
        } else {
            None
        };
        Self::join(ids, parts, attributes, landmarks)
    }

    /// Joins already-parsed tables by file name.
    ///
    /// # Errors
    /// An image of the identity table missing from another table, or listed twice.
    pub fn join(
        identities: Vec<(String, u32)>,
        partitions: Vec<(String, Partition)>,
        attributes: CelebaAttributes,
        landmarks: Option<Vec<(String, FivePoints)>>,
    ) -> Result<Self> {
        let parts: HashMap<&str, Partition> = partitions.iter().map(|(f, p)| (f.as_str(), *p)).collect();
        let rows: HashMap<&str, usize> = attributes
            .images
            .iter()
            .enumerate()
            .map(|(i, f)| (f.as_str(), i))
            .collect();
        let lms: Option<HashMap<&str, FivePoints>> = landmarks
            .as_ref()
            .map(|l| l.iter().map(|(f, p)| (f.as_str(), *p)).collect());
        let mut seen = std::collections::HashSet::with_capacity(identities.len());
        let mut images = Vec::with_capacity(identities.len());
        for (file, identity) in &identities {
            if !seen.insert(file.as_str()) {
                return Err(DataError::Inconsistent(format!(
                    "{file} is listed twice in identity_CelebA.txt"
                )));
            }
            let missing = |table: &str| {
                DataError::Inconsistent(format!("{file} has an identity but no row in {table}"))
            };
            let partition = *parts
                .get(file.as_str())
                .ok_or_else(|| missing("list_eval_partition.txt"))?;
            let attribute_row = *rows
                .get(file.as_str())
                .ok_or_else(|| missing("list_attr_celeba.txt"))?;
            let landmarks = match &lms {
                Some(m) => Some(
                    *m.get(file.as_str())
                        .ok_or_else(|| missing("list_landmarks_align_celeba.txt"))?,
                ),
                None => None,
            };
            images.push(CelebaImage {
                file: file.clone(),
                identity: *identity,
                partition,
                attribute_row,
                landmarks,
            });
        }
        Ok(Self { images, attributes })
    }

    /// The images of one split.
    pub fn split(&self, partition: Partition) -> impl Iterator<Item = &CelebaImage> {
        self.images.iter().filter(move |i| i.partition == partition)
    }
}
