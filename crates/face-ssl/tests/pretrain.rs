//! A tiny LAFS run on the bundled real faces (CPU, seconds): the loss falls, the monitors show
//! no collapse, the run saves and loads, and the 1-shot protocol and ArcFace fine-tune run.

mod common;

use burn::backend::{Autodiff, NdArray};
use face_ssl::fewshot::transfer;
use face_ssl::{
    arcface_finetune, embed, load_backbone, one_shot_eval, Face, FineTuneConfig, OneShotSplit,
    PretrainConfig, Pretrainer, Tokenizer, ViewBuilder,
};

type B = NdArray<f32>;
type T = Autodiff<B>;

#[test]
fn tiny_lafs_run_learns_without_collapse() {
    let bundled = common::bundled_faces();
    let faces: Vec<Face> = bundled.iter().map(|b| b.face.clone()).collect();
    let config = PretrainConfig::tiny(Tokenizer::Landmarks);
    let trainer = Pretrainer::<T>::new(config.clone(), Default::default()).unwrap();
    let mut seen = Vec::new();
    let run = trainer
        .fit(&faces, |row| {
            seen.push(row.epoch);
            true
        })
        .unwrap();
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    let h = &run.history;
    for r in h {
        eprintln!(
            "epoch {} loss {:.4} H {:.3} marginal {:.3} KL {:.4} std·√d {:.3} lr {:.2e} m {:.4} ({:.1} img/s)",
            r.epoch, r.monitors.loss, r.monitors.teacher_entropy, r.monitors.marginal_entropy, r.monitors.kl,
            r.monitors.std_ratio, r.lr, r.momentum, r.images_per_second
        );
        assert!(r.monitors.loss.is_finite() && r.monitors.kl >= -1e-4);
        assert_eq!(r.collapse, None, "epoch {}: {:?}", r.epoch, r.collapse);
        assert!(r.monitors.teacher_entropy > 0.0 && r.monitors.teacher_entropy < r.monitors.max_entropy);
    }
    let first = h[0].monitors.loss;
    let last = h[h.len() - 2..].iter().map(|r| r.monitors.loss).sum::<f64>() / 2.0;
    assert!(last < 0.7 * first, "loss did not fall: {first:.4} → {last:.4}");
    assert_eq!(h.last().unwrap().steps, 10 * 4);

    // Save, load, and embed the same way.
    let dir = tempfile::tempdir().unwrap();
    run.save(dir.path()).unwrap();
    for f in [
        "config.json",
        "backbone.bin",
        "head.bin",
        "history.json",
        "monitors.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let svg = std::fs::read_to_string(dir.path().join("monitors.svg")).unwrap();
    assert!(svg.contains("teacher entropy") && svg.contains("KL"));
    let dev = Default::default();
    let (loaded_config, backbone) = load_backbone::<B>(dir.path(), &dev).unwrap();
    assert_eq!(loaded_config, config);
    let views = ViewBuilder::new(config.views.clone()).unwrap();
    let a = embed(&run.teacher.backbone, &views, &faces[..4], 4, &dev).unwrap();
    let b = embed(&backbone, &views, &faces[..4], 2, &dev).unwrap();
    assert_eq!(a, b, "the loaded backbone embeds differently");
    assert!(a
        .iter()
        .all(|e| (e.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4));

    // A corrupt model file is named.
    std::fs::write(dir.path().join("backbone.bin"), b"not a model").unwrap();
    let err = load_backbone::<B>(dir.path(), &dev).unwrap_err().to_string();
    assert!(err.contains("backbone.bin"), "{err}");

    // The 1-shot protocol on the labelled faces, then an ArcFace fine-tune on the shots.
    let labelled: Vec<(&Face, String)> = bundled
        .iter()
        .filter_map(|b| b.identity.clone().map(|id| (&b.face, id)))
        .collect();
    let ids: Vec<String> = labelled.iter().map(|(_, id)| id.clone()).collect();
    let lf: Vec<Face> = labelled.iter().map(|(f, _)| (*f).clone()).collect();
    let emb = embed(&run.teacher.backbone, &views, &lf, 8, &dev).unwrap();
    let before = one_shot_eval(&emb, &ids).unwrap();
    assert_eq!((before.identities, before.probes), (4, 4));
    assert!((0.0..=1.0).contains(&before.rank1) && before.rank5 == 1.0);
    assert!(before.verification.auc.is_finite());

    let split = OneShotSplit::new(&ids);
    let shots: Vec<Face> = split.gallery.iter().map(|&i| lf[i].clone()).collect();
    let tunable = transfer(&run.teacher.backbone, config.vit.init::<T>(&dev).unwrap(), &dev).unwrap();
    let tune = FineTuneConfig {
        steps: 12,
        lr: 1e-3,
        views_per_shot: 2,
        ..FineTuneConfig::default()
    };
    let (tuned, losses) = arcface_finetune(tunable, &views, &shots, &tune, &dev).unwrap();
    eprintln!("fine-tune losses {losses:?}");
    assert_eq!(losses.len(), 12);
    let head = losses[..3].iter().sum::<f64>();
    let tail = losses[losses.len() - 3..].iter().sum::<f64>();
    assert!(tail < head, "ArcFace loss did not fall: {losses:?}");
    let after = one_shot_eval(&embed(&tuned, &views, &lf, 8, &dev).unwrap(), &ids).unwrap();
    eprintln!(
        "1-shot before: rank-1 {:.2} AUC {:.3}; after fine-tune: rank-1 {:.2} AUC {:.3}",
        before.rank1, before.verification.auc, after.rank1, after.verification.auc
    );
    assert!(after.verification.auc.is_finite());
}

#[test]
fn collapse_is_reported() {
    // A teacher that follows the student too closely (EMA momentum 0.9 instead of 0.99) lets
    // every image settle on one prototype within a few epochs; the monitors must say so.
    let faces: Vec<Face> = common::bundled_faces().into_iter().map(|b| b.face).collect();
    let mut config = PretrainConfig::tiny(Tokenizer::Landmarks);
    config.optim.epochs = 4;
    config.dino.momentum_teacher = 0.9;
    let run = Pretrainer::<T>::new(config, Default::default())
        .unwrap()
        .fit(&faces, |_| true)
        .unwrap();
    let last = run.history.last().unwrap();
    eprintln!("{:?}", last.monitors);
    assert_eq!(run.history[0].collapse, None);
    assert_eq!(last.collapse, Some(face_ssl::Collapse::OnePrototype));
    assert!(last.monitors.marginal_entropy < 0.05 * last.monitors.max_entropy);
}

#[test]
fn tiny_dino_grid_run_and_bad_input() {
    let faces: Vec<Face> = common::bundled_faces()
        .into_iter()
        .take(8)
        .map(|b| b.face)
        .collect();
    let mut config = PretrainConfig::tiny(Tokenizer::Grid);
    config.optim.epochs = 2;
    config.optim.batch_size = 4;
    let trainer = Pretrainer::<T>::new(config.clone(), Default::default()).unwrap();
    // Stopping early through the callback.
    let run = trainer.fit(&faces, |row| row.epoch < 1).unwrap();
    assert_eq!(run.history.len(), 1);
    assert!(run.history[0].monitors.loss.is_finite());
    // Too few faces, and a bad config.
    assert!(trainer.fit(&faces[..1], |_| true).is_err());
    config.dino.teacher_temp = 0.0;
    assert!(Pretrainer::<T>::new(config, Default::default()).is_err());
    // The 1-shot protocol needs two identities and a probe.
    let e = vec![vec![1.0f32, 0.0]; 2];
    assert!(one_shot_eval(&e, &["a".into(), "b".into()]).is_err());
    assert!(one_shot_eval(&e, &["a".into()]).is_err());
}
