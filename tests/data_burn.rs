//! face-data's Burn adapters (feature `burn`, enabled by this facade) on the NdArray backend:
//! datasets whose failed items travel to the batcher and are reported, never ending an epoch.

use std::path::{Path, PathBuf};

use face_data::augment::RandomHorizontalFlip;
use face_data::{AlignSpec, FaceJob, ImageSource, Normalize, Transform};

fn obama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/faces/obama.jpg")
}

/// The hand-marked landmarks of data/faces/obama.jpg (data/faces/landmarks.json).
fn obama_landmarks() -> Vec<[f32; 2]> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/faces/landmarks.json");
    let all: std::collections::HashMap<String, Vec<[f32; 2]>> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("landmarks.json"))
            .expect("landmarks.json");
    all["obama.jpg"].clone()
}

use burn::backend::NdArray;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use face_data::burn_adapters::{AlignedFaceDataset, FaceBatcher, RecordSetDataset};
use face_data::formats::recordio::InsightFaceRecordSet;

#[test]
fn aligned_dataset_and_batcher_keep_failures_visible() {
    let jobs = vec![
        (
            FaceJob {
                source: ImageSource::File(obama()),
                landmarks: obama_landmarks(),
            },
            7,
        ),
        (
            FaceJob {
                source: ImageSource::File("/nonexistent/x.jpg".into()),
                landmarks: obama_landmarks(),
            },
            8,
        ),
        (
            FaceJob {
                source: ImageSource::File(obama()),
                landmarks: obama_landmarks(),
            },
            9,
        ),
    ];
    let ds = AlignedFaceDataset::new(jobs, AlignSpec::arcface_112().unwrap());
    assert_eq!(ds.len(), 3);
    let items: Vec<_> = (0..3).map(|i| ds.get(i).unwrap()).collect();
    assert!(items[1].is_err());
    assert!(ds.get(3).is_none());
    let batch = Batcher::<NdArray, _, _>::batch(
        &FaceBatcher {
            height: 112,
            width: 112,
        },
        items,
        &Default::default(),
    );
    assert_eq!(batch.images.dims(), [2, 3, 112, 112]);
    assert_eq!(batch.indices, [0, 2]);
    assert_eq!(batch.failures.len(), 1);
    assert!(batch.failures[0].message.contains("/nonexistent/x.jpg"));
    let labels: Vec<i64> = batch.labels.into_data().convert::<i64>().to_vec().unwrap();
    assert_eq!(labels, [7, 9]);
    let first: Vec<f32> = batch.images.into_data().to_vec().unwrap();
    let direct = face_data::pipeline::prepare(
        &FaceJob {
            source: ImageSource::File(obama()),
            landmarks: obama_landmarks(),
        },
        &AlignSpec::arcface_112().unwrap(),
    )
    .unwrap();
    assert_eq!(first[..direct.len()], direct[..]);
}

#[test]
fn recordio_dataset_batches_with_seeded_augmentation() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/face-data/tests/fixtures/recordio");
    let aug: Box<dyn Transform> = Box::new(RandomHorizontalFlip { p: 0.5 });
    let ds = RecordSetDataset::new(
        InsightFaceRecordSet::open(&dir).unwrap(),
        Normalize::arcface(),
        Some(aug),
        3,
    );
    assert_eq!(ds.len(), 6);
    let items: Vec<_> = (0..6).map(|i| ds.get(i).unwrap()).collect();
    let again: Vec<_> = (0..6).map(|i| ds.get(i).unwrap()).collect();
    assert_eq!(items, again, "same epoch, same augmentation");
    let batch = Batcher::<NdArray, _, _>::batch(
        &FaceBatcher {
            height: 10,
            width: 12,
        },
        items,
        &Default::default(),
    );
    assert_eq!(batch.images.dims(), [6, 3, 10, 12]);
    let labels: Vec<i64> = batch.labels.into_data().convert::<i64>().to_vec().unwrap();
    assert_eq!(labels, [0, 0, 1, 1, 1, 2]);
    // A wrong batcher size turns every item into a reported failure, not a panic.
    let items: Vec<_> = (0..6).map(|i| ds.get(i).unwrap()).collect();
    let batch = Batcher::<NdArray, _, _>::batch(
        &FaceBatcher {
            height: 112,
            width: 112,
        },
        items,
        &Default::default(),
    );
    assert_eq!(batch.images.dims()[0], 0);
    assert_eq!(batch.failures.len(), 6);
}
