// The body of the CubeCL parity targets (`tests/cubecl.rs` on wgpu, `tests/cuda.rs` on CUDA),
// included by each after it defines `W` (the backend), `JIT` (its name) and `jit_device()`.
// Every comparison runs the same network with the same weights on `W` and on NdArray.

use std::path::PathBuf;

use burn::backend::ndarray::NdArrayDevice;
use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use face_data::augment::DataRng;
use face_distill::{DistillConfig, FaceSet, Targets, Trainer};
use face_nets::{BackboneConfig, IResNetConfig};
use face_ssl::{DinoModel, Face, PretrainConfig, Session, Tokenizer, ViewBuilder};
use face_teachers::{
    AgeGenderTeacher, FaceRef, IdentityTeacher, SpecAgeGenderTeacher, SpecFile, SpecIdentityTeacher,
    TeacherSpec,
};
use rand::SeedableRng;

type N = NdArray<f32>;

/// The repository: `FACEKIT_ROOT` when set (a test binary carried to another machine, as
/// `tools/gpu_check.sh` does), else the checkout it was built in.
fn root() -> PathBuf {
    std::env::var_os("FACEKIT_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Asserts `|jit − ndarray| ≤ tol` element-wise, naming `what`. With `FACEKIT_PARITY_JSONL`
/// set, each comparison is also appended to that file as one JSON line (what, backend, the
/// largest difference, the bound, the number of values), for `tools/gpu_check.sh`.
fn close(what: &str, jit: &[f32], ndarray: &[f32], tol: f32) {
    let d = max_diff(jit, ndarray);
    eprintln!("{what}: max |{JIT} − ndarray| = {d:.2e} over {} values", jit.len());
    if let Some(path) = std::env::var_os("FACEKIT_PARITY_JSONL") {
        use std::io::Write;
        let line = serde_json::json!({
            "what": what, "backend": JIT, "max_abs_diff": d, "tol": tol, "values": jit.len(),
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("FACEKIT_PARITY_JSONL: cannot open");
        writeln!(file, "{line}").expect("FACEKIT_PARITY_JSONL: cannot write");
    }
    assert!(d <= tol, "{what}: max |{JIT} − ndarray| {d} > {tol}");
}

/// Seeds NdArray's random numbers and holds them for the calling test: the generator is one
/// per process, so a test is reproducible only when no other one draws in between.
fn seeded(seed: u64) -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    N::seed(&NdArrayDevice::Cpu, seed);
    guard
}

/// The module with every parameter materialised: Burn initialises parameters lazily, and a
/// clone taken before that initialises its own copy with other random values.
fn settle<B: Backend, M: Module<B>>(m: M) -> M {
    let record = m.clone().into_record();
    m.load_record(record)
}

/// The same weights on another backend: the record written by one and read by the other.
fn transfer<B1: Backend, B2: Backend, M1: Module<B1>, M2: Module<B2>>(
    from: M1,
    into: M2,
    device: &B2::Device,
) -> M2 {
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<B1>::record(&recorder, from.into_record(), ()).expect("record");
    let record = Recorder::<B2>::load(&recorder, bytes, device).expect("load record");
    into.load_record(record)
}

/// The bundled real faces with their landmarks and the bundled teachers' reference outputs
/// (`crates/face-teachers/tests/fixtures/teachers_reference.json`).
struct Reference {
    photos: Vec<(image::RgbImage, [[f32; 2]; 5])>,
    targets: Targets,
}

fn reference(n: usize) -> Reference {
    let path = root().join("crates/face-teachers/tests/fixtures/teachers_reference.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    };
    let faces = &doc["faces"].as_array().expect("faces")[..n];
    let mut t = Targets {
        dim: 0,
        embeddings: Vec::new(),
        age_bins: floats(&doc["age_bins"]),
        age_probs: Vec::new(),
        expected_age: Vec::new(),
        p_male: Vec::new(),
    };
    let mut photos = Vec::new();
    for f in faces {
        let image = face_data::read_rgb(
            &root()
                .join("data/faces")
                .join(f["image"].as_str().expect("image")),
        )
        .expect("photo");
        let pts = floats(&serde_json::Value::Array(
            f["landmarks"]
                .as_array()
                .expect("landmarks")
                .iter()
                .flat_map(|p| p.as_array().expect("point").clone())
                .collect(),
        ));
        let landmarks = std::array::from_fn(|i| [pts[2 * i], pts[2 * i + 1]]);
        photos.push((image, landmarks));
        let e = floats(&f["embedding_unit"]);
        t.dim = e.len();
        t.embeddings.extend(e);
        t.age_probs.extend(floats(&f["age_probs"]));
        t.expected_age
            .push(f["expected_age"].as_f64().expect("age") as f32);
        // gender_probs: [P(female), P(male)], as the bundled gender teacher orders them.
        t.p_male.push(floats(&f["gender_probs"])[1]);
    }
    Reference { photos, targets: t }
}

fn aligned(r: &Reference) -> Vec<Face> {
    r.photos
        .iter()
        .map(|(img, lm)| Face::align(img, lm, 112).expect("align"))
        .collect()
}

#[test]
fn student_training_step_matches_ndarray() {
    let _rng = seeded(1);
    let r = reference(8);
    let faces = aligned(&r);
    let ids: Vec<String> = (0..faces.len()).map(|i| format!("face{i}")).collect();
    let set = FaceSet::new(
        ids,
        faces.iter().map(|f| f.image.clone()).collect(),
        r.targets.clone(),
        None,
    )
    .expect("face set");
    let mut c = DistillConfig::default();
    c.student.backbone = BackboneConfig::IResNet(
        IResNetConfig::new([1, 1, 1, 1])
            .with_base_width(8)
            .with_num_features(32),
    );
    c.data.batch = 8;
    c.data.augment.crop_scale = (1.0, 1.0);
    c.data.augment.color_jitter = 0.0;
    c.data.augment.grayscale = 0.0;
    c.data.augment.flip = 0.0;
    // A large ε keeps AdamW's first update smooth in the gradient (lr·g/(|g|+ε)): with Adam's
    // usual 1e-8 it is lr·sign(g), and the float-rounding differences between two backends'
    // gradients (reductions summed in another order) would flip near-zero ones.
    c.optim.lr = 2e-3;
    c.optim.epsilon = 0.1;
    c.optim.warmup_steps = 0;
    c.train.epochs = 1;
    c.train.early_stop_patience = None;
    let model_config = c.model_config(r.targets.dim, &r.targets.age_bins);
    let nd_dev = NdArrayDevice::Cpu;
    let w_dev = jit_device();
    let init = settle(model_config.init::<Autodiff<N>>(&nd_dev).expect("student"));
    let init_w = transfer(
        init.clone(),
        model_config.init::<Autodiff<W>>(&w_dev).expect("student"),
        &w_dev,
    );
    let rows: Vec<usize> = (0..8).collect();
    let pixels =
        face_distill::data::image_batch(&set, &rows, None, &face_data::Normalize::arcface()).unwrap();
    fn x<B: Backend>(pixels: &[f32], device: &B::Device) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(pixels.to_vec(), [8, 3, 112, 112]), device)
    }
    let before = host(init.valid().forward(x(&pixels, &nd_dev)).embedding);
    close(
        "student before the step",
        &host(init_w.valid().forward(x(&pixels, &w_dev)).embedding),
        &before,
        1e-5,
    );

    let dir = std::env::temp_dir().join(format!("facekit-cubecl-{}", std::process::id()));
    let trainer_n = Trainer::<Autodiff<N>>::new(c.clone(), vec![nd_dev], dir.join("ndarray"))
        .expect("trainer")
        .with_progress(false);
    let mut sn = trainer_n.open(init, &set, None).expect("session");
    let t = std::time::Instant::now();
    let row_n = sn.step().expect("ndarray step");
    let nd_s = t.elapsed().as_secs_f64();
    let trainer_w = Trainer::<Autodiff<W>>::new(c, vec![w_dev.clone()], dir.join(JIT))
        .expect("trainer")
        .with_progress(false);
    let mut sw = trainer_w.open(init_w, &set, None).expect("session");
    let t = std::time::Instant::now();
    let row_w = sw.step().expect("JIT backend step");
    eprintln!(
        "student step (batch 8): {JIT} {:.2} s, ndarray {nd_s:.2} s; loss {JIT} {} ndarray {}",
        t.elapsed().as_secs_f64(),
        row_w.loss,
        row_n.loss
    );
    assert!(
        (row_w.loss - row_n.loss).abs() <= 1e-4 * row_n.loss.abs(),
        "{row_w:?} vs {row_n:?}"
    );
    for (a, b) in [
        (row_w.identity, row_n.identity),
        (row_w.age, row_n.age),
        (row_w.gender, row_n.gender),
    ] {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1e-3), "{a} vs {b}");
    }
    // The stepped models (after forward, backward and AdamW) on the same faces.
    let after_n = sn.model().valid().forward(x(&pixels, &nd_dev));
    let after_w = sw.model().valid().forward(x(&pixels, &w_dev));
    let emb_n = host(after_n.embedding);
    close(
        "student embedding after one step",
        &host(after_w.embedding),
        &emb_n,
        1e-4,
    );
    close(
        "student age logits after one step",
        &host(after_w.age_logits),
        &host(after_n.age_logits),
        1e-4,
    );
    close(
        "student gender logit after one step",
        &host(after_w.gender_logit),
        &host(after_n.gender_logit),
        1e-4,
    );
    // The step moved the model far more than the tolerance, so the comparison says something.
    let moved = max_diff(&emb_n, &before);
    eprintln!("the step moved the student's embedding by up to {moved:.2e}");
    assert!(moved > 1e-2, "the step did not move the student: {moved}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lafs_step_matches_ndarray() {
    let _rng = seeded(2);
    let r = reference(8);
    let faces = aligned(&r);
    let mut config = PretrainConfig::tiny(Tokenizer::Landmarks);
    // No warm-up, so the first step has a learning rate; a tenth of it, so that Adam's
    // lr·sign(g) on gradients near zero (where two backends' rounding may disagree on the sign)
    // stays far below the tolerance while the step still moves the model (asserted below).
    config.optim.warmup_epochs = 0;
    config.optim.lr /= 10.0;
    let builder = ViewBuilder::new(config.views.clone()).expect("views");
    let mut rng = DataRng::seed_from_u64(3);
    let views: Vec<_> = faces
        .iter()
        .map(|f| builder.views(f, &mut rng).expect("views"))
        .collect();
    let nd_dev = NdArrayDevice::Cpu;
    let w_dev = jit_device();
    let init = settle(DinoModel::<Autodiff<N>>::new(&config, &nd_dev).expect("model"));
    let init_w = transfer(
        init.clone(),
        DinoModel::<Autodiff<W>>::new(&config, &w_dev).expect("model"),
        &w_dev,
    );
    let before = face_ssl::embed(&init.backbone.valid(), &builder, &faces, 8, &nd_dev).expect("embed");
    let before_w = face_ssl::embed(&init_w.backbone.valid(), &builder, &faces, 8, &w_dev).expect("embed");
    close(
        "LAFS student before the step",
        &before_w.concat(),
        &before.concat(),
        1e-5,
    );
    let mut sn =
        Session::<Autodiff<N>>::with_student(&config, &nd_dev, faces.len(), 1, init).expect("session");
    let mut sw =
        Session::<Autodiff<W>>::with_student(&config, &w_dev, faces.len(), 1, init_w).expect("session");
    let t = std::time::Instant::now();
    let stats_n = sn.step(&views, 0).expect("ndarray step");
    let nd_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let stats_w = sw.step(&views, 0).expect("JIT backend step");
    eprintln!(
        "LAFS step (8 faces): {JIT} {:.2} s, ndarray {nd_s:.2} s; DINO loss {JIT} {} ndarray {}",
        t.elapsed().as_secs_f64(),
        stats_w.loss,
        stats_n.loss
    );
    assert!(
        (stats_w.loss - stats_n.loss).abs() <= 1e-4 * stats_n.loss.abs(),
        "{stats_w:?} vs {stats_n:?}"
    );
    assert!(
        (stats_w.teacher_entropy - stats_n.teacher_entropy).abs() <= 1e-4 * stats_n.teacher_entropy.abs()
    );
    let flat = |v: Vec<Vec<f32>>| v.into_iter().flatten().collect::<Vec<f32>>();
    let after_n =
        flat(face_ssl::embed(&sn.student().backbone.valid(), &builder, &faces, 8, &nd_dev).expect("embed"));
    let after_w =
        flat(face_ssl::embed(&sw.student().backbone.valid(), &builder, &faces, 8, &w_dev).expect("embed"));
    close(
        "LAFS student representation after one step",
        &after_w,
        &after_n,
        1e-4,
    );
    let moved = max_diff(&after_n, &flat(before));
    eprintln!("the step moved the LAFS student's representation by up to {moved:.2e}");
    assert!(moved > 1e-2, "the step did not move the student: {moved}");
}

#[test]
fn teachers_forward_matches_ndarray() {
    let r = reference(6);
    let models = root().join("models");
    let refs: Vec<FaceRef> = r
        .photos
        .iter()
        .map(|(image, landmarks)| FaceRef {
            image,
            landmarks: *landmarks,
            bbox: None,
        })
        .collect();
    let nd_dev = NdArrayDevice::Cpu;
    let w_dev = jit_device();

    let spec = SpecFile::in_dir(TeacherSpec::fr_feature(), &models);
    let tn = SpecIdentityTeacher::<N>::load(&spec, &nd_dev).expect("identity teacher");
    let tw = SpecIdentityTeacher::<W>::load(&spec, &w_dev).expect("identity teacher");
    let en = host(
        tn.embed(&tn.recipe().prepare(&refs, &nd_dev).expect("prepare"))
            .expect("embed"),
    );
    let ew = host(
        tw.embed(&tw.recipe().prepare(&refs, &w_dev).expect("prepare"))
            .expect("embed"),
    );
    close("identity teacher (fr_feature) embedding", &ew, &en, 1e-4);

    let spec = SpecFile::in_dir(TeacherSpec::dlib_age_gender(), &models);
    let an = SpecAgeGenderTeacher::<N>::load(&spec, &nd_dev).expect("age/gender teacher");
    let aw = SpecAgeGenderTeacher::<W>::load(&spec, &w_dev).expect("age/gender teacher");
    let pn = an
        .predict(
            &an.age_recipe().prepare(&refs, &nd_dev).expect("prepare"),
            &an.gender_recipe().prepare(&refs, &nd_dev).expect("prepare"),
        )
        .expect("predict");
    let pw = aw
        .predict(
            &aw.age_recipe().prepare(&refs, &w_dev).expect("prepare"),
            &aw.gender_recipe().prepare(&refs, &w_dev).expect("prepare"),
        )
        .expect("predict");
    close(
        "age teacher distribution",
        &host(pw.age_probs),
        &host(pn.age_probs),
        1e-4,
    );
    close("gender teacher P(male)", &host(pw.p_male), &host(pn.p_male), 1e-4);
    close(
        "age teacher expected age (years)",
        &host(pw.expected_age),
        &host(pn.expected_age),
        1e-3,
    );
}

/// An RGB crop of `img` resized to `s × s`, normalised as MTCNN takes it, `[1, 3, s, s]`.
fn mtcnn_input<B: Backend>(img: &image::RgbImage, s: u32, device: &B::Device) -> Tensor<B, 4> {
    let small = image::imageops::resize(img, s, s, image::imageops::FilterType::Triangle);
    let mut v = vec![0.0f32; (3 * s * s) as usize];
    for (x, y, p) in small.enumerate_pixels() {
        for c in 0..3 {
            v[(c * s * s + y * s + x) as usize] = (f32::from(p[c as usize]) - 127.5) * 0.0078125;
        }
    }
    Tensor::from_data(TensorData::new(v, [1, 3, s as usize, s as usize]), device)
}

#[test]
fn mtcnn_nets_match_ndarray() {
    let r = reference(3);
    let dir = root().join("models");
    let config = face_detect::MtcnnConfig::default();
    let mn = face_detect::Mtcnn::<N>::load(&dir, config.clone(), &NdArrayDevice::Cpu).expect("mtcnn");
    let mw = face_detect::Mtcnn::<W>::load(&dir, config, &jit_device()).expect("mtcnn");
    let ((pn, rn, on), (pw, rw, ow)) = (mn.nets(), mw.nets());
    fn batch<B: Backend>(r: &Reference, s: u32, device: &B::Device) -> Tensor<B, 4> {
        Tensor::cat(
            r.photos
                .iter()
                .map(|(img, _)| mtcnn_input(img, s, device))
                .collect(),
            0,
        )
    }
    let (xn, xw) = (
        batch::<N>(&r, 61, &NdArrayDevice::Cpu),
        batch::<W>(&r, 61, &jit_device()),
    );
    let ((bn, cn), (bw, cw)) = (pn.forward(xn), pw.forward(xw));
    close("P-Net boxes", &host(bw), &host(bn), 1e-4);
    close("P-Net face probabilities", &host(cw), &host(cn), 1e-4);
    let (xn, xw) = (
        batch::<N>(&r, 24, &NdArrayDevice::Cpu),
        batch::<W>(&r, 24, &jit_device()),
    );
    let ((bn, cn), (bw, cw)) = (rn.forward(xn), rw.forward(xw));
    close("R-Net boxes", &host(bw), &host(bn), 1e-4);
    close("R-Net face probabilities", &host(cw), &host(cn), 1e-4);
    let (xn, xw) = (
        batch::<N>(&r, 48, &NdArrayDevice::Cpu),
        batch::<W>(&r, 48, &jit_device()),
    );
    let ((bn, ln, cn), (bw, lw, cw)) = (on.forward(xn), ow.forward(xw));
    close("O-Net boxes", &host(bw), &host(bn), 1e-4);
    close("O-Net landmarks", &host(lw), &host(ln), 1e-4);
    close("O-Net face probabilities", &host(cw), &host(cn), 1e-4);
}

#[test]
fn ops_match_ndarray() {
    let _rng = seeded(3);
    use burn::tensor::{Distribution, Int};
    let nd = NdArrayDevice::Cpu;
    let wd = jit_device();
    let a = Tensor::<N, 3>::random([2, 5, 16], Distribution::Normal(0.0, 1.0), &nd);
    let aw = Tensor::<W, 3>::from_data(a.to_data(), &wd);
    close("sin", &host(aw.clone().sin()), &host(a.clone().sin()), 1e-5);
    close("cos", &host(aw.clone().cos()), &host(a.clone().cos()), 1e-5);
    close(
        "gelu",
        &host(face_nets::ops::gelu(aw.clone())),
        &host(face_nets::ops::gelu(a.clone())),
        1e-5,
    );
    close("erf", &host(aw.clone().erf()), &host(a.clone().erf()), 1e-5);
    close(
        "softmax",
        &host(burn::tensor::activation::softmax(aw.clone(), 2)),
        &host(burn::tensor::activation::softmax(a.clone(), 2)),
        1e-5,
    );
    let qkv = Tensor::<N, 3>::random([2, 5, 48], Distribution::Normal(0.0, 1.0), &nd);
    let qkvw = Tensor::<W, 3>::from_data(qkv.to_data(), &wd);
    close(
        "attention",
        &host(face_nets::multi_head_attention(qkvw, 2)),
        &host(face_nets::multi_head_attention(qkv, 2)),
        1e-5,
    );
    let ln = burn::nn::LayerNormConfig::new(16)
        .with_epsilon(1e-6)
        .init::<N>(&nd);
    let lnw = transfer(
        ln.clone(),
        burn::nn::LayerNormConfig::new(16)
            .with_epsilon(1e-6)
            .init::<W>(&wd),
        &wd,
    );
    close(
        "layernorm",
        &host(lnw.forward(aw.clone())),
        &host(ln.forward(a.clone())),
        1e-5,
    );
    let emb = settle(burn::nn::EmbeddingConfig::new(10, 16).init::<N>(&nd));
    let embw = transfer(
        emb.clone(),
        burn::nn::EmbeddingConfig::new(10, 16).init::<W>(&wd),
        &wd,
    );
    let ids = Tensor::<N, 2, Int>::from_data(TensorData::new(vec![0i64, 3, 5, 9, 1, 2], [2, 3]), &nd);
    let idsw = Tensor::<W, 2, Int>::from_data(TensorData::new(vec![0i64, 3, 5, 9, 1, 2], [2, 3]), &wd);
    close(
        "embedding",
        &host(embw.forward(idsw)),
        &host(emb.forward(ids)),
        1e-6,
    );
    let lin = settle(burn::nn::LinearConfig::new(16, 8).init::<N>(&nd));
    let linw = transfer(
        lin.clone(),
        burn::nn::LinearConfig::new(16, 8).init::<W>(&wd),
        &wd,
    );
    close(
        "linear 3d",
        &host(face_nets::ops::linear(&linw, aw.clone())),
        &host(face_nets::ops::linear(&lin, a.clone())),
        1e-5,
    );
    // A convolution with BatchNorm and ReLU (the composed path on the JIT backend), forward and backward.
    type AN = Autodiff<N>;
    type AW = Autodiff<W>;
    let conv = settle(
        burn::nn::conv::Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<AN>(&nd),
    );
    let convw = transfer(
        conv.clone(),
        burn::nn::conv::Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<AW>(&wd),
        &wd,
    );
    let bn = burn::nn::BatchNormConfig::new(4).init::<AN>(&nd);
    let bnw = transfer(bn.clone(), burn::nn::BatchNormConfig::new(4).init::<AW>(&wd), &wd);
    let x = Tensor::<AN, 4>::random([2, 3, 9, 9], Distribution::Normal(0.0, 1.0), &nd);
    let xw = Tensor::<AW, 4>::from_data(x.to_data(), &wd);
    let yn = face_nets::ops::conv2d_fused(&conv, Some(&bn), x, None, face_nets::ops::Activation::Relu);
    let yw = face_nets::ops::conv2d_fused(&convw, Some(&bnw), xw, None, face_nets::ops::Activation::Relu);
    close("conv fwd", &host(yw.clone()), &host(yn.clone()), 1e-5);
    let gn = (yn.clone() * yn).sum().backward();
    let gw = (yw.clone() * yw).sum().backward();
    close(
        "conv weight grad",
        &host(convw.weight.grad(&gw).expect("gradient")),
        &host(conv.weight.grad(&gn).expect("gradient")),
        1e-4,
    );
    close(
        "bn gamma grad",
        &host(bnw.gamma.grad(&gw).expect("gradient")),
        &host(bn.gamma.grad(&gn).expect("gradient")),
        1e-4,
    );
}

#[test]
fn strided_convolution_input_gradients_match_ndarray() {
    let _rng = seeded(4);
    // Burn 0.21's CubeCL convolution gives a wrong input gradient for a strided 1×1 kernel
    // (about 4.4 off here, where every other shape is within 1e-6); face-nets' composed
    // convolution writes that case as a strided slice and a stride-1 convolution.
    use burn::tensor::Distribution;
    type AN = Autodiff<N>;
    type AW = Autodiff<W>;
    let nd = NdArrayDevice::Cpu;
    let wd = jit_device();
    for (stride, size, k, pad) in [
        (1usize, 14usize, 3usize, 1usize),
        (2, 14, 3, 1),
        (2, 14, 1, 0),
        (2, 13, 3, 1),
        (2, 8, 3, 1),
    ] {
        let cfg = || {
            burn::nn::conv::Conv2dConfig::new([4, 6], [k, k])
                .with_stride([stride, stride])
                .with_padding(burn::nn::PaddingConfig2d::Explicit(pad, pad, pad, pad))
        };
        let conv = settle(cfg().init::<AN>(&nd));
        let convw = transfer(conv.clone(), cfg().init::<AW>(&wd), &wd);
        let x0 = Tensor::<N, 4>::random([2, 4, size, size], Distribution::Normal(0.0, 1.0), &nd);
        let xn = Tensor::<AN, 4>::from_data(x0.to_data(), &nd).require_grad();
        let xb = Tensor::<AN, 4>::from_data(x0.to_data(), &nd).require_grad();
        let xw = Tensor::<AW, 4>::from_data(x0.to_data(), &wd).require_grad();
        let yn = face_nets::ops::conv2d(&conv, xn.clone());
        let yb = conv.forward(xb.clone());
        let yw = face_nets::ops::conv2d(&convw, xw.clone());
        let w = |y: Tensor<AN, 4>| y.clone() * y;
        let gn = w(yn).sum().backward();
        let gb = w(yb).sum().backward();
        let gw = (yw.clone() * yw).sum().backward();
        let dn = host(xn.grad(&gn).expect("gradient"));
        let db = host(xb.grad(&gb).expect("gradient"));
        let dw = host(xw.grad(&gw).expect("gradient"));
        close(
            &format!("NdArray fast conv vs Burn's, stride {stride}, {size} px, {k}×{k}: input gradient"),
            &dn,
            &db,
            1e-5,
        );
        close(
            &format!("{JIT} conv vs NdArray, stride {stride}, {size} px, {k}×{k}: input gradient"),
            &dw,
            &db,
            1e-5,
        );
    }
}
