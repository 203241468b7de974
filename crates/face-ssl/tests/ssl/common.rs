//! The bundled real faces with their MTCNN landmarks (facenet-pytorch's, from face-teachers'
//! reference fixture), aligned to 112 px with the landmarks carried into the crops.

#![allow(dead_code)]

use face_ssl::Face;

/// A bundled face: its id, identity (when the manifest names one) and aligned crop.
pub struct Bundled {
    pub id: String,
    pub identity: Option<String>,
    pub face: Face,
}

pub fn bundled_faces() -> Vec<Bundled> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{root}/crates/face-teachers/tests/fixtures/teachers_reference.json"
        ))
        .expect("teachers fixture"),
    )
    .expect("json");
    let manifest = std::fs::read_to_string(format!("{root}/data/faces/manifest.csv")).expect("manifest");
    let identity_of = |image: &str| {
        manifest
            .lines()
            .filter_map(|l| l.split_once(','))
            .find(|(f, _)| *f == image)
            .and_then(|(_, rest)| rest.split(',').next())
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    };
    let mut photos = std::collections::HashMap::new();
    reference["faces"]
        .as_array()
        .expect("faces")
        .iter()
        .map(|f| {
            let image = f["image"].as_str().expect("image").to_owned();
            let photo = photos.entry(image.clone()).or_insert_with(|| {
                face_data::read_rgb(std::path::Path::new(&format!("{root}/data/faces/{image}")))
                    .expect("photo")
            });
            let pts: Vec<[f32; 2]> = f["landmarks"]
                .as_array()
                .expect("landmarks")
                .iter()
                .map(|p| [p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32])
                .collect();
            let landmarks = [pts[0], pts[1], pts[2], pts[3], pts[4]];
            Bundled {
                id: f["face"].as_str().expect("id").to_owned(),
                identity: identity_of(&image),
                face: Face::align(photo, &landmarks, 112).expect("align"),
            }
        })
        .collect()
}

/// Held by every test that seeds or draws from Burn's backend RNG (module initialisation,
/// training). NdArray's RNG is one per process, so a test that seeds it and then initialises a
/// network is only reproducible when no other test draws from it in between — and the resume
/// test compares two runs of one seed. A panicking holder does not block the others.
pub fn burn_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
