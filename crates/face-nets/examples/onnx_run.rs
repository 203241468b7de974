//! Runs any face model in ONNX format through facekit's executor and prints its outputs.
//!
//! ```text
//! cargo run --release -p face-nets --example onnx_run -- MODEL.onnx [IMAGE]
//! cargo run --release -p face-nets --example onnx_run -- models/fr_feature.onnx data/faces/Tom_Hanks_54745.png
//! ```
//!
//! The image is resized to the graph's input size and scaled to [-1, 1] (the ArcFace convention;
//! a real pipeline uses the model's own recipe, see face-teachers). Without an image the input is
//! a fixed pattern. Unsupported operators and attributes are reported when the file loads.

use std::time::Instant;

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use face_nets::onnx::OnnxModel;

type B = NdArray<f32>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    face_nets::keep_freed_memory();
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: onnx_run MODEL.onnx [IMAGE]");
        std::process::exit(2);
    };
    let device = Default::default();
    let start = Instant::now();
    let model = OnnxModel::<B>::load(&path, &device)?;
    println!(
        "{path}: loaded in {:.1} ms, {} operations after fusion",
        start.elapsed().as_secs_f64() * 1e3,
        model.steps()
    );
    println!("input  {}", model.input());
    for o in model.outputs() {
        println!("output {o}");
    }
    let dims = &model.input().dims;
    let [c, h, w] = [1, 2, 3].map(|i| dims[i].unwrap_or(112));
    let values: Vec<f32> = match args.next() {
        Some(image) => {
            let img = image::open(&image)?
                .resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
                .to_rgb8();
            (0..c)
                .flat_map(|ch| {
                    img.pixels()
                        .map(move |p| (f32::from(p[ch.min(2)]) - 127.5) / 127.5)
                })
                .collect()
        }
        None => (0..c * h * w)
            .map(|i| (0.5 * (0.37 * i as f64).sin()) as f32)
            .collect(),
    };
    let x = Tensor::<B, 4>::from_data(TensorData::new(values, [1, c, h, w]), &device);
    let start = Instant::now();
    let outputs = model.run(x)?;
    println!("ran in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    for name in outputs.names() {
        // Face models answer [N, D]; other ranks are shown flattened.
        let (dims, data) = match outputs.tensor::<2>(name) {
            Ok(y) => (y.dims().to_vec(), y.into_data()),
            Err(_) => {
                let y = outputs.tensor::<4>(name)?;
                (y.dims().to_vec(), y.into_data())
            }
        };
        let v: Vec<f32> = data.to_vec().map_err(|e| format!("{e:?}"))?;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:.4}")).collect();
        println!("{name} {dims:?}: [{} …], L2 norm {norm:.3}", head.join(", "));
    }
    Ok(())
}
