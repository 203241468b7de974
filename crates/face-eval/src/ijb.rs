//! IJB-B / IJB-C 1:1 verification with insightface's template aggregation
//! (DESIGN.md): per image, embedding(image) + embedding(flipped image); no
//! per-image L2 norm; × detector faceness score; mean over the frames of one
//! media; **sum** over the media of one template; L2-normalise; score = dot
//! product. The three ablation switches insightface users know toggle the steps:
//! `N` (keep the per-image norm; N0 normalises each image first), `D` (faceness
//! weighting) and `F` (flip test).

use std::collections::{BTreeMap, HashMap};

use face_data::formats::ijb::{IjbFace, TemplatePair};
use face_metrics::{VerificationReport, VerificationScores};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// insightface's ablation switches; the default (all on) is its reported setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateOptions {
    /// `N1`: keep each image's feature norm (`false`: L2-normalise each image first).
    pub norm: bool,
    /// `D1`: multiply each image's feature by its detector faceness score.
    pub detector_score: bool,
    /// `F1`: add the flipped image's embedding.
    pub flip: bool,
}

impl Default for TemplateOptions {
    fn default() -> Self {
        Self {
            norm: true,
            detector_score: true,
            flip: true,
        }
    }
}

impl TemplateOptions {
    /// insightface's label, e.g. `N1D1F1`.
    pub fn label(&self) -> String {
        format!(
            "N{}D{}F{}",
            u8::from(self.norm),
            u8::from(self.detector_score),
            u8::from(self.flip)
        )
    }
}

/// Per-image features in the protocol's face order.
#[derive(Debug, Clone, Copy)]
pub struct ImageFeatures<'a> {
    /// Row-major, one row per face of the protocol.
    pub data: &'a [f32],
    /// Values per row.
    pub width: usize,
    /// Each row is `[embedding(image), embedding(flipped image)]` (insightface's
    /// layout), so the embedding dimension is `width / 2`.
    pub flipped_halves: bool,
}

/// L2-normalised template features.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateFeatures {
    /// Template ids, ascending (one per row).
    pub templates: Vec<u32>,
    /// Dimension.
    pub dim: usize,
    /// Row-major features.
    pub data: Vec<f32>,
}

/// Aggregates image features into template features.
///
/// # Errors
/// Row count ≠ face count, faceness count ≠ face count, flip requested without
/// flipped halves, an odd width with halves, or a non-finite feature.
pub fn template_features(
    faces: &[IjbFace],
    faceness: &[f32],
    features: ImageFeatures<'_>,
    options: TemplateOptions,
) -> Result<TemplateFeatures> {
    let w = features.width;
    if w == 0 || features.data.len() != faces.len() * w {
        return Err(EvalError::Inconsistent(format!(
            "{} faces × width {w} do not match {} feature values",
            faces.len(),
            features.data.len()
        )));
    }
    if faceness.len() != faces.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} faceness scores for {} faces",
            faceness.len(),
            faces.len()
        )));
    }
    if features.flipped_halves && !w.is_multiple_of(2) {
        return Err(EvalError::Inconsistent(format!(
            "width {w} is odd, so rows cannot hold two halves"
        )));
    }
    if options.flip && !features.flipped_halves {
        return Err(EvalError::Inconsistent(
            "the flip test (F1) needs features of the flipped images: embed with --flip or choose F0".into(),
        ));
    }
    if let Some(p) = features.data.iter().position(|v| !v.is_finite()) {
        return Err(EvalError::Inconsistent(format!(
            "feature of face {} ({}) is not finite at column {}",
            p / w,
            faces[p / w].image,
            p % w
        )));
    }
    let dim = if features.flipped_halves { w / 2 } else { w };
    // Image features after the F, N and D steps, in f64.
    let image = |i: usize, out: &mut [f64]| {
        let row = &features.data[i * w..(i + 1) * w];
        for (k, o) in out.iter_mut().enumerate() {
            *o = f64::from(row[k]);
            if options.flip {
                *o += f64::from(row[dim + k]);
            }
        }
        if !options.norm {
            let n = out.iter().map(|v| v * v).sum::<f64>().sqrt();
            if n > 0.0 {
                out.iter_mut().for_each(|v| *v /= n);
            }
        }
        if options.detector_score {
            let s = f64::from(faceness[i]);
            out.iter_mut().for_each(|v| *v *= s);
        }
    };
    // template → media → image rows (ascending ids, like numpy's unique).
    let mut groups: BTreeMap<u32, BTreeMap<u32, Vec<usize>>> = BTreeMap::new();
    for (i, f) in faces.iter().enumerate() {
        groups
            .entry(f.template)
            .or_default()
            .entry(f.media)
            .or_default()
            .push(i);
    }
    let mut templates = Vec::with_capacity(groups.len());
    let mut data = Vec::with_capacity(groups.len() * dim);
    let mut buf = vec![0f64; dim];
    let mut media_sum = vec![0f64; dim];
    let mut template_sum = vec![0f64; dim];
    for (t, medias) in &groups {
        template_sum.fill(0.0);
        for rows in medias.values() {
            media_sum.fill(0.0);
            for &i in rows {
                image(i, &mut buf);
                media_sum.iter_mut().zip(&buf).for_each(|(m, b)| *m += b);
            }
            let n = rows.len() as f64;
            template_sum
                .iter_mut()
                .zip(&media_sum)
                .for_each(|(s, m)| *s += m / n);
        }
        let norm = template_sum.iter().map(|v| v * v).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        data.extend(template_sum.iter().map(|v| (v * inv) as f32));
        templates.push(*t);
    }
    Ok(TemplateFeatures { templates, dim, data })
}

impl TemplateFeatures {
    /// Template id → row.
    fn rows(&self) -> HashMap<u32, u32> {
        self.templates
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, i as u32))
            .collect()
    }

    /// Dot-product score of each template pair whose two templates have images; `None` for a
    /// pair naming a template none of whose images enrolled (a failure to enrol).
    ///
    /// # Errors
    /// A dimension mismatch in scoring.
    pub fn score_available(&self, pairs: &[TemplatePair]) -> Result<Vec<Option<f32>>> {
        let row = self.rows();
        let (mut idx, mut at) = (Vec::with_capacity(pairs.len()), Vec::with_capacity(pairs.len()));
        for (i, p) in pairs.iter().enumerate() {
            if let (Some(&a), Some(&b)) = (row.get(&p.a), row.get(&p.b)) {
                idx.push((a, b));
                at.push(i);
            }
        }
        let scored = face_search::score_pairs(&self.data, self.dim, &idx)?;
        let mut out = vec![None; pairs.len()];
        for (i, s) in at.into_iter().zip(scored) {
            out[i] = Some(s);
        }
        Ok(out)
    }

    /// Dot-product score of each template pair.
    ///
    /// # Errors
    /// A pair naming a template that has no images (the first such pair is named).
    pub fn score(&self, pairs: &[TemplatePair]) -> Result<Vec<f32>> {
        let row = self.rows();
        let mut idx = Vec::with_capacity(pairs.len());
        for (i, p) in pairs.iter().enumerate() {
            match (row.get(&p.a), row.get(&p.b)) {
                (Some(&a), Some(&b)) => idx.push((a, b)),
                _ => {
                    return Err(EvalError::Inconsistent(format!(
                        "pair {} ({}, {}) names a template without images",
                        i + 1,
                        p.a,
                        p.b
                    )))
                }
            }
        }
        Ok(face_search::score_pairs(&self.data, self.dim, &idx)?)
    }
}

/// The IJB 1:1 evaluation when some images failed to enrol (`enrolled[i]` false: no face, an
/// unreadable image, a zero or non-finite feature row). Templates are aggregated from the
/// images that enrolled; a pair naming a template none of whose images did is scored under
/// `policy`. Returns the report, each pair's score (`None` where a template is missing) and the
/// number of such pairs.
///
/// # Errors
/// As [`evaluate`]; `enrolled` of another length; `Fail` with a missing pair.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_enrolled(
    name: &str,
    faces: &[IjbFace],
    faceness: &[f32],
    features: ImageFeatures<'_>,
    enrolled: &[bool],
    pairs: &[TemplatePair],
    options: TemplateOptions,
    far_targets: &[f64],
    policy: crate::enrol::MissingPolicy,
) -> Result<(VerificationReport, Vec<Option<f32>>, usize)> {
    if enrolled.len() != faces.len() {
        return Err(EvalError::Inconsistent(format!(
            "{} enrolment flags for {} faces",
            enrolled.len(),
            faces.len()
        )));
    }
    let w = features.width;
    let keep: Vec<usize> = (0..faces.len()).filter(|&i| enrolled[i]).collect();
    let kept_faces: Vec<IjbFace> = keep.iter().map(|&i| faces[i].clone()).collect();
    let kept_faceness: Vec<f32> = keep.iter().map(|&i| faceness[i]).collect();
    let mut kept_data = Vec::with_capacity(keep.len() * w);
    for &i in &keep {
        kept_data.extend_from_slice(features.data.get(i * w..(i + 1) * w).ok_or_else(|| {
            EvalError::Inconsistent(format!(
                "{} faces × width {w} do not match {} feature values",
                faces.len(),
                features.data.len()
            ))
        })?);
    }
    let t = template_features(
        &kept_faces,
        &kept_faceness,
        ImageFeatures {
            data: &kept_data,
            ..features
        },
        options,
    )?;
    let scores = t.score_available(pairs)?;
    let raw: Vec<Option<f64>> = scores.iter().map(|s| s.map(f64::from)).collect();
    let genuine: Vec<bool> = pairs.iter().map(|p| p.genuine).collect();
    let applied = crate::enrol::apply_policy(&raw, &genuine, policy)?;
    let v = VerificationScores::from_pairs(applied.scores, applied.genuine)?;
    let report = VerificationReport::new(format!("{name} {}", options.label()), &v, far_targets)?;
    Ok((report, scores, applied.missing))
}

/// The whole 1:1 evaluation: aggregate, score every pair, report AUC, EER and
/// TAR@FAR (three conventions) at `far_targets`.
///
/// # Errors
/// As [`template_features`] and [`TemplateFeatures::score`]; a pair list
/// without genuine or impostor pairs.
pub fn evaluate(
    name: &str,
    faces: &[IjbFace],
    faceness: &[f32],
    features: ImageFeatures<'_>,
    pairs: &[TemplatePair],
    options: TemplateOptions,
    far_targets: &[f64],
) -> Result<(VerificationReport, Vec<f32>)> {
    let t = template_features(faces, faceness, features, options)?;
    let scores = t.score(pairs)?;
    let s64: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    let genuine: Vec<bool> = pairs.iter().map(|p| p.genuine).collect();
    let v = VerificationScores::from_pairs(s64, genuine)?;
    let report = VerificationReport::new(format!("{name} {}", options.label()), &v, far_targets)?;
    Ok((report, scores))
}
