//! Writes a synthetic insightface RecordIO training set of N faces — augmented copies of the
//! bundled real faces — for measuring memory and throughput at scale (`facekit teach --aligned`,
//! streamed training). Synthetic in content, real in format: `train.rec` + `train.idx`, record 0
//! the insightface header, each image a 112 px ArcFace crop as JPEG (quality 90), labelled with
//! its source face's identity.
//!
//! ```text
//! cargo run --release --example synthetic_recordio -- --n 20000 --out /tmp/rec20k [--targets]
//! ```
//!
//! The source faces are the 60 photos of `data/dev-faces` (13 people), detected and aligned by
//! MTCNN. Each copy is that crop under a seeded random resized crop, flip and colour jitter
//! (facekit's training augmentation), so no two records are the same bytes. With `--targets`,
//! the bundled teachers run once on the 60 source crops and `OUT/targets.safetensors` gets one
//! row per copy holding its source face's targets (a stand-in for `facekit teach` when only the
//! training side is measured; the teach side is measured by running it).

use std::path::PathBuf;
use std::time::Instant;

use face_data::formats::recordio::{pack, RecordIoWriter};
use face_data::{DataRng, FaceTemplate, Transform};
use face_distill::config::AugmentConfig;
use face_teachers::{
    default_models_dir, AgeGenderTeacher, CacheMeta, CacheRow, CacheWriter, DlibAgeGenderTeacher, FaceRef,
    FrFeatureTeacher, IdentityTeacher, CACHE_FORMAT,
};
use image::codecs::jpeg::JpegEncoder;
use rand::SeedableRng;
use rayon::prelude::*;

type Error = Box<dyn std::error::Error>;
type B = burn::backend::NdArray;

fn main() -> Result<(), Error> {
    let (mut n, mut out, mut targets) = (20_000usize, None, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--n" => n = it.next().ok_or("--n needs a value")?.parse()?,
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a value")?)),
            "--targets" => targets = true,
            other => {
                return Err(format!("unknown argument `{other}`; usage: --n N --out DIR [--targets]").into())
            }
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    if n == 0 {
        return Err("--n must be at least 1".into());
    }
    std::fs::create_dir_all(&out)?;
    let t0 = Instant::now();

    // The source crops: the largest face of each dev-faces photo, aligned to 112 px.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/dev-faces/images");
    let models = default_models_dir();
    let dev = Default::default();
    let mtcnn = face_distill::pipeline::load_mtcnn(&models)?;
    let template = FaceTemplate::arcface(112)?;
    let mut people: Vec<String> = Vec::new();
    let mut sources = Vec::new();
    for (id, path) in face_data::list_images(&root)? {
        let person = id.split('/').next().unwrap_or(&id).to_owned();
        let img = face_data::read_rgb(&path)?;
        let Some(face) = mtcnn.detect(&img).into_iter().next() else {
            eprintln!("{id}: no face, left out");
            continue;
        };
        let m = template.transform_for(&face.landmarks)?;
        let crop = face_data::warp_affine(&img, &m, 112, 112)?;
        let label = match people.iter().position(|p| *p == person) {
            Some(i) => i,
            None => {
                people.push(person);
                people.len() - 1
            }
        };
        sources.push((crop, label as u32));
    }
    if sources.is_empty() {
        return Err(format!("no face found under {}", root.display()).into());
    }
    eprintln!("{} source faces of {} people", sources.len(), people.len());

    let pipe = face_distill::data::augmentation(&AugmentConfig::default(), 112)
        .ok_or("the default augmentation is enabled")?;
    let mut w = RecordIoWriter::create(&out.join("train.rec"), &out.join("train.idx"))?;
    w.write(0, &pack(0, &[(n + 1) as f32, (n + 1) as f32], &[]))?;
    for start in (0..n).step_by(4096) {
        let end = (start + 4096).min(n);
        let records: Vec<Vec<u8>> = (start..end)
            .into_par_iter()
            .map(|k| -> Result<Vec<u8>, String> {
                let (crop, label) = &sources[k % sources.len()];
                let mut rng = DataRng::seed_from_u64(k as u64);
                let img = pipe.apply(crop.clone(), &mut rng);
                let mut jpeg = Vec::new();
                JpegEncoder::new_with_quality(&mut jpeg, 90)
                    .encode_image(&img)
                    .map_err(|e| e.to_string())?;
                Ok(pack(k as u64 + 1, &[*label as f32], &jpeg))
            })
            .collect::<Result<_, String>>()?;
        for (k, r) in (start..end).zip(records) {
            w.write(k as u64 + 1, &r)?;
        }
    }
    w.finish()?;
    eprintln!(
        "{n} records → {} in {:.1} s",
        out.join("train.rec").display(),
        t0.elapsed().as_secs_f64()
    );

    if targets {
        let identity = FrFeatureTeacher::<B>::load(&models, &dev)?;
        let age_gender = DlibAgeGenderTeacher::<B>::load(&models, &dev)?;
        let points: [[f32; 2]; 5] = std::array::from_fn(|j| template.points[j]);
        let faces: Vec<FaceRef<'_>> = sources
            .iter()
            .map(|(crop, _)| FaceRef {
                image: crop,
                landmarks: points,
                bbox: None,
            })
            .collect();
        let emb = face_nets::to_f32_vec(identity.embed_faces(&faces, &dev)?)?;
        let ag = age_gender.predict_faces(&faces, &dev)?;
        let (probs, ages, males) = (
            face_nets::to_f32_vec(ag.age_probs)?,
            face_nets::to_f32_vec(ag.expected_age)?,
            face_nets::to_f32_vec(ag.p_male)?,
        );
        let (d, k) = (identity.dim(), age_gender.age_bins().len());
        let meta = CacheMeta {
            format: CACHE_FORMAT,
            identity_version: format!("{} (synthetic copies)", identity.version()),
            age_gender_version: format!("{} (synthetic copies)", age_gender.version()),
            identity_recipe: identity.recipe().clone(),
            age_recipe: age_gender.age_recipe().clone(),
            gender_recipe: age_gender.gender_recipe().clone(),
            dim: d,
            age_bins: age_gender.age_bins().to_vec(),
            landmarks: "aligned".into(),
        };
        let ids: Vec<String> = (0..n)
            .map(|i| format!("rec:{i}:{}", sources[i % sources.len()].1))
            .collect();
        let path = out.join("targets.safetensors");
        let mut c = CacheWriter::create(&path, &meta, &ids, &[])?;
        drop(ids);
        for i in 0..n {
            let s = i % sources.len();
            c.push(&CacheRow {
                embedding: emb[s * d..(s + 1) * d].to_vec(),
                age_probs: probs[s * k..(s + 1) * k].to_vec(),
                expected_age: ages[s],
                p_male: males[s],
                landmarks: points,
                det_score: 1.0,
            })?;
        }
        c.finish()?;
        eprintln!(
            "targets → {} in {:.1} s",
            path.display(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
