//! face-data tour on the bundled real face: align it to the ArcFace 112×112 and dlib 64×64
//! templates, write the crops, then show the imbalance tools on a CelebA-like attribute table
//! and build a demographic-balanced pair list.
//!
//! ```sh
//! cargo run --release --example prepare_faces -- --out out/prepare_faces --seed 1
//! ```

use std::path::PathBuf;

use face_data::imbalance::{imbalance, ml_ros, Attribute, LabelTable, MlRosConfig};
use face_data::pairs::{balanced_pairs, GroupedImage};
use face_data::{align_face, read_rgb, warp_affine, FaceTemplate, Normalize};
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = PathBuf::from("out/prepare_faces");
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().ok_or("--out needs a directory")?.into(),
            "--seed" => seed = args.next().ok_or("--seed needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?} (expected --out DIR, --seed N)").into()),
        }
    }
    std::fs::create_dir_all(&out)?;

    // 1. Alignment of a real photo (landmarks hand-marked; data/faces/NOTICE).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let img = read_rgb(&root.join("data/faces/obama.jpg"))?;
    let all: std::collections::HashMap<String, Vec<[f32; 2]>> =
        serde_json::from_str(&std::fs::read_to_string(root.join("data/faces/landmarks.json"))?)?;
    let landmarks = all
        .get("obama.jpg")
        .ok_or("data/faces/landmarks.json has no obama.jpg")?
        .clone();
    let arcface = FaceTemplate::arcface(112)?;
    let m = arcface.transform_for(&landmarks)?;
    warp_affine(&img, &m, 112, 112)?.save(out.join("obama_arcface_112.png"))?;
    let crop = align_face(&img, &landmarks, &arcface, &Normalize::arcface(), false)?;
    println!(
        "ArcFace crop: shape {:?}, scale {:.4}, first value {:.4}",
        crop.shape(),
        m.scale(),
        crop.data[0]
    );
    // The dlib template wants dlib's own 5 points (eye corners, nose base); mapping ours onto
    // it is only for illustration of the 64-px chip size.
    let dlib = FaceTemplate::dlib(64, 0.2)?;
    let dlib_points = [
        landmarks[1],
        landmarks[1],
        landmarks[0],
        landmarks[0],
        landmarks[2],
    ];
    let dm = dlib.transform_for(&dlib_points)?;
    warp_affine(&img, &dm, 64, 64)?.save(out.join("obama_dlib_64.png"))?;

    // 2. Imbalance of a CelebA-like table and ML-ROS.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let names = ["Male", "Eyeglasses", "Bald", "Young"];
    let rates = [0.42, 0.065, 0.022, 0.77];
    let values: Vec<u16> = (0..20_000)
        .flat_map(|_| rates.map(|r| u16::from(rng.gen_bool(r))))
        .collect();
    let attrs = names
        .iter()
        .map(|n| Attribute {
            name: (*n).into(),
            categories: vec!["absent".into(), "present".into()],
        })
        .collect();
    let table = LabelTable::new(attrs, values)?;
    let report = imbalance(&table);
    for a in &report.attributes {
        println!("{:<11} counts {:?}  max/min {:.1}", a.name, a.counts, a.ratio);
    }
    let ros = ml_ros(
        &table,
        &MlRosConfig {
            target_mean_ir: 2.0,
            max_added: 10_000,
            seed,
        },
    )?;
    println!(
        "ML-ROS: MeanIR {:.2} → {:.2} with {} added rows ({:?})",
        ros.before.mean_ir,
        ros.after.mean_ir,
        ros.added.len(),
        ros.stop
    );
    std::fs::write(out.join("ml_ros.json"), serde_json::to_string_pretty(&ros)?)?;

    // 3. A demographic-balanced pair list over synthetic identities.
    let groups = [
        "female/asian",
        "female/black",
        "female/white",
        "male/asian",
        "male/black",
        "male/white",
    ];
    let images: Vec<GroupedImage> = (0..600u32)
        .flat_map(|id| {
            let group = groups[id as usize % 6].to_owned();
            (0..4).map(move |k| GroupedImage {
                path: format!("{id:04}/{k}.jpg"),
                identity: id,
                group: group.clone(),
            })
        })
        .collect();
    let pairs = balanced_pairs(&images, 1000, seed)?;
    pairs.write(&out.join("balanced_pairs.tsv"))?;
    println!("balanced pairs: {:?}", pairs.group_counts());
    println!("wrote {}", out.display());
    Ok(())
}
