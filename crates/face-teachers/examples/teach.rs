//! Builds the teacher-target cache of an image folder (resumable: rerun after an interruption
//! and it continues where it stopped).
//!
//! ```text
//! cargo run --release -p face-teachers --example teach -- data/faces /tmp/faces.safetensors
//! cargo run --release -p face-teachers --example teach -- ALIGNED_112_DIR out.safetensors --aligned
//! cargo run --release -p face-teachers --example teach -- RECORDIO_DIR out.safetensors   # train.rec + train.idx
//! ```

use std::path::PathBuf;

use burn::backend::NdArray;
use face_detect::{Mtcnn, MtcnnConfig};
use face_teachers::{
    build_cache, default_models_dir, BuildOptions, DlibAgeGenderTeacher, FrFeatureTeacher, LandmarkSource,
    TargetCache,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let aligned = args.iter().any(|a| a == "--aligned");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [images, out] = paths.as_slice() else {
        eprintln!("usage: teach IMAGES_DIR OUT.safetensors [--aligned]");
        std::process::exit(2);
    };
    let (images, out) = (PathBuf::from(images), PathBuf::from(out));
    let device = Default::default();
    let models = default_models_dir();
    let identity = FrFeatureTeacher::<NdArray>::load(&models, &device)?;
    let age_gender = DlibAgeGenderTeacher::<NdArray>::load(&models, &device)?;
    let mtcnn = Mtcnn::<NdArray>::load(&models, MtcnnConfig::default(), &device)?;
    // An insightface RecordIO directory holds ArcFace-aligned crops.
    let items = face_data::open_source(&images, aligned)?;
    let landmarks = if items.aligned() {
        LandmarkSource::Aligned
    } else {
        LandmarkSource::Detect(&mtcnn)
    };
    let options = BuildOptions {
        progress: true,
        ..BuildOptions::default()
    };
    let report = build_cache(
        &identity,
        &age_gender,
        landmarks,
        items.as_ref(),
        &out,
        &options,
        &device,
    )?;
    let cache = TargetCache::read(&out)?;
    println!(
        "{}: {} faces ({} resumed, {} new), {} skipped",
        out.display(),
        cache.len(),
        report.resumed,
        report.processed,
        cache.skipped.len()
    );
    for i in 0..cache.len() {
        println!(
            "  {:32} age {:5.1}  P(male) {:.3}",
            cache.ids[i], cache.expected_age[i], cache.p_male[i]
        );
    }
    for (id, why) in &cache.skipped {
        println!("  {id:32} skipped: {why}");
    }
    Ok(())
}
