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
