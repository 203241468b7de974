//! The end-to-end job with concrete backends, for programs (the quickstart, the CLI): images →
//! MTCNN → face crops → both teachers → target cache → distilled student → report.
//!
//! The functions here are not generic: the Burn code is instantiated once, in this crate,
//! instead of in every program that runs it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::NdArray;
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use face_data::{FaceSource, FileFaces};
use face_detect::{Mtcnn, MtcnnConfig};
use face_nets::{CandleTrain, DeviceChoice, FaceModel, InferJob, NdArrayTrain, TrainJob};
use face_teachers::{build_cache, BuildOptions, BuildReport, LandmarkSource, TargetCache};

use crate::config::{DistillConfig, Streaming, TeachersConfig};
use crate::data::{FaceSet, StreamedFaces, TrainFaces};
use crate::error::{DistillError, Result};
use crate::eval::{predict, Predictions};
use crate::peers::{Peers, PeersConfig};
use crate::report::{write_report, FinalReport};
use crate::trainer::{TrainState, Trainer};

/// What [`cut_faces`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct CutReport {
    /// Images read.
    pub images: usize,
    /// Images that could not be read (file, reason).
    pub unreadable: Vec<(String, String)>,
    /// Face crops written.
    pub faces: usize,
    /// Identity of each face file that has one (the largest face of a labelled image).
    pub face_labels: HashMap<String, String>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Detects every face of every image under `images` and writes it, with a margin of one face
/// size on each side (so both teachers' crops fit), to `faces_dir/<image id>__<k>.png` (`k` = 0
/// for the largest face). `image_labels` maps image ids (paths relative to `images`) to
/// identities; the largest face of a labelled image inherits its label.
///
/// # Errors
/// An unreadable folder or an unwritable output.
pub fn cut_faces(
    mtcnn: &Mtcnn<NdArray>,
    images: &Path,
    image_labels: &HashMap<String, String>,
    faces_dir: &Path,
) -> Result<CutReport> {
    let t0 = Instant::now();
    std::fs::create_dir_all(faces_dir).map_err(DistillError::io(faces_dir))?;
    let items = face_data::list_images(images)?;
    let mut face_labels = HashMap::new();
    let scan = mtcnn.scan_images(
        items.as_slice(),
        image_labels,
        0.0,
        || {},
        |f| -> Result<()> {
            let img = f.photo;
            let stem = f.image_id.replace(['/', '\\'], "_");
            let [x0, y0, x1, y1] = f.detection.bbox;
            let side = 2.0 * (x1 - x0).max(y1 - y0);
            let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
            let left = (cx - side / 2.0).max(0.0) as u32;
            let top = (cy - side / 2.0).max(0.0) as u32;
            let w = (side as u32).min(img.width().saturating_sub(left)).max(1);
            let h = (side as u32).min(img.height().saturating_sub(top)).max(1);
            let crop = image::imageops::crop_imm(img, left, top, w, h).to_image();
            let name = format!("{stem}__{}.png", f.rank);
            let mut png = Vec::new();
            crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| DistillError::Data(format!("{name}: cannot encode: {e}")))?;
            face_io::write_atomic(&faces_dir.join(&name), &png)?;
            if let Some(label) = f.label {
                face_labels.insert(name, label.to_owned());
            }
            Ok(())
        },
    )?;
    Ok(CutReport {
        images: scan.images,
        unreadable: scan.unreadable,
        faces: scan.faces,
        face_labels,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Runs both teachers of `teachers` (the bundled ones by default) over the crops in `faces_dir`
/// into the target cache `cache_path` (MTCNN finds the face again inside each crop) on `device`
/// (see [`teach_source`]); resumable.
///
/// # Errors
/// Missing models, a bad teacher spec, or as [`build_cache`].
pub fn build_targets(
    models: &Path,
    teachers: &TeachersConfig,
    faces_dir: &Path,
    cache_path: &Path,
    progress: bool,
    device: &DeviceChoice,
) -> Result<(TargetCache, FileFaces, BuildReport)> {
    let items = FileFaces::folder(faces_dir)?;
    let options = BuildOptions {
        progress,
        ..BuildOptions::default()
    };
    let report = teach_source(models, teachers, &items, cache_path, &options, device)?;
    Ok((TargetCache::read(cache_path)?, items, report))
}

/// Runs both teachers of `teachers` over every image of `source` into the target cache
/// `cache_path`, resumable, in memory independent of the number of images. Aligned sources
/// (RecordIO sets, folders of ArcFace crops) take the template's landmarks; others are detected
/// by MTCNN (with the padded retry for faces that fill their frame).
///
/// The teachers (and that MTCNN) run on `device`: either CPU choice runs them on NdArray, the
/// CPU backend of the teachers' parity tests; `cuda` runs them on the first GPU of the list
/// (targets are made once, on one device).
///
/// # Errors
/// CUDA requested where it is unavailable, missing models, a bad teacher spec, or as
/// [`build_cache`].
pub fn teach_source(
    models: &Path,
    teachers: &TeachersConfig,
    source: &dyn FaceSource,
    cache_path: &Path,
    options: &BuildOptions,
    device: &DeviceChoice,
) -> Result<BuildReport> {
    struct Teach<'a> {
        models: &'a Path,
        teachers: &'a TeachersConfig,
        source: &'a dyn FaceSource,
        cache_path: &'a Path,
        options: &'a BuildOptions,
    }
    impl InferJob for Teach<'_> {
        type Output = Result<BuildReport>;
        fn run<B: Backend>(self, device: B::Device) -> Result<BuildReport> {
            teach_on::<B>(
                self.models,
                self.teachers,
                self.source,
                self.cache_path,
                self.options,
                &device,
            )
        }
    }
    device.infer(Teach {
        models,
        teachers,
        source,
        cache_path,
        options,
    })?
}

/// [`teach_source`] on the backend `B`.
fn teach_on<B: burn::tensor::backend::Backend>(
    models: &Path,
    teachers: &TeachersConfig,
    source: &dyn FaceSource,
    cache_path: &Path,
    options: &BuildOptions,
    device: &B::Device,
) -> Result<BuildReport> {
    let identity = teachers.identity::<B>(models, device)?;
    let age_gender = teachers.age_gender::<B>(models, device)?;
    let mtcnn;
    let landmarks = if source.aligned() {
        LandmarkSource::Aligned
    } else {
        mtcnn = Mtcnn::<B>::load(models, MtcnnConfig::with_tight_crops(), device)?;
        LandmarkSource::Detect(&mtcnn)
    };
    Ok(build_cache(
        &identity,
        &age_gender,
        landmarks,
        source,
        cache_path,
        options,
        device,
    )?)
}

/// The training faces of a cache built from `source`, for `size` px crops: in memory or
/// streamed from disk as `stream` says for their number.
///
/// # Errors
/// An unreadable cache, or as [`FaceSet::from_cache`] and [`StreamedFaces::open`].
pub fn training_faces(
    cache_path: &Path,
    source: Box<dyn FaceSource>,
    size: u32,
    stream: Streaming,
) -> Result<Box<dyn TrainFaces>> {
    let rows = face_teachers::CacheFile::open(cache_path)?.len();
    if stream.streams(rows) {
        return Ok(Box::new(StreamedFaces::open(cache_path, source, size)?));
    }
    let cache = TargetCache::read(cache_path)?;
    Ok(Box::new(FaceSet::from_cache(
        &cache,
        source.as_ref(),
        size,
        None,
    )?))
}

/// The MTCNN detector on NdArray (for [`cut_faces`]), with the padded retry for faces that
/// fill their frame ([`MtcnnConfig::with_tight_crops`]), as the facekit program detects.
///
/// # Errors
/// Missing or corrupt weights.
pub fn load_mtcnn(models: &Path) -> Result<Mtcnn<NdArray>> {
    Ok(Mtcnn::<NdArray>::load(
        models,
        MtcnnConfig::with_tight_crops(),
        &Default::default(),
    )?)
}

/// A finished distillation run.
#[derive(Debug, Clone)]
pub struct DistillRun {
    /// The loop's state and history.
    pub state: TrainState,
    /// Steps done by this call.
    pub steps_this_call: u64,
    /// The checkpoint it resumed from.
    pub resumed_from: Option<PathBuf>,
    /// The trained student's outputs on the labelled faces (when given).
    pub predictions: Option<Predictions>,
    /// The report (when labelled faces were given).
    pub report: Option<FinalReport>,
}

/// Distils a student on `train` (validating and reporting on `val` when given) with the
/// backend `device`, into `run_dir`. `on_training_images` tells the report whether `val` faces
/// were also trained on. `student.init` is resolved first ([`DistillConfig::resolve_init`]).
/// With `peers`, this process is one of a multi-process run ([`Trainer::with_peers`]).
///
/// # Errors
/// CUDA requested where it is unavailable, peers that do not join or agree, or as
/// [`Trainer::fit`] and [`write_report`].
pub fn distill(
    config: &DistillConfig,
    device: &DeviceChoice,
    train: &dyn TrainFaces,
    val: Option<&FaceSet>,
    run_dir: &Path,
    on_training_images: bool,
    peers: Option<&PeersConfig>,
) -> Result<DistillRun> {
    let config = &config.resolve_init()?;
    struct Distil<'a> {
        config: &'a DistillConfig,
        train: &'a dyn TrainFaces,
        val: Option<&'a FaceSet>,
        run_dir: &'a Path,
        on_training_images: bool,
        peers: Option<&'a PeersConfig>,
    }
    impl TrainJob for Distil<'_> {
        type Output = Result<DistillRun>;
        fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<DistillRun> {
            run::<B>(
                self.config,
                devices,
                self.train,
                self.val,
                self.run_dir,
                self.on_training_images,
                self.peers,
            )
        }
    }
    device.train(Distil {
        config,
        train,
        val,
        run_dir,
        on_training_images,
        peers,
    })?
}

/// A fresh student for `config` whose heads fit the targets of `train`: seeded by
/// `train.seed` (same seed, same backend: same initial student), its backbone loaded from
/// `student.init` when set.
///
/// # Errors
/// An invalid configuration, or a pretrained backbone that does not load.
pub fn new_student<B: AutodiffBackend>(
    config: &DistillConfig,
    train: &dyn TrainFaces,
    device: &B::Device,
) -> Result<FaceModel<B>> {
    B::seed(device, config.train.seed);
    let mut student = config
        .model_config(train.dim(), train.age_bins())
        .init::<B>(device)?;
    if let Some(dir) = &config.student.init {
        let path = dir.join(face_nets::model::files::BACKBONE_WEIGHTS);
        student.backbone = student.backbone.load_weights(&path, device)?;
    }
    Ok(student)
}

fn run<B: AutodiffBackend>(
    config: &DistillConfig,
    devices: Vec<B::Device>,
    train: &dyn TrainFaces,
    val: Option<&FaceSet>,
    run_dir: &Path,
    on_training_images: bool,
    peers: Option<&PeersConfig>,
) -> Result<DistillRun> {
    let student = new_student::<B>(config, train, &devices[0])?;
    let mut trainer = Trainer::<B>::new(config.clone(), devices.clone(), run_dir)?;
    if let Some(p) = peers {
        trainer = trainer.with_peers(Peers::join(p.clone(), devices[0].clone())?)?;
    }
    let out = trainer.fit(student, train, val)?;
    let (predictions, report) = match val {
        Some(v) => {
            let p = predict(&out.student.valid(), v, &devices[0])?;
            let r = write_report(run_dir, config, v, &p, &out.state, on_training_images)?;
            (Some(p), Some(r))
        }
        None => (None, None),
    };
    Ok(DistillRun {
        state: out.state,
        steps_this_call: out.steps_this_call,
        resumed_from: out.resumed_from,
        predictions,
        report,
    })
}

/// Trains a fresh student (seeded by `seed`) on `train` and predicts on `test` — one cell of
/// an ablation. The run directory is replaced.
///
/// # Errors
/// As [`distill`].
pub fn train_and_predict(
    config: &DistillConfig,
    device: &DeviceChoice,
    train: &FaceSet,
    test: &FaceSet,
    run_dir: &Path,
    seed: u64,
) -> Result<Predictions> {
    fn go<B: AutodiffBackend>(
        config: &DistillConfig,
        device: B::Device,
        train: &FaceSet,
        test: &FaceSet,
        run_dir: &Path,
        seed: u64,
    ) -> Result<Predictions> {
        let mut c = config.clone();
        c.train.seed = seed;
        let student = new_student::<B>(&c, train, &device)?;
        let out = Trainer::<B>::new(c, vec![device.clone()], run_dir)?
            .with_progress(false)
            .fit(student, train, None)?;
        predict(&out.student.valid(), test, &device)
    }
    if run_dir.exists() {
        std::fs::remove_dir_all(run_dir).map_err(DistillError::io(run_dir))?;
    }
    match device {
        DeviceChoice::NdArray => go::<NdArrayTrain>(config, Default::default(), train, test, run_dir, seed),
        DeviceChoice::Candle => go::<CandleTrain>(config, Default::default(), train, test, run_dir, seed),
        DeviceChoice::Cuda(_) => Err(DistillError::Device("ablations run on the CPU backends".into())),
    }
}
