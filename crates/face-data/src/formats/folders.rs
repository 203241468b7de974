//! Image folders and age/gender label sources.
//!
//! - **Image folder**: one sub-folder per identity (`root/<identity>/<image>`), the layout of
//!   torchvision's `ImageFolder`, CASIA-WebFace and VGGFace2 extracts. Identities are numbered
//!   in sorted folder-name order, images sorted by name, hidden entries skipped.
//! - **UTKFace** (Zhang et al., CVPR 2017; <https://susanqq.github.io/UTKFace/>): labels are in
//!   the file name `[age]_[gender]_[race]_[date&time].jpg` (gender 0 male, 1 female; race
//!   0 White, 1 Black, 2 Asian, 3 Indian, 4 Others), also `….jpg.chip.jpg` for the aligned set.
//! - **Age/gender CSV**: a header row with the columns `path,age,gender` (any order, extra
//!   columns ignored); gender as `0`/`1`, `m`/`f` or `male`/`female`; `path` relative to the
//!   CSV's directory unless absolute.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// File extensions treated as images: exactly the codecs `image` is built with here (JPEG and
/// PNG), so every listed file can be decoded.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// Whether `path` has an image extension (any case).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Every image under `dir`, recursively, as `(id, path)` sorted by id, where the id is the path
/// relative to `dir` with `/` separators; hidden entries (a leading `.`) are skipped. This is the
/// one folder listing of facekit: the program, the teacher cache and the examples all use it.
///
/// # Errors
/// An unreadable folder.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("alice"))?;
/// for f in ["alice/1.JPG", "b.png", "notes.txt", ".hidden.png"] {
///     std::fs::write(dir.path().join(f), b"")?;
/// }
/// let ids: Vec<String> = face_data::list_images(dir.path())?.into_iter().map(|(id, _)| id).collect();
/// assert_eq!(ids, ["alice/1.JPG", "b.png"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_images(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for path in sorted_entries(&d)? {
            if path.is_dir() {
                stack.push(path);
            } else if is_image(&path) {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let id = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((id, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// A labelled image of an image folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderImage {
    /// Full path.
    pub path: PathBuf,
    /// Identity index into [`ImageFolder::identities`].
    pub identity: u32,
}

/// A scanned identity-per-folder tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// Identity (folder) names, sorted; index = label.
    pub identities: Vec<String>,
    /// Images, grouped by identity, sorted by name.
    pub images: Vec<FolderImage>,
}

impl ImageFolder {
    /// Scans `root`. Files directly under `root` and identity folders without images are
    /// ignored (the latter are still numbered, so labels do not depend on file contents).
    ///
    /// # Errors
    /// An unreadable directory, or a folder name that is not UTF-8.
    pub fn scan(root: &Path) -> Result<Self> {
        let mut identities = Vec::new();
        let mut images = Vec::new();
        for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| DataError::parse(&dir, 0, "identity folder name is not UTF-8"))?
                .to_owned();
            let identity = identities.len() as u32;
            identities.push(name);
            for path in sorted_entries(&dir)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
            {
                images.push(FolderImage { path, identity });
            }
        }
        Ok(Self { identities, images })
    }

    /// The identity label of every image, in image order.
    pub fn labels(&self) -> Vec<u32> {
        self.images.iter().map(|i| i.identity).collect()
    }
}

/// Gender label (as the age/gender sets code it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Gender {
    /// UTKFace `0`.
    Male,
    /// UTKFace `1`.
    Female,
}

impl Gender {
    /// `0` for male, `1` for female (UTKFace coding; the student's gender logit target).
    pub fn as_index(self) -> u8 {
        match self {
            Gender::Male => 0,
            Gender::Female => 1,
        }
    }
}

/// An image with age and gender (and race for UTKFace).
#[derive(Debug, Clone, PartialEq)]
pub struct AgeGenderImage {
    /// Full path.
    pub path: PathBuf,
    /// Age in years.
    pub age: f32,
    /// Gender.
    pub gender: Gender,
    /// UTKFace race code 0–4, when known.
    pub race: Option<u8>,
}

/// Parses a UTKFace file name.
///
/// # Errors
/// A name that does not start with `age_gender_race_`, an age outside 0–120, a gender other
/// than 0/1, or a race outside 0–4 (the message quotes the name).
pub fn parse_utkface_name(path: &Path) -> Result<AgeGenderImage> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let err = |m: &str| DataError::parse(path, 0, format!("UTKFace name {name:?}: {m}"));
    let mut f = name.split('_');
    let age: u32 = f
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| err("no leading age"))?;
    if age > 120 {
        return Err(err("age above 120"));
    }
    let gender = match f.next() {
        Some("0") => Gender::Male,
        Some("1") => Gender::Female,
        _ => return Err(err("gender field must be 0 or 1")),
    };
    let race = match f.next().map(|t| t.parse::<u8>()) {
        Some(Ok(r)) if r <= 4 => r,
        _ => {
            return Err(err(
                "race field must be 0–4 (some UTKFace files lack it; rename or skip them)",
            ))
        }
    };
    Ok(AgeGenderImage {
        path: path.to_owned(),
        age: age as f32,
        gender,
        race: Some(race),
    })
}

/// What [`scan_utkface`] found.
#[derive(Debug, Default)]
pub struct UtkScan {
    /// Correctly named images.
    pub images: Vec<AgeGenderImage>,
    /// Image files whose name could not be parsed, with the reason (reported, not dropped
    /// silently).
    pub rejected: Vec<DataError>,
}

/// Scans a UTKFace directory (flat), parsing labels from the names.
///
/// # Errors
/// Only an unreadable directory; bad names go to [`UtkScan::rejected`].
pub fn scan_utkface(dir: &Path) -> Result<UtkScan> {
    let mut out = UtkScan::default();
    for p in sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_file() && is_image(p))
    {
        match parse_utkface_name(&p) {
            Ok(i) => out.images.push(i),
            Err(e) => out.rejected.push(e),
        }
    }
    Ok(out)
}

fn parse_gender(token: &str) -> Option<Gender> {
    match token.trim().to_ascii_lowercase().as_str() {
        "0" | "m" | "male" => Some(Gender::Male),
        "1" | "f" | "female" => Some(Gender::Female),
        _ => None,
    }
}

/// Parses an age/gender CSV (see the module docs). `base` resolves relative paths.
///
/// # Errors
/// A missing column, a malformed row, a non-finite or negative age, or an unknown gender,
/// naming the line.
pub fn parse_age_gender_csv(text: &str, path: &Path, base: &Path) -> Result<Vec<AgeGenderImage>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| DataError::parse(path, 1, e.to_string()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| DataError::parse(path, 1, format!("no `{name}` column (header: {:?})", headers)))
    };
    let (pc, ac, gc) = (col("path")?, col("age")?, col("gender")?);
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            DataError::parse(path, line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |c: usize| record.get(c).unwrap_or_default();
        let rel = field(pc);
        if rel.is_empty() {
            return Err(DataError::parse(path, line, "empty path"));
        }
        let age: f32 = field(ac)
            .parse()
            .ok()
            .filter(|a: &f32| a.is_finite() && *a >= 0.0)
            .ok_or_else(|| {
                DataError::parse(
                    path,
                    line,
                    format!("age {:?} is not a non-negative number", field(ac)),
                )
            })?;
        let gender = parse_gender(field(gc)).ok_or_else(|| {
            DataError::parse(
                path,
                line,
                format!("gender {:?} is not 0/1, m/f or male/female", field(gc)),
            )
        })?;
        out.push(AgeGenderImage {
            path: base.join(rel),
            age,
            gender,
            race: None,
        });
    }
    Ok(out)
}

/// Reads an age/gender CSV; relative paths resolve against its directory.
///
/// # Errors
/// As [`parse_age_gender_csv`], or I/O.
pub fn read_age_gender_csv(path: &Path) -> Result<Vec<AgeGenderImage>> {
    let text = crate::text::read_text(path)?;
    parse_age_gender_csv(&text, path, path.parent().unwrap_or(Path::new(".")))
}
