//! Line-oriented parsing shared by the text formats: numbered lines, typed fields, errors that
//! quote the offending token with file and line.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Reads a whole text file (UTF-8; a leading BOM is dropped).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        DataError::parse(
            path,
            0,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// A non-blank line with its 1-based number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub(crate) number: usize,
    pub(crate) text: &'a str,
}

/// Non-blank lines of `text`, trimmed of the line ending and surrounding white space.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines()
        .enumerate()
        .map(|(i, l)| Line {
            number: i + 1,
            text: l.trim(),
        })
        .filter(|l| !l.text.is_empty())
}

/// Error context for one line of one source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'p> {
    pub(crate) path: &'p Path,
    pub(crate) line: usize,
}

impl At<'_> {
    pub(crate) fn err(&self, message: impl Into<String>) -> DataError {
        DataError::parse(PathBuf::from(self.path), self.line, message)
    }

    /// Splits on white space and requires exactly `n` fields.
    pub(crate) fn fields<'a>(&self, text: &'a str, n: usize, what: &str) -> Result<Vec<&'a str>> {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != n {
            return Err(self.err(format!(
                "expected {n} fields ({what}), found {}: {:?}",
                f.len(),
                clip(text)
            )));
        }
        Ok(f)
    }

    pub(crate) fn parse<T: std::str::FromStr>(&self, token: &str, what: &str) -> Result<T> {
        token
            .parse()
            .map_err(|_| self.err(format!("{what}: cannot parse {:?}", clip(token))))
    }

    /// A finite `f32`.
    pub(crate) fn finite(&self, token: &str, what: &str) -> Result<f32> {
        let v: f32 = self.parse(token, what)?;
        if !v.is_finite() {
            return Err(self.err(format!("{what}: {token:?} is not finite")));
        }
        Ok(v)
    }
}

/// The first 80 characters of `s`, for error messages about arbitrary input.
pub(crate) fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses every non-blank line of `text` as exactly `n` white-space separated fields (`what`
/// names them in errors) with `row`, which gets the line's error context.
pub(crate) fn parse_rows<T>(
    text: &str,
    path: &Path,
    n: usize,
    what: &str,
    mut row: impl FnMut(&At, &[&str]) -> Result<T>,
) -> Result<Vec<T>> {
    lines(text)
        .map(|line| {
            let at = At {
                path,
                line: line.number,
            };
            let fields = at.fields(line.text, n, what)?;
            row(&at, &fields)
        })
        .collect()
}

/// Writes `bytes` to `path` atomically: a synced temporary file beside it (`<name>.partial`),
/// then a rename, so a reader never sees a half-written file and a crash never leaves one that
/// looks complete.
///
/// # Errors
/// I/O failure, naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| DataError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// Applies `key=value` overrides with dotted keys (`optim.lr=1e-3`, `views.local=6`) to a
/// serialisable configuration: each value is read as JSON, or taken as a string when it is not
/// JSON (`mode=lafs`). Returns the updated configuration or a message naming the bad override.
///
/// # Errors
/// A malformed override, a key that does not exist, or a value of the wrong type.
///
/// # Examples
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Optim { lr: f64, name: String }
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Config { optim: Optim }
/// let c = Config { optim: Optim { lr: 0.1, name: "sgd".into() } };
/// let c = face_data::json_overrides(&c, &["optim.lr=1e-3".into(), "optim.name=adamw".into()]).unwrap();
/// assert_eq!((c.optim.lr, c.optim.name.as_str()), (1e-3, "adamw"));
/// assert!(face_data::json_overrides(&c, &["optim.momentum=0.9".into()]).is_err());
/// ```
pub fn json_overrides<T>(config: &T, overrides: &[String]) -> std::result::Result<T, String>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    use serde_json::Value;
    let mut root = serde_json::to_value(config).map_err(|e| e.to_string())?;
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .ok_or_else(|| format!("`{o}` is not key=value"))?;
        let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        let parts: Vec<&str> = key.split('.').collect();
        let mut node = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let obj = node
                .as_object_mut()
                .ok_or_else(|| format!("`{key}`: `{}` is not a section", parts[..i].join(".")))?;
            if i + 1 == parts.len() {
                if !obj.contains_key(*part) {
                    return Err(format!("unknown key `{key}`"));
                }
                obj.insert((*part).to_string(), value.clone());
                break;
            }
            node = obj.get_mut(*part).ok_or_else(|| format!("unknown key `{key}`"))?;
        }
    }
    serde_json::from_value(root).map_err(|e| e.to_string())
}
