//! End-to-end proof on a synthetic world where the "teachers" are a fixed random network:
//! the student learns to agree with them, verification improves, and a killed run resumes
//! bit-identically.

use burn::backend::ndarray::NdArrayDevice;
use burn::module::AutodiffModule;
use face_distill::config::DistillConfig;
use face_distill::{DistillError, FaceSet, Targets, Trainer};
use face_nets::{BackboneConfig, FaceModel, IResNetConfig, NdArrayTrain};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZE: u32 = 32;
const DIM: usize = 16;
const BINS: usize = 8;
const GRID: usize = 4;

/// The fixed random "teacher": per-image standardisation (so it ignores brightness and
/// contrast), 8×8 average pooling, then random linear maps to an embedding, age logits and a
/// gender logit.
struct RandomTeacher {
    w_emb: Vec<f32>,
    w_age: Vec<f32>,
    w_gender: Vec<f32>,
}

const FEATS: usize = 8 * 8 * 3;

impl RandomTeacher {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |n: usize| (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect::<Vec<_>>();
        Self {
            w_emb: draw(FEATS * DIM),
            w_age: draw(FEATS * BINS),
            w_gender: draw(FEATS),
        }
    }

    fn features(img: &RgbImage) -> Vec<f32> {
        let px: Vec<f32> = img.pixels().flat_map(|p| p.0.map(f32::from)).collect();
        let mean = px.iter().sum::<f32>() / px.len() as f32;
        let std = (px.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / px.len() as f32)
            .sqrt()
            .max(1e-3);
        let cell = (SIZE / 8) as usize;
        let mut f = vec![0.0f32; FEATS];
        for (i, p) in img.pixels().enumerate() {
            let (x, y) = (i % SIZE as usize, i / SIZE as usize);
            for c in 0..3 {
                f[((y / cell) * 8 + x / cell) * 3 + c] +=
                    (f32::from(p.0[c]) - mean) / std / (cell * cell) as f32;
            }
        }
        f
    }

    fn targets(&self, images: &[RgbImage]) -> Targets {
        let mut t = Targets {
            dim: DIM,
            embeddings: Vec::new(),
            age_bins: (0..BINS).map(|i| 10.0 * i as f32).collect(),
            age_probs: Vec::new(),
            expected_age: Vec::new(),
            p_male: Vec::new(),
        };
        let lin = |w: &[f32], f: &[f32], out: usize| -> Vec<f32> {
            (0..out)
                .map(|o| {
                    f.iter().enumerate().map(|(i, x)| x * w[i * out + o]).sum::<f32>() / (FEATS as f32).sqrt()
                })
                .collect()
        };
        for img in images {
            let f = Self::features(img);
            let e = lin(&self.w_emb, &f, DIM);
            let n = e.iter().map(|v| v * v).sum::<f32>().sqrt();
            t.embeddings.extend(e.iter().map(|v| v / n));
            let z = lin(&self.w_age, &f, BINS);
            let m = z.iter().copied().fold(f32::MIN, f32::max);
            let ex: Vec<f32> = z.iter().map(|v| ((v - m) * 2.0).exp()).collect();
            let s: f32 = ex.iter().sum();
            let p: Vec<f32> = ex.iter().map(|v| v / s).collect();
            t.expected_age
                .push(p.iter().zip(&t.age_bins).map(|(a, b)| a * b).sum());
            t.age_probs.extend(p);
            let g = lin(&self.w_gender, &f, 1)[0];
            t.p_male.push(1.0 / (1.0 + (-3.0 * g).exp()));
        }
        t
    }
}

/// `ids` identities × `per_id` images: a smooth random colour pattern per identity, under a
/// strong random brightness/contrast change and pixel noise per image.
fn world(ids: usize, per_id: usize, seed: u64, teacher: &RandomTeacher) -> FaceSet {
    let mut pattern_rng = ChaCha8Rng::seed_from_u64(1234);
    let patterns: Vec<Vec<f32>> = (0..ids)
        .map(|_| {
            (0..GRID * GRID * 3)
                .map(|_| pattern_rng.gen_range(40.0f32..215.0))
                .collect()
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut images, mut labels, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for (id, pat) in patterns.iter().enumerate() {
        for k in 0..per_id {
            let contrast = rng.gen_range(0.4f32..1.3);
            let bright = rng.gen_range(-70.0f32..70.0);
            let img = RgbImage::from_fn(SIZE, SIZE, |x, y| {
                let (gx, gy) = (
                    (x as usize * GRID) / SIZE as usize,
                    (y as usize * GRID) / SIZE as usize,
                );
                image::Rgb(std::array::from_fn(|c| {
                    let v = (pat[(gy * GRID + gx) * 3 + c] - 128.0) * contrast
                        + 128.0
                        + bright
                        + rng.gen_range(-12.0f32..12.0);
                    v.clamp(0.0, 255.0) as u8
                }))
            });
            images.push(img);
            labels.push(id as u32);
            names.push(format!("s{seed}-id{id}-{k}"));
        }
    }
    let targets = teacher.targets(&images);
    FaceSet::new(names, images, targets, Some(labels)).unwrap()
}

fn config(epochs: u64) -> DistillConfig {
    let mut c = DistillConfig::default();
    c.student.backbone = BackboneConfig::IResNet(
        IResNetConfig::new([1, 1, 1, 1])
            .with_base_width(8)
            .with_num_features(32)
            .with_input_size(SIZE as usize),
    );
    c.data.batch = 16;
    c.data.augment.crop_scale = (1.0, 1.0);
    c.data.augment.color_jitter = 0.0;
    c.data.augment.grayscale = 0.0;
    c.optim.lr = 3e-3;
    c.optim.warmup_steps = 3;
    c.train.epochs = epochs;
    c.train.checkpoint_every = 2;
    c.train.early_stop_patience = None;
    c.val.p = 4;
    c.val.k = 3;
    c
}

fn bins() -> Vec<f32> {
    (0..BINS).map(|i| 10.0 * i as f32).collect()
}

fn student(c: &DistillConfig) -> FaceModel<NdArrayTrain> {
    c.model_config(DIM, &bins()).init(&NdArrayDevice::Cpu).unwrap()
}

/// A loss history without its timings (which differ from run to run).
fn untimed(rows: &[face_distill::TrainRow]) -> Vec<face_distill::TrainRow> {
    rows.iter()
        .map(|r| face_distill::TrainRow {
            data_seconds: 0.0,
            compute_seconds: 0.0,
            ..*r
        })
        .collect()
}

/// Held by every test that trains or initialises a student: NdArray's RNG is one per process,
/// so a seeded run is reproducible only when no other test draws from it in between (the resume
/// test compares two runs of one seed bit for bit).
fn burn_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn student_learns_the_teachers() {
    let _rng = burn_rng();
    let teacher = RandomTeacher::new(7);
    let train = world(8, 6, 1, &teacher);
    // Ground truth for validation: the teacher's own ages and genders, one face unknown.
    let val = world(8, 3, 2, &teacher);
    let mut age: Vec<Option<f32>> = val.targets().expected_age.iter().map(|a| Some(*a)).collect();
    let mut male: Vec<Option<bool>> = val.targets().p_male.iter().map(|p| Some(*p > 0.5)).collect();
    age[0] = None;
    male[0] = None;
    let val = val
        .with_attributes(face_distill::Attributes { age, male })
        .unwrap();
    let c = config(25);
    let dir = tempfile::tempdir().unwrap();
    let trainer = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], dir.path())
        .unwrap()
        .with_progress(false);
    let out = trainer.fit(student(&c), &train, Some(&val)).unwrap();
    let first = &out.state.val[0];
    let last = out.state.val.last().unwrap();
    eprintln!("untrained: {}\ntrained:   {}", first.summary(), last.summary());
    assert_eq!(out.state.val.len(), 26);
    assert!(
        last.teacher_cosine > first.teacher_cosine + 0.3,
        "{} → {}",
        first.teacher_cosine,
        last.teacher_cosine
    );
    assert!(last.auc > first.auc, "AUC {} → {}", first.auc, last.auc);
    assert!(last.ir_auc.unwrap() < first.ir_auc.unwrap());
    assert!(
        last.age_mae_vs_teacher < 0.7 * first.age_mae_vs_teacher,
        "age MAE {} → {}",
        first.age_mae_vs_teacher,
        last.age_mae_vs_teacher
    );
    // Against labels equal to the teacher's outputs, the label metrics track the teacher ones.
    let vs_labels = last.age_mae_vs_labels.unwrap();
    assert!(
        (vs_labels - last.age_mae_vs_teacher).abs() < 0.2 * last.age_mae_vs_teacher,
        "{vs_labels}"
    );
    assert!(last.gender_accuracy_vs_labels.unwrap() >= 0.9);
    // The run directory holds what the docs promise.
    for f in [
        "config.json",
        "train.csv",
        "val.csv",
        "loss.svg",
        "irauc.svg",
        "student.bin",
        "model.json",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(dir.path().join("train.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + out.state.step as usize);
    // The run folder is a face-nets model folder: it loads without this crate and embeds as
    // the trained student does.
    let (model_config, loaded) =
        face_nets::load_model::<burn::backend::NdArray>(dir.path(), &NdArrayDevice::Cpu).unwrap();
    assert_eq!(model_config, out.model_config);
    assert_eq!(
        (model_config.embedding_dim, model_config.age_bins.len()),
        (DIM, BINS)
    );
    let rows: Vec<usize> = (0..4).collect();
    let pixels =
        face_distill::data::image_batch(&val, &rows, None, &face_data::Normalize::arcface()).unwrap();
    let x = burn::tensor::Tensor::<burn::backend::NdArray, 4>::from_data(
        burn::tensor::TensorData::new(pixels, [4, 3, SIZE as usize, SIZE as usize]),
        &NdArrayDevice::Cpu,
    );
    use burn::module::AutodiffModule;
    let a = face_nets::to_f32_vec(loaded.embed(x.clone())).unwrap();
    let b = face_nets::to_f32_vec(out.student.valid().embed(x)).unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-6, "the saved model embeds differently: {diff}");
}

#[test]
fn killed_run_resumes_bit_identically() {
    let _rng = burn_rng();
    let teacher = RandomTeacher::new(3);
    let train = world(4, 6, 5, &teacher);
    let val = world(4, 2, 6, &teacher);
    let c = config(4); // 24 faces, batch 16 → 1 step per epoch… use batch 8 for 3 steps per epoch
    let mut c = c;
    c.data.batch = 8;
    let init = student(&c);

    let a_dir = tempfile::tempdir().unwrap();
    let a = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], a_dir.path())
        .unwrap()
        .with_progress(false)
        .fit(init.clone(), &train, Some(&val))
        .unwrap();
    assert_eq!(a.state.step, 12);

    // Run B is stopped after 7 steps (mid-epoch 2), then a "kill" loses the newest checkpoint and
    // leaves a half-written staging directory and junk log lines.
    let b_dir = tempfile::tempdir().unwrap();
    let b1 = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], b_dir.path())
        .unwrap()
        .with_progress(false)
        .with_stop_after(Some(7))
        .fit(init.clone(), &train, Some(&val))
        .unwrap();
    assert_eq!(b1.state.step, 7);
    let ckpts = b_dir.path().join("checkpoints");
    std::fs::remove_dir_all(ckpts.join("step-00000007")).unwrap();
    std::fs::create_dir_all(ckpts.join(".staging")).unwrap();
    std::fs::write(ckpts.join(".staging/model.bin"), b"torn").unwrap();
    let mut csv = std::fs::read_to_string(b_dir.path().join("train.csv")).unwrap();
    csv.push_str("999,9,0,0,0,0,0,0,0,0,0\n");
    std::fs::write(b_dir.path().join("train.csv"), csv).unwrap();

    // The resumed run is given a *fresh* student: its weights must come from the checkpoint.
    let b2 = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], b_dir.path())
        .unwrap()
        .with_progress(false)
        .fit(student(&c), &train, Some(&val))
        .unwrap();
    assert!(b2.resumed_from.unwrap().ends_with("step-00000006"));
    assert_eq!(b2.steps_this_call, 6);
    assert_eq!(
        untimed(&b2.state.train),
        untimed(&a.state.train),
        "loss history differs from the uninterrupted run"
    );
    assert_eq!(b2.state.val.len(), a.state.val.len());
    for (x, y) in b2.state.val.iter().zip(&a.state.val) {
        assert_eq!(
            (x.epoch, x.auc, x.ir_auc, x.teacher_cosine),
            (y.epoch, y.auc, y.ir_auc, y.teacher_cosine)
        );
    }
    let csv_a = std::fs::read_to_string(a_dir.path().join("train.csv")).unwrap();
    let csv_b = std::fs::read_to_string(b_dir.path().join("train.csv")).unwrap();
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.rsplitn(3, ',').nth(2).unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&csv_a), strip(&csv_b), "train.csv (timings aside) differs");

    // Resuming with another config or other faces is refused.
    let mut other = c.clone();
    other.optim.lr *= 2.0;
    let err = Trainer::<NdArrayTrain>::new(other, vec![NdArrayDevice::Cpu], b_dir.path())
        .unwrap()
        .with_progress(false)
        .fit(student(&c), &train, Some(&val))
        .unwrap_err();
    assert!(matches!(err, DistillError::Checkpoint { .. }), "{err}");
    let err = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], b_dir.path())
        .unwrap()
        .with_progress(false)
        .fit(student(&c), &val, None)
        .unwrap_err();
    assert!(matches!(err, DistillError::Checkpoint { .. }), "{err}");
}

#[test]
fn two_devices_equal_gradient_accumulation() {
    let _rng = burn_rng();
    // One device accumulating two micro-batches of 4 and two devices splitting a batch of 8
    // see the same faces in the same 4-face groups (BatchNorm statistics included), so the
    // weighted per-device gradients must sum to the accumulated ones.
    let teacher = RandomTeacher::new(11);
    let train = world(4, 4, 8, &teacher);
    let mut c = config(2);
    let init = student(&c);
    let run = |c: &DistillConfig, devices: Vec<NdArrayDevice>| {
        let dir = tempfile::tempdir().unwrap();
        Trainer::<NdArrayTrain>::new(c.clone(), devices, dir.path())
            .unwrap()
            .with_progress(false)
            .fit(init.clone(), &train, None)
            .unwrap()
            .state
            .train
    };
    c.data.batch = 4;
    c.data.accumulate = 2;
    let accumulated = run(&c, vec![NdArrayDevice::Cpu]);
    c.data.batch = 8;
    c.data.accumulate = 1;
    let parallel = run(&c, vec![NdArrayDevice::Cpu, NdArrayDevice::Cpu]);
    assert_eq!(accumulated.len(), 4);
    assert_eq!(accumulated.len(), parallel.len());
    for (a, b) in accumulated.iter().zip(&parallel) {
        assert_eq!(a.faces, b.faces);
        assert!(
            (a.loss - b.loss).abs() < 1e-5 * a.loss.abs(),
            "step {}: {} vs {}",
            a.step,
            a.loss,
            b.loss
        );
    }
    // And the loss moved: the steps did something.
    assert!(accumulated[3].loss < accumulated[0].loss);
}

#[test]
fn two_devices_keep_batchnorm_running_statistics() {
    use burn::module::{AutodiffModule, Module};
    use burn::tensor::{Tensor, TensorData};
    let _rng = burn_rng();
    // With a vanishing learning rate the weights stay put and only the BatchNorm running
    // statistics move, towards the faces' statistics. 8 steps on 2 devices × 4 faces must move
    // them as 8 steps on 1 device × 8 faces do: the same means (the mean of two halves' means),
    // variances that differ only by the spread between the halves. Burn keeps the statistics per
    // thread and a multi-device step computes on new threads; unsynced, they stayed at one
    // update from the initial ones.
    let teacher = RandomTeacher::new(5);
    let set = world(4, 2, 3, &teacher);
    let mut c = config(8);
    c.data.augment.enabled = false;
    c.data.batch = 8;
    c.optim.lr = 1e-12;
    let init = student(&c);
    // A clone of a module shares its running statistics (Burn keeps them behind an `Arc`), so
    // each run starts from a copy of its own, made through the record.
    let copy = |m: &FaceModel<NdArrayTrain>| student(&c).load_record(m.clone().into_record());
    let run = |devices: Vec<NdArrayDevice>| {
        let dir = tempfile::tempdir().unwrap();
        Trainer::<NdArrayTrain>::new(c.clone(), devices, dir.path())
            .unwrap()
            .with_progress(false)
            .fit(copy(&init), &set, None)
            .unwrap()
    };
    let single = run(vec![NdArrayDevice::Cpu]);
    let parallel = run(vec![NdArrayDevice::Cpu, NdArrayDevice::Cpu]);
    assert_eq!((single.state.train.len(), parallel.state.train.len()), (8, 8));
    let pixels =
        face_distill::data::image_batch(&set, &[0, 3, 5], None, &face_data::Normalize::arcface()).unwrap();
    let eval = |m: &FaceModel<NdArrayTrain>| {
        let x = Tensor::from_data(
            TensorData::new(pixels.clone(), [3, 3, SIZE as usize, SIZE as usize]),
            &NdArrayDevice::Cpu,
        );
        let out = m.valid().forward(x);
        let mut v = out.embedding.into_data().to_vec::<f32>().unwrap();
        v.extend(out.age_logits.into_data().to_vec::<f32>().unwrap());
        v
    };
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let (e1, e2, e0) = (eval(&single.student), eval(&parallel.student), eval(&init));
    let (apart, moved) = (max_diff(&e1, &e2), max_diff(&e1, &e0));
    eprintln!("eval-mode outputs: 2 devices vs 1 differ by {apart:.3e}; training moved them by {moved:.3e}");
    assert!(moved > 1e-2, "the statistics did not move: {moved}");
    assert!(
        apart < 0.25 * moved,
        "2 devices vs 1: {apart} apart, moved {moved}"
    );
}

#[test]
fn early_stopping_ends_a_run_without_progress() {
    let _rng = burn_rng();
    let teacher = RandomTeacher::new(5);
    let train = world(3, 4, 3, &teacher);
    let val = world(3, 2, 4, &teacher);
    let mut c = config(10);
    c.data.batch = 12;
    // No irAUC gain can beat a min_delta of 10: the first epoch sets the best, two more
    // without improvement exhaust the patience.
    c.train.early_stop_patience = Some(2);
    c.train.early_stop_min_delta = 10.0;
    let dir = tempfile::tempdir().unwrap();
    let out = Trainer::<NdArrayTrain>::new(c, vec![NdArrayDevice::Cpu], dir.path())
        .unwrap()
        .with_progress(false)
        .fit(student(&config(1)), &train, Some(&val))
        .unwrap();
    assert!(out.state.stopped_early);
    assert_eq!(out.state.epoch, 3);
    assert_eq!(out.state.best_epoch, Some(1));
    assert_eq!(out.state.val.len(), 4);
}

#[test]
fn bad_inputs_are_refused() {
    let _rng = burn_rng();
    let teacher = RandomTeacher::new(1);
    let train = world(2, 2, 1, &teacher);
    let c = config(1);
    let dir = tempfile::tempdir().unwrap();
    // A student with another embedding width than the teacher.
    let wrong: FaceModel<NdArrayTrain> = c
        .model_config(DIM + 1, &bins())
        .init(&NdArrayDevice::Cpu)
        .unwrap();
    let err = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], dir.path())
        .unwrap()
        .fit(wrong, &train, None)
        .unwrap_err();
    assert!(
        matches!(&err, DistillError::Data(m) if m.contains("17-d")),
        "{err}"
    );
    // Validation without labels.
    let unlabelled = FaceSet::new(
        train.ids().to_vec(),
        (0..train.len()).map(|i| train.image(i).clone()).collect(),
        train.targets().clone(),
        None,
    )
    .unwrap();
    let err = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], dir.path())
        .unwrap()
        .fit(student(&c), &train, Some(&unlabelled))
        .unwrap_err();
    assert!(
        matches!(&err, DistillError::Data(m) if m.contains("labels")),
        "{err}"
    );
    // Config errors name their key.
    let mut bad = c.clone();
    bad.optim.lr = -1.0;
    assert!(
        matches!(Trainer::<NdArrayTrain>::new(bad, vec![NdArrayDevice::Cpu], dir.path()), Err(DistillError::Config { key, .. }) if key == "optim.lr")
    );
    assert!(matches!(
        Trainer::<NdArrayTrain>::new(c, vec![], dir.path()),
        Err(DistillError::Device(_))
    ));
}

#[test]
fn config_overrides_and_round_trip() {
    let c = DistillConfig::default();
    let o = c
        .with_overrides(&[
            "optim.lr=0.01".into(),
            "loss.mode=identity_only".into(),
            "student.backbone.base_width=32".into(),
        ])
        .unwrap();
    assert_eq!(o.optim.lr, 0.01);
    assert_eq!(o.loss.effective_weights(), (1.0, 0.0, 0.0, 0.0));
    match &o.student.backbone {
        BackboneConfig::IResNet(b) => assert_eq!(b.base_width, 32),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(c.with_overrides(&["optim.lrr=1".into()]), Err(e) if e.to_string().contains("optim.lrr"))
    );
    assert!(c.with_overrides(&["optim.lr=fast".into()]).is_err());
    assert!(c.with_overrides(&["optim".into()]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    o.write(&p).unwrap();
    assert_eq!(DistillConfig::read(&p).unwrap(), o);
    std::fs::write(&p, r#"{"optim": {"lr": 0.1, "momentum": 0.9}}"#).unwrap();
    assert!(matches!(DistillConfig::read(&p), Err(e) if e.to_string().contains("momentum")));
    // A misspelt key deep inside the backbone (a Burn-derived config, which serde alone would
    // let through) is refused with its full path.
    std::fs::write(
        &p,
        r#"{"student": {"backbone": {"arch": "iresnet", "layers": [2, 2, 2, 2], "base_widht": 64}}}"#,
    )
    .unwrap();
    let err = DistillConfig::read(&p).unwrap_err().to_string();
    assert!(err.contains("student.backbone.base_widht"), "{err}");
    assert!(
        err.contains("did you mean `student.backbone.base_width`"),
        "{err}"
    );
    // The crop size comes from the config, without building the network.
    assert_eq!(c.student.backbone.input_size(), 112);
    let resnet = BackboneConfig::ResNet(face_nets::ResNetConfig::resnet50());
    assert_eq!(resnet.input_size(), 224);
    let inception = BackboneConfig::InceptionResnetV1(face_nets::InceptionResnetV1Config::new());
    assert_eq!(inception.input_size(), 160);
    // Partial files take defaults.
    std::fs::write(&p, r#"{"train": {"epochs": 3}}"#).unwrap();
    let partial = DistillConfig::read(&p).unwrap();
    assert_eq!(partial.train.epochs, 3);
    assert_eq!(partial.optim, DistillConfig::default().optim);
}

#[test]
fn student_init_starts_from_a_pretrained_backbone_folder() {
    let _rng = burn_rng();
    use burn::tensor::{Distribution, Tensor};
    use face_nets::{Backbone, TokenInput, TokenLayout, TokenVitConfig};
    type Nd = burn::backend::NdArray;
    let dev = NdArrayDevice::Cpu;
    // A pretrained backbone folder, as `facekit pretrain` writes one: a token ViT on 32-px faces.
    let vit = BackboneConfig::TokenVit(TokenVitConfig {
        embed_dim: 16,
        depth: 1,
        num_heads: 2,
        mlp_ratio: 2,
        patch_size: 8,
        max_slots: 16,
        coord_freqs: 2,
        input: Some(TokenInput {
            image_size: SIZE as usize,
            layout: TokenLayout::Dense { n: 4 },
        }),
    });
    let folder = tempfile::tempdir().unwrap();
    let pretrained = vit.init::<Nd>(&dev).unwrap();
    face_nets::save_backbone(folder.path(), &vit, &pretrained).unwrap();

    let mut c = config(1);
    c.student.init = Some(folder.path().to_owned());
    let resolved = c.resolve_init().unwrap();
    assert_eq!(resolved.student.backbone, vit);
    let teacher = RandomTeacher::new(4);
    let train = world(2, 4, 7, &teacher);
    let student = face_distill::pipeline::new_student::<NdArrayTrain>(&resolved, &train, &dev).unwrap();
    let x = Tensor::<Nd, 4>::random(
        [2, 3, SIZE as usize, SIZE as usize],
        Distribution::Normal(0.0, 1.0),
        &dev,
    );
    use burn::module::AutodiffModule;
    let a = face_nets::to_f32_vec(pretrained.features(x.clone())).unwrap();
    let b = face_nets::to_f32_vec(student.valid().backbone.features(x)).unwrap();
    assert_eq!(
        a, b,
        "the student's backbone does not start from the pretrained weights"
    );
    // It trains like any student.
    let dir = tempfile::tempdir().unwrap();
    let out = Trainer::<NdArrayTrain>::new(resolved, vec![dev], dir.path())
        .unwrap()
        .with_progress(false)
        .fit(student, &train, None)
        .unwrap();
    assert!(out.state.train.iter().all(|r| r.loss.is_finite()));
    // A folder without backbone.json is named.
    let empty = tempfile::tempdir().unwrap();
    c.student.init = Some(empty.path().to_owned());
    let err = c.resolve_init().unwrap_err().to_string();
    assert!(err.contains("backbone.json"), "{err}");
}

/// Writes `set` as an insightface RecordIO set (PNG payloads, header record 0, labels) into
/// `dir`, and its targets as a cache file beside it, leaving out the faces in `skip` (as a cache
/// leaves out faces without a detection). Returns the cache path.
fn on_disk(set: &FaceSet, dir: &std::path::Path, skip: &[usize]) -> std::path::PathBuf {
    use face_data::formats::recordio::{pack, RecordIoWriter};
    use face_teachers::{CacheMeta, CacheRow, CacheWriter, InputRecipe, CACHE_FORMAT};
    let n = set.len();
    std::fs::create_dir_all(dir).unwrap();
    let mut w = RecordIoWriter::create(&dir.join("train.rec"), &dir.join("train.idx")).unwrap();
    w.write(0, &pack(0, &[(n + 1) as f32, 0.0], &[])).unwrap();
    let labels = set.labels().unwrap();
    for (i, label) in labels.iter().enumerate() {
        let mut png = Vec::new();
        set.image(i)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        w.write(i as u64 + 1, &pack(i as u64 + 1, &[*label as f32], &png))
            .unwrap();
    }
    w.finish().unwrap();
    let t = set.targets();
    let meta = CacheMeta {
        format: CACHE_FORMAT,
        identity_version: "random".into(),
        age_gender_version: "random".into(),
        identity_recipe: InputRecipe::face_model(SIZE),
        age_recipe: InputRecipe::face_model(SIZE),
        gender_recipe: InputRecipe::face_model(SIZE),
        dim: DIM,
        age_bins: bins(),
        landmarks: "aligned".into(),
    };
    let kept: Vec<usize> = (0..n).filter(|i| !skip.contains(i)).collect();
    let ids: Vec<String> = kept.iter().map(|&i| format!("rec:{i}:{}", labels[i])).collect();
    let skipped: Vec<(String, String)> = skip
        .iter()
        .map(|&i| (format!("rec:{i}:{}", labels[i]), "no face detected".into()))
        .collect();
    let template = face_data::FaceTemplate::arcface_scaled(SIZE).unwrap();
    let path = dir.join("targets.safetensors");
    let mut c = CacheWriter::create(&path, &meta, &ids, &skipped).unwrap();
    for &i in &kept {
        c.push(&CacheRow {
            embedding: t.embeddings[i * DIM..(i + 1) * DIM].to_vec(),
            age_probs: t.age_probs[i * BINS..(i + 1) * BINS].to_vec(),
            expected_age: t.expected_age[i],
            p_male: t.p_male[i],
            landmarks: std::array::from_fn(|j| template.points[j]),
            det_score: 1.0,
        })
        .unwrap();
    }
    c.finish().unwrap();
    path
}

/// Faces streamed from a RecordIO set and the cache file give the crops and targets of the
/// same faces held in memory, train to the same weights bit for bit (with gradient
/// accumulation, so the read-ahead crosses micro-batches and steps), and resume across the two;
/// a corrupt or truncated record is an error naming it, never a panic or a wrong face.
#[test]
fn streamed_faces_train_like_faces_in_memory() {
    use face_distill::config::Streaming;
    use face_distill::{StreamedFaces, TrainFaces};
    let _rng = burn_rng();
    let teacher = RandomTeacher::new(11);
    let world_set = world(4, 7, 9, &teacher);
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let cache_path = on_disk(&world_set, &rec, &[3, 17]);
    let source = || Box::new(face_data::RecordIoFaces::open(&rec).unwrap());
    let cache = face_teachers::TargetCache::read(&cache_path).unwrap();
    let memory = FaceSet::from_cache(&cache, source().as_ref(), SIZE, None).unwrap();
    let streamed = StreamedFaces::open(&cache_path, source(), SIZE).unwrap();
    assert_eq!((memory.len(), TrainFaces::len(&streamed)), (26, 26));
    assert_eq!(memory.fingerprint(), streamed.fingerprint());
    let rows: Vec<usize> = (0..26).rev().collect();
    for &r in &rows {
        assert_eq!(memory.crop(r).unwrap(), streamed.crop(r).unwrap(), "crop {r}");
    }
    assert_eq!(
        memory.targets_of(&rows).unwrap(),
        streamed.targets_of(&rows).unwrap()
    );
    // The faces left out of the cache are left out of both (row 3 is the world's face 4).
    assert_eq!(memory.ids()[3], "rec:4:0");
    assert!(streamed.crop(26).unwrap_err().to_string().contains("out of 26"));
    // `auto` streams above its limit only.
    assert!(
        !Streaming::Auto.streams(Streaming::AUTO_LIMIT) && Streaming::Auto.streams(Streaming::AUTO_LIMIT + 1)
    );

    let mut c = config(2);
    c.data.batch = 4;
    c.data.accumulate = 2;
    c.data.augment.crop_scale = (0.8, 1.0);
    let init = student(&c);
    let train = |set: &dyn TrainFaces, dir: &std::path::Path, stop: Option<u64>| {
        Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], dir)
            .unwrap()
            .with_progress(false)
            .with_stop_after(stop)
            .fit(init.clone(), set, None)
            .unwrap()
    };
    let (a_dir, b_dir, m_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = train(&memory, a_dir.path(), None);
    let b = train(&streamed, b_dir.path(), None);

    assert_eq!(a.state.step, 6);
    assert_eq!(untimed(&a.state.train), untimed(&b.state.train));
    let probe =
        face_distill::data::image_batch(&memory, &[0, 5, 9], None, &face_data::Normalize::arcface()).unwrap();
    let out = |m: &FaceModel<NdArrayTrain>| -> Vec<f32> {
        use burn::module::AutodiffModule;
        let x = burn::tensor::Tensor::<burn::backend::NdArray, 4>::from_data(
            burn::tensor::TensorData::new(probe.clone(), [3, 3, SIZE as usize, SIZE as usize]),
            &NdArrayDevice::Cpu,
        );
        m.valid().forward(x).embedding.into_data().to_vec().unwrap()
    };
    assert_eq!(
        out(&a.student),
        out(&b.student),
        "streamed training differs from in-memory"
    );
    // Streamed for 4 steps, then resumed in memory (data.stream may change on resume).
    let m1 = train(&streamed, m_dir.path(), Some(4));
    assert_eq!(m1.state.step, 4);
    let m2 = train(&memory, m_dir.path(), None);
    assert_eq!(untimed(&m2.state.train), untimed(&a.state.train));
    assert_eq!(out(&m2.student), out(&a.student));

    // A record whose payload is not an image: the step fails naming the record's key.
    let rec_bytes = std::fs::read(rec.join("train.rec")).unwrap();
    let idx = std::fs::read_to_string(rec.join("train.idx")).unwrap();
    let index = face_data::formats::recordio::parse_index(&idx, &rec.join("train.idx")).unwrap();
    let offset = index[6].1 as usize;
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let mut corrupt = rec_bytes.clone();
    for b in &mut corrupt[offset + 8 + 28..offset + 8 + 60] {
        *b = 0xAB;
    }
    std::fs::write(bad.join("train.rec"), &corrupt).unwrap();
    std::fs::write(bad.join("train.idx"), &idx).unwrap();
    let s = StreamedFaces::open(
        &cache_path,
        Box::new(face_data::RecordIoFaces::open(&bad).unwrap()),
        SIZE,
    )
    .unwrap();
    let e = s.crop(4).unwrap_err().to_string();
    assert!(e.contains("train.rec") && e.contains("#6"), "{e}");
    let e = Trainer::<NdArrayTrain>::new(
        c.clone(),
        vec![NdArrayDevice::Cpu],
        tempfile::tempdir().unwrap().path(),
    )
    .unwrap()
    .with_progress(false)
    .fit(init.clone(), &s, None)
    .unwrap_err()
    .to_string();
    assert!(e.contains("#6"), "{e}");
    // A truncated file: an index entry past the cut is refused at open, naming its key; a
    // record cut short is an error naming its key when read.
    std::fs::write(bad.join("train.rec"), &rec_bytes[..offset + 40]).unwrap();
    std::fs::write(bad.join("train.idx"), &idx).unwrap();
    let e = face_data::RecordIoFaces::open(&bad).unwrap_err().to_string();
    assert!(e.contains("key 7 points past the end"), "{e}");
    let last = index[index.len() - 1].1 as usize;
    std::fs::write(bad.join("train.rec"), &rec_bytes[..last + 40]).unwrap();
    let r = face_data::RecordIoFaces::open(&bad).unwrap();
    use face_data::FaceSource;
    let e = r.image(27).unwrap_err().to_string();
    assert!(e.contains("key 28") && e.contains("past the end"), "{e}");
    // A cache built from another source is refused at open, naming the id.
    let other = dir.path().join("other");
    on_disk(&world(2, 3, 4, &teacher), &other, &[]);
    let e = StreamedFaces::open(
        &cache_path,
        Box::new(face_data::RecordIoFaces::open(&other).unwrap()),
        SIZE,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is not an image of"), "{e}");
}

/// Set for the two child processes of `two_processes_equal_two_devices`: `ID:COUNT:ORCH:LISTEN:DIR`.
const PEER_ENV: &str = "FACE_DISTILL_TEST_PEER";

/// The faces and configuration of the multi-process test: 16 faces, batches of 8, 2 steps.
fn peer_world() -> (FaceSet, DistillConfig) {
    let train = world(4, 4, 8, &RandomTeacher::new(11));
    let mut c = config(1);
    c.data.batch = 8;
    c.train.checkpoint_every = 1;
    (train, c)
}

/// The trainable parameters' values and the others' (BatchNorm running statistics), in
/// visiting order.
fn split_values(m: &FaceModel<NdArrayTrain>) -> (Vec<f32>, Vec<f32>) {
    struct Split(Vec<f32>, Vec<f32>);
    impl burn::module::ModuleVisitor<NdArrayTrain> for Split {
        fn visit_float<const D: usize>(
            &mut self,
            p: &burn::module::Param<burn::tensor::Tensor<NdArrayTrain, D>>,
        ) {
            let t = p.val();
            let trainable = t.is_require_grad();
            let v = t.into_data().to_vec::<f32>().unwrap();
            if trainable {
                self.0.extend(v);
            } else {
                self.1.extend(v);
            }
        }
    }
    // Folds each thread's running-statistic updates in first.
    let _ = m.valid();
    let mut split = Split(Vec::new(), Vec::new());
    burn::module::Module::visit(m, &mut split);
    (split.0, split.1)
}

/// The student every process starts from: seeded by `train.seed`.
fn seeded_student(c: &DistillConfig, train: &FaceSet) -> FaceModel<NdArrayTrain> {
    face_distill::pipeline::new_student::<NdArrayTrain>(c, train, &NdArrayDevice::Cpu).unwrap()
}

/// One peer of `two_processes_equal_two_devices`, run in a child process of this test binary
/// (ignored otherwise): trains the shared world into its own run folder.
#[test]
#[ignore = "a child process of two_processes_equal_two_devices"]
fn peer_process() {
    let spec = std::env::var(PEER_ENV).expect("run by two_processes_equal_two_devices");
    let f: Vec<&str> = spec.splitn(5, ':').collect();
    let peers = face_distill::PeersConfig {
        id: f[0].parse().unwrap(),
        count: f[1].parse().unwrap(),
        orchestrator: format!("127.0.0.1:{}", f[2]),
        listen: format!("127.0.0.1:{}", f[3]),
        timeout: std::time::Duration::from_secs(60),
    };
    let (train, c) = peer_world();
    let _rng = burn_rng();
    let peers = face_distill::Peers::join(peers, NdArrayDevice::Cpu).unwrap();
    let out = Trainer::<NdArrayTrain>::new(c.clone(), vec![NdArrayDevice::Cpu], f[4])
        .unwrap()
        .with_progress(false)
        .with_peers(peers)
        .unwrap()
        .fit(seeded_student(&c, &train), &train, None)
        .unwrap();
    assert_eq!(out.state.step, 2);
}

/// Two processes on 127.0.0.1, each with one device and half of every batch, summing their
/// gradients over burn-collective, end with the same model (weights and BatchNorm statistics,
/// bit for bit), whose trainable weights are those of one process with two devices (to 1e-6;
/// the same two partial sums, added once) and of one device accumulating the same two groups
/// of 4 (to 1e-5: the same BatchNorm groups, another summation order). One device with one
/// batch of 8 differs by BatchNorm's statistics over 8 faces instead of 4 (as PyTorch DDP
/// without SyncBatchNorm). Their checkpoints and losses agree.
#[test]
fn two_processes_equal_two_devices() {
    let dir = tempfile::tempdir().unwrap();
    let ports = face_distill::PeersConfig::loopback(2, std::time::Duration::from_secs(60)).unwrap();
    let port = |a: &str| a.rsplit_once(':').unwrap().1.to_owned();
    let orch = port(&ports[0].orchestrator);
    let (a, b) = (port(&ports[0].listen), port(&ports[1].listen));
    let spawn = |id: u32, listen: String| {
        let run = dir.path().join(format!("peer{id}"));
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "peer_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PEER_ENV, format!("{id}:2:{orch}:{listen}:{}", run.display()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (child, run)
    };
    let peers = [spawn(0, a), spawn(1, b)];
    // Bounded: both must end within 4 minutes, or they are killed and the test fails.
    let start = std::time::Instant::now();
    let mut runs = Vec::new();
    for (mut child, run) in peers {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "peer at {} failed:\n{}\n{}",
                    run.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
            if start.elapsed().as_secs() > 240 {
                let _ = child.kill();
                panic!("peer at {} did not finish in 4 minutes", run.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        runs.push(run);
    }
    let device = NdArrayDevice::Cpu;
    let load = |run: &std::path::Path| {
        let (_, m) = face_nets::load_model::<NdArrayTrain>(run, &device).unwrap();
        split_values(&m)
    };
    let ((p0, s0), (p1, s1)) = (load(&runs[0]), load(&runs[1]));
    assert_eq!(p0, p1, "the peers' weights differ");
    assert_eq!(s0, s1, "the peers' BatchNorm statistics differ");
    assert!(!s0.is_empty());
    let states: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            serde_json::from_str(
                &std::fs::read_to_string(r.join("checkpoints/step-00000002/state.json")).unwrap(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(states[0]["step"], 2);
    assert_eq!(states[0]["train"][1]["loss"], states[1]["train"][1]["loss"]);

    let (train, c) = peer_world();
    let _rng = burn_rng();
    let single = |devices: Vec<NdArrayDevice>, batch: usize, accumulate: usize| {
        let run = tempfile::tempdir().unwrap();
        let mut c = c.clone();
        c.data.batch = batch;
        c.data.accumulate = accumulate;
        let out = Trainer::<NdArrayTrain>::new(c.clone(), devices, run.path())
            .unwrap()
            .with_progress(false)
            .fit(seeded_student(&c, &train), &train, None)
            .unwrap();
        (split_values(&out.student).0, out.state.train)
    };
    let (two, two_rows) = single(vec![device, device], 8, 1);
    let (accumulated, _) = single(vec![device], 4, 2);
    let (whole, _) = single(vec![device], 8, 1);
    let max_diff = |x: &[f32], y: &[f32]| {
        assert_eq!(x.len(), y.len());
        x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
    };
    let (d2, da, dw) = (
        max_diff(&p0, &two),
        max_diff(&p0, &accumulated),
        max_diff(&p0, &whole),
    );
    eprintln!(
        "max |peers − 2 devices| = {d2:.2e}, |peers − 1 device, 2 micro-batches of 4| = {da:.2e}, \
         |peers − 1 device, one batch of 8| = {dw:.2e}"
    );
    assert!(d2 <= 1e-6, "2 processes vs 2 devices: {d2}");
    // One device accumulating the same two groups of 4: the same BatchNorm groups, the same
    // gradients summed in another order.
    assert!(da <= 1e-5, "2 processes vs 1 device accumulating: {da}");
    // One batch of 8 normalises over all 8 faces (BatchNorm), as data parallelism without
    // synchronised BatchNorm does not: a real difference, bounded loosely.
    assert!(dw > 0.0 && dw <= 5e-2, "2 processes vs 1 device, one batch: {dw}");
    // Step times (data + compute, as the trainer logs them), for docs/BENCHMARKS.md.
    let secs = |rows: &[serde_json::Value]| -> f64 {
        rows.iter()
            .map(|r| r["data_seconds"].as_f64().unwrap() + r["compute_seconds"].as_f64().unwrap())
            .sum::<f64>()
            / rows.len() as f64
    };
    let peer_s = secs(states[0]["train"].as_array().unwrap());
    let two_s = two_rows
        .iter()
        .map(|r| r.data_seconds + r.compute_seconds)
        .sum::<f64>()
        / two_rows.len() as f64;
    eprintln!("mean step: 2 processes {peer_s:.3} s, 1 process with 2 devices {two_s:.3} s");
    let loss = states[0]["train"][1]["loss"].as_f64().unwrap();
    assert!(
        (loss - two_rows[1].loss).abs() <= 1e-6 * loss.abs(),
        "{loss} vs {}",
        two_rows[1].loss
    );
}
