#[path = "../tests/ssl/common.rs"]
mod common;
use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use face_ssl::{Face, PretrainConfig, Pretrainer, Session};
use std::time::Instant;
type B = Autodiff<NdArray<f32>>;
fn main() {
    // As `facekit pretrain` and the bench do (glibc: freed blocks stay mapped).
    face_nets::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = PretrainConfig::lafs().with_overrides(&args).unwrap();
    let faces: Vec<Face> = common::bundled_faces()
        .into_iter()
        .map(|b| b.face)
        .take(16)
        .collect();
    let tr = Pretrainer::<B>::new(config.clone(), Default::default()).unwrap();
    let idx: Vec<usize> = (0..16).collect();
    let views = tr.batch_views(&faces, &idx, 1, 0).unwrap();
    let mut s = Session::<B>::new(&config, &Default::default(), 16, 1000).unwrap();
    s.step(&views, 1).unwrap();
    let t = Instant::now();
    for _ in 0..2 {
        s.step(&views, 1).unwrap();
    }
    println!("step {:.3} s", t.elapsed().as_secs_f64() / 2.0);
    let m = face_ssl::DinoModel::<B>::new(&config, &Default::default())
        .unwrap()
        .valid();
    let t = Instant::now();
    let _ = face_ssl::train::ema_update(m.clone(), &m, 0.99).unwrap();
    println!("ema {:.3} s", t.elapsed().as_secs_f64());
}
