//! IJB-B / IJB-C 1:1 verification metadata, in the layout of insightface's
//! `recognition/_evaluation_/ijb/` release (`IJBC/meta/`, `IJBC/loose_crop/`):
//!
//! | file | line |
//! |---|---|
//! | `ijbc_face_tid_mid.txt` | `1.jpg 1 69544` — image, template id, media id |
//! | `ijbc_template_pair_label.txt` | `1 11065 1` — template, template, 1 genuine / 0 impostor |
//! | `ijbc_name_5pts_score.txt` | `1.jpg x1 y1 … x5 y5 score` — 5 landmarks in the loose crop + detector faceness |
//!
//! (`ijbb_…` for IJB-B.) insightface pairs the face list and the landmark list row by row,
//! so [`IjbProtocol::load`] checks that both name the same image on every row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::formats::celeba::FivePoints;
use crate::text::{parse_rows, read_text};

/// One image (face crop) of the protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct IjbFace {
    /// Image file name under `loose_crop/`.
    pub image: String,
    /// Template id.
    pub template: u32,
    /// Media id (frames of one video share it).
    pub media: u32,
}

/// One template pair to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplatePair {
    /// First template id.
    pub a: u32,
    /// Second template id.
    pub b: u32,
    /// Same subject.
    pub genuine: bool,
}

/// Landmarks and detector score of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct IjbLandmarks {
    /// Image file name.
    pub image: String,
    /// Five points in the loose crop (ArcFace order).
    pub points: FivePoints,
    /// Detector faceness score (insightface multiplies features by it).
    pub faceness: f32,
}

/// Parses `*_face_tid_mid.txt`.
///
/// # Errors
/// A line without 3 fields or with a non-integer id, naming the line.
pub fn parse_face_tid_mid(text: &str, path: &Path) -> Result<Vec<IjbFace>> {
    parse_rows(text, path, 3, "image template media", |at, f| {
        Ok(IjbFace {
            image: f[0].to_owned(),
            template: at.parse(f[1], "template id")?,
            media: at.parse(f[2], "media id")?,
        })
    })
}

/// Parses `*_template_pair_label.txt`.
///
/// # Errors
/// A line without 3 fields, a non-integer template id or a label other than 0/1.
pub fn parse_template_pairs(text: &str, path: &Path) -> Result<Vec<TemplatePair>> {
    parse_rows(text, path, 3, "template template label", |at, f| {
        let genuine = match f[2] {
            "1" => true,
            "0" => false,
            other => return Err(at.err(format!("label must be 0 or 1, found {other:?}"))),
        };
        Ok(TemplatePair {
            a: at.parse(f[0], "template id")?,
            b: at.parse(f[1], "template id")?,
            genuine,
        })
    })
}

/// Parses `*_name_5pts_score.txt`.
///
/// # Errors
/// A line without 12 fields (name, 10 coordinates, score) or a non-finite number.
pub fn parse_name_5pts_score(text: &str, path: &Path) -> Result<Vec<IjbLandmarks>> {
    parse_rows(text, path, 12, "image, 5 × (x y), faceness", |at, f| {
        let mut points = [[0.0; 2]; 5];
        for (k, p) in points.iter_mut().enumerate() {
            *p = [
                at.finite(f[1 + 2 * k], "landmark x")?,
                at.finite(f[2 + 2 * k], "landmark y")?,
            ];
        }
        Ok(IjbLandmarks {
            image: f[0].to_owned(),
            points,
            faceness: at.finite(f[11], "faceness score")?,
        })
    })
}

/// Which benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IjbBenchmark {
    /// IJB-B (file prefix `ijbb`).
    IjbB,
    /// IJB-C (file prefix `ijbc`).
    IjbC,
}

impl IjbBenchmark {
    fn prefix(self) -> &'static str {
        match self {
            IjbBenchmark::IjbB => "ijbb",
            IjbBenchmark::IjbC => "ijbc",
        }
    }
}

/// A whole 1:1 protocol: faces (with landmarks, row-aligned), templates and pairs.
#[derive(Debug, Clone)]
pub struct IjbProtocol {
    /// Face crops, in file order.
    pub faces: Vec<IjbFace>,
    /// Landmarks of `faces[i]` at index `i`.
    pub landmarks: Vec<IjbLandmarks>,
    /// Pairs to score, in file order.
    pub pairs: Vec<TemplatePair>,
    /// Directory of the crops (`<root>/loose_crop`).
    pub image_dir: PathBuf,
}

impl IjbProtocol {
    /// Loads `<root>/meta/{prefix}_face_tid_mid.txt`, `…_template_pair_label.txt` and
    /// `…_name_5pts_score.txt`.
    ///
    /// # Errors
    /// Parse errors of the three files; different row counts or image names between the face
    /// and landmark lists; a pair naming a template that has no face.
    pub fn load(root: &Path, benchmark: IjbBenchmark) -> Result<Self> {
        let meta = root.join("meta");
        let prefix = benchmark.prefix();
        let read = |name: String| -> Result<(PathBuf, String)> {
            let p = meta.join(name);
            let t = read_text(&p)?;
            Ok((p, t))
        };
        let (fp, ft) = read(format!("{prefix}_face_tid_mid.txt"))?;
        let (pp, pt) = read(format!("{prefix}_template_pair_label.txt"))?;
        let (lp, lt) = read(format!("{prefix}_name_5pts_score.txt"))?;
        Self::from_parts(
            parse_face_tid_mid(&ft, &fp)?,
            parse_name_5pts_score(&lt, &lp)?,
            parse_template_pairs(&pt, &pp)?,
            root.join("loose_crop"),
        )
    }

    /// Assembles and checks a protocol from parsed parts.
    ///
    /// # Errors
    /// As [`IjbProtocol::load`] for the consistency checks.
    pub fn from_parts(
        faces: Vec<IjbFace>,
        landmarks: Vec<IjbLandmarks>,
        pairs: Vec<TemplatePair>,
        image_dir: PathBuf,
    ) -> Result<Self> {
        if faces.len() != landmarks.len() {
            return Err(DataError::Inconsistent(format!(
                "the face list has {} rows but the landmark list has {}",
                faces.len(),
                landmarks.len()
            )));
        }
        if let Some((i, (f, l))) = faces
            .iter()
            .zip(&landmarks)
            .enumerate()
            .find(|(_, (f, l))| f.image != l.image)
        {
            return Err(DataError::Inconsistent(format!(
                "row {}: the face list names {} but the landmark list names {}",
                i + 1,
                f.image,
                l.image
            )));
        }
        let protocol = Self {
            faces,
            landmarks,
            pairs,
            image_dir,
        };
        let templates = protocol.templates();
        if let Some((i, p)) = protocol
            .pairs
            .iter()
            .enumerate()
            .find(|(_, p)| !templates.contains_key(&p.a) || !templates.contains_key(&p.b))
        {
            let t = if templates.contains_key(&p.a) { p.b } else { p.a };
            return Err(DataError::Inconsistent(format!(
                "pair {} names template {t}, which has no face",
                i + 1
            )));
        }
        Ok(protocol)
    }

    /// Face rows of each template id.
    pub fn templates(&self) -> HashMap<u32, Vec<usize>> {
        let mut m: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, f) in self.faces.iter().enumerate() {
            m.entry(f.template).or_default().push(i);
        }
        m
    }
}
