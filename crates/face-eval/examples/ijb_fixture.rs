//! IJB-style 1:1 evaluation on the small reference protocol committed with the tests
//! (80 faces, 15 templates, 50 pairs, 8-d features with flipped halves), in all 8 of
//! insightface's N/D/F settings.
//!
//! ```sh
//! cargo run -p face-eval --example ijb_fixture
//! ```

use face_data::formats::ijb::{IjbFace, TemplatePair};
use face_eval::ijb::{evaluate, ImageFeatures, TemplateOptions};
use serde_json::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ijb.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let dim = fx["dim"].as_u64().unwrap_or(0) as usize;
    let faces: Vec<IjbFace> = fx["faces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| IjbFace {
            image: f["image"].as_str().unwrap_or_default().into(),
            template: f["template"].as_u64().unwrap_or(0) as u32,
            media: f["media"].as_u64().unwrap_or(0) as u32,
        })
        .collect();
    let faceness: Vec<f32> = fx["faceness"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| num(v) as f32)
        .collect();
    let feats: Vec<f32> = fx["features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| num(v) as f32)
        .collect();
    let pairs: Vec<TemplatePair> = fx["pairs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| TemplatePair {
            a: p[0].as_u64().unwrap_or(0) as u32,
            b: p[1].as_u64().unwrap_or(0) as u32,
            genuine: p[2] == 1,
        })
        .collect();
    let features = ImageFeatures {
        data: &feats,
        width: 2 * dim,
        flipped_halves: true,
    };
    println!("{} faces, {} pairs", faces.len(), pairs.len());
    for norm in [true, false] {
        for detector_score in [true, false] {
            for flip in [true, false] {
                let options = TemplateOptions {
                    norm,
                    detector_score,
                    flip,
                };
                let (report, _) = evaluate("fixture", &faces, &faceness, features, &pairs, options, &[0.1])?;
                println!(
                    "{}: AUC {:.4}, EER {:.2}%",
                    options.label(),
                    report.auc,
                    100.0 * report.eer.eer
                );
            }
        }
    }
    Ok(())
}
