//! Label files in CSV, read with the `csv` crate (quoted fields, `#` comments, any line ending),
//! each error naming the file and line:
//!
//! - [`read_identity_labels`]: `image,identity` — which person each image shows (`--labels` of
//!   the `facekit` program, the quickstart, `eval identify`; also the bundled `manifest.csv`);
//! - [`read_label_table`]: `id,<attribute>,…` — categorical attributes per sample, for the
//!   imbalance measures and ML-ROS.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{DataError, Result};
use crate::imbalance::{Attribute, LabelTable, MISSING};

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| DataError::parse(path, 0, e.to_string()))
}

/// The records of a CSV file with their 1-based line numbers.
fn records(path: &Path) -> Result<Vec<(usize, Vec<String>)>> {
    let mut out = Vec::new();
    for record in reader(path)?.into_records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            DataError::parse(path, line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        out.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(out)
}

/// Reads `image,identity` rows into a map from image id to identity.
///
/// A first row whose second field is `identity` is a header. Further columns are ignored; a row
/// with an empty identity is an unlabelled image and is skipped.
///
/// # Errors
/// An unreadable file, a row with fewer than two fields or an empty id, an id given twice, or
/// no label at all (each naming file and line).
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("labels.csv");
/// std::fs::write(&path, "image,identity,faces\na.jpg,alice,1\n# a comment\nb.jpg, bob\nc.jpg,,3\n")?;
/// let labels = face_data::read_identity_labels(&path)?;
/// assert_eq!((labels.len(), labels["b.jpg"].as_str()), (2, "bob"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_identity_labels(path: &Path) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (i, (line, f)) in records(path)?.into_iter().enumerate() {
        if i == 0 && f.get(1).is_some_and(|h| h.eq_ignore_ascii_case("identity")) {
            continue;
        }
        if f.len() < 2 || f[0].is_empty() {
            return Err(DataError::parse(
                path,
                line,
                format!("expected `image,identity`, found {:?}", f.join(",")),
            ));
        }
        if f[1].is_empty() {
            continue;
        }
        if out.insert(f[0].clone(), f[1].clone()).is_some() {
            return Err(DataError::parse(
                path,
                line,
                format!("image `{}` labelled twice", f[0]),
            ));
        }
    }
    if out.is_empty() {
        return Err(DataError::parse(path, 0, "no labels"));
    }
    Ok(out)
}

/// A label table read by [`read_label_table`]: the header, the rows as written, and the table
/// of category indices.
#[derive(Debug, Clone)]
pub struct LabelFile {
    /// `id` then the attribute names.
    pub header: Vec<String>,
    /// The rows, field by field.
    pub rows: Vec<Vec<String>>,
    /// Category indices (categories numbered in sorted order; an empty cell is missing).
    pub table: LabelTable,
}

/// Reads a label table: a header `id,<attribute>,…`, then one row per sample; any text value is
/// a category, an empty cell is missing.
///
/// # Errors
/// An unreadable file, a header without an attribute, a row whose field count differs from the
/// header's, or no rows.
pub fn read_label_table(path: &Path) -> Result<LabelFile> {
    let mut recs = records(path)?.into_iter();
    let (_, header) = recs
        .next()
        .ok_or_else(|| DataError::parse(path, 0, "empty file"))?;
    if header.len() < 2 {
        return Err(DataError::parse(
            path,
            1,
            format!("expected `id,<attribute>,…`, found {:?}", header.join(",")),
        ));
    }
    let names = header[1..].to_vec();
    let mut cats: Vec<BTreeMap<String, ()>> = vec![BTreeMap::new(); names.len()];
    let mut rows = Vec::new();
    for (line, f) in recs {
        if f.len() != header.len() {
            return Err(DataError::parse(
                path,
                line,
                format!("{} fields, the header has {}", f.len(), header.len()),
            ));
        }
        for (c, v) in f[1..].iter().enumerate() {
            if !v.is_empty() {
                cats[c].insert(v.clone(), ());
            }
        }
        rows.push(f);
    }
    if rows.is_empty() {
        return Err(DataError::parse(path, 0, "no rows after the header"));
    }
    let sorted: Vec<Vec<String>> = cats.iter().map(|m| m.keys().cloned().collect()).collect();
    let index: Vec<BTreeMap<&str, u16>> = sorted
        .iter()
        .map(|v| {
            v.iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i as u16))
                .collect()
        })
        .collect();
    let mut values = Vec::with_capacity(rows.len() * names.len());
    for r in &rows {
        for (c, v) in r[1..].iter().enumerate() {
            values.push(if v.is_empty() {
                MISSING
            } else {
                index[c][v.as_str()]
            });
        }
    }
    let attributes = names
        .iter()
        .zip(sorted)
        .map(|(n, categories)| Attribute {
            name: n.clone(),
            categories,
        })
        .collect();
    let table = LabelTable::new(attributes, values).map_err(|e| DataError::parse(path, 0, e.to_string()))?;
    Ok(LabelFile { header, rows, table })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn identity_labels_are_checked() {
        let (_d, p) = file("id,identity\na.jpg,x\n# note\nb.jpg, y\n");
        let l = read_identity_labels(&p).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l["b.jpg"], "y");
        let (_d, p) = file("a.jpg,x\na.jpg,y\n");
        assert!(matches!(read_identity_labels(&p), Err(e) if e.to_string().contains(":2:")));
        let (_d, p) = file("a.jpg\n");
        assert!(matches!(read_identity_labels(&p), Err(e) if e.to_string().contains(":1:")));
        // Quoted fields with commas, and CRLF line ends.
        let (_d, p) = file("\"a,1.jpg\",\"Smith, J.\"\r\nb.jpg,k\r\n");
        let l = read_identity_labels(&p).unwrap();
        assert_eq!(l["a,1.jpg"], "Smith, J.");
        let (_d, p) = file("image,identity\nc.jpg,\n");
        assert!(read_identity_labels(&p)
            .unwrap_err()
            .to_string()
            .contains("no labels"));
    }

    #[test]
    fn label_tables_number_categories_in_sorted_order() {
        let (_d, p) = file("id,gender,age\na,m,young\nb,f,\nc,m,old\n");
        let t = read_label_table(&p).unwrap();
        assert_eq!(t.header, ["id", "gender", "age"]);
        assert_eq!(t.table.attributes[0].categories, ["f", "m"]);
        assert_eq!(t.table.attributes[1].categories, ["old", "young"]);
        assert_eq!(t.rows[1], ["b", "f", ""]);
        let (_d, p) = file("id,gender\na,m\nb,f,extra\n");
        assert!(read_label_table(&p).unwrap_err().to_string().contains(":3:"));
        let (_d, p) = file("id\na\n");
        assert!(read_label_table(&p).unwrap_err().to_string().contains(":1:"));
    }
}
