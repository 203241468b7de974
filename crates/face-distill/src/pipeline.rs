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
use burn::tensor::backend::AutodiffBackend;
use face_detect::{Mtcnn, MtcnnConfig};
use face_teachers::{
    build_cache, BuildOptions, BuildReport, CacheItem, DlibAgeGenderTeacher, FrFeatureTeacher,
    LandmarkSource, TargetCache,
};

use crate::config::DistillConfig;
use crate::data::FaceSet;
use crate::error::{DistillError, Result};
use crate::eval::{predict, Predictions};
use crate::report::{write_report, FinalReport};
use crate::runtime::{check_cuda, CandleTrain, DeviceChoice, NdArrayTrain};
use crate::student::Student;
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
    let items = CacheItem::from_folder(images)?;
    let mut report = CutReport {
        images: items.len(),
        unreadable: Vec::new(),
        faces: 0,
        face_labels: HashMap::new(),
        seconds: 0.0,
    };
    for item in &items {
        let img = match face_data::read_rgb(&item.path) {
            Ok(i) => i,
            Err(e) => {
                report.unreadable.push((item.id.clone(), e.to_string()));
                continue;
            }
        };
        let stem = item.id.replace(['/', '\\'], "_");
        let dets = mtcnn.detect(&img);
        for (k, d) in dets.iter().enumerate() {
            let [x0, y0, x1, y1] = d.bbox;
            let side = 2.0 * (x1 - x0).max(y1 - y0);
            let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
            let left = (cx - side / 2.0).max(0.0) as u32;
            let top = (cy - side / 2.0).max(0.0) as u32;
            let w = (side as u32).min(img.width().saturating_sub(left)).max(1);
            let h = (side as u32).min(img.height().saturating_sub(top)).max(1);
            let crop = image::imageops::crop_imm(&img, left, top, w, h).to_image();
            let path = faces_dir.join(format!("{stem}__{k}.png"));
            crop.save(&path).map_err(|e| DistillError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
        }
        report.faces += dets.len();
        if let (Some(name), false) = (image_labels.get(&item.id), dets.is_empty()) {
            report.face_labels.insert(format!("{stem}__0.png"), name.clone());
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs both bundled teachers (NdArray, CPU) over the crops in `faces_dir` into the target
/// cache `cache_path` (MTCNN finds the face again inside each crop); resumable.
///
/// # Errors
/// Missing models, or as [`build_cache`].
pub fn build_targets(
    models: &Path,
    faces_dir: &Path,
    cache_path: &Path,
    progress: bool,
) -> Result<(TargetCache, Vec<CacheItem>, BuildReport)> {
    let cpu = Default::default();
    let mtcnn = Mtcnn::<NdArray>::load(models, MtcnnConfig::default(), &cpu)?;
    let identity = FrFeatureTeacher::<NdArray>::load(models, &cpu)?;
    let age_gender = DlibAgeGenderTeacher::<NdArray>::load(models, &cpu)?;
    let items = CacheItem::from_folder(faces_dir)?;
    let options = BuildOptions {
        progress,
        ..BuildOptions::default()
    };
    let report = build_cache(
        &identity,
        &age_gender,
        LandmarkSource::Detect(&mtcnn),
        &items,
        cache_path,
        &options,
        &cpu,
    )?;
    Ok((TargetCache::read(cache_path)?, items, report))
}

/// The MTCNN detector on NdArray (for [`cut_faces`]).
///
/// # Errors
/// Missing or corrupt weights.
pub fn load_mtcnn(models: &Path) -> Result<Mtcnn<NdArray>> {
    Ok(Mtcnn::<NdArray>::load(
        models,
        MtcnnConfig::default(),
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
/// were also trained on.
///
/// # Errors
/// CUDA requested where it is unavailable, or as [`Trainer::fit`] and [`write_report`].
pub fn distill(
    config: &DistillConfig,
    device: &DeviceChoice,
    train: &FaceSet,
    val: Option<&FaceSet>,
    run_dir: &Path,
    on_training_images: bool,
) -> Result<DistillRun> {
    match device {
        DeviceChoice::NdArray => run::<NdArrayTrain>(
            config,
            vec![Default::default()],
            train,
            val,
            run_dir,
            on_training_images,
        ),
        DeviceChoice::Candle => run::<CandleTrain>(
            config,
            vec![Default::default()],
            train,
            val,
            run_dir,
            on_training_images,
        ),
        DeviceChoice::Cuda(ids) => {
            check_cuda(ids)?;
            #[cfg(feature = "cuda")]
            {
                let devices = ids
                    .iter()
                    .map(|&index| burn::backend::cuda::CudaDevice { index })
                    .collect();
                run::<crate::runtime::CudaTrain>(config, devices, train, val, run_dir, on_training_images)
            }
            #[cfg(not(feature = "cuda"))]
            unreachable!("check_cuda refuses CUDA in a build without the feature")
        }
    }
}

fn run<B: AutodiffBackend>(
    config: &DistillConfig,
    devices: Vec<B::Device>,
    train: &FaceSet,
    val: Option<&FaceSet>,
    run_dir: &Path,
    on_training_images: bool,
) -> Result<DistillRun> {
    let t = train.targets();
    // Same seed, same backend: same initial student (then the same run).
    B::seed(&devices[0], config.train.seed);
    let student = Student::<B>::new(&config.student.backbone, t.dim, t.age_bins.len(), &devices[0])?;
    let out = Trainer::<B>::new(config.clone(), devices.clone(), run_dir)?.fit(student, train, val)?;
    let (predictions, report) = match val {
        Some(v) => {
            let p = predict(&out.student.valid(), v, &devices[0]);
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
        B::seed(&device, seed);
        let t = train.targets();
        let student = Student::<B>::new(&config.student.backbone, t.dim, t.age_bins.len(), &device)?;
        let mut c = config.clone();
        c.train.seed = seed;
        let out = Trainer::<B>::new(c, vec![device.clone()], run_dir)?
            .with_progress(false)
            .fit(student, train, None)?;
        Ok(predict(&out.student.valid(), test, &device))
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

/// A distilled student loaded from a run directory for inference on the CPU (NdArray).
#[derive(Debug)]
pub struct TrainedStudent {
    /// The network, in inference mode.
    pub student: Student<NdArray>,
    /// The run's configuration.
    pub config: DistillConfig,
    /// Input side in pixels.
    pub size: u32,
    /// The alignment template of its crops (ArcFace, scaled to `size`).
    pub template: face_data::FaceTemplate,
}

/// Embedding width of a student distilled from the bundled identity teacher (`fr_feature`).
pub const STUDENT_EMBEDDING_DIM: usize = 512;

/// Loads `run_dir/config.json` and `run_dir/student.bin` (a student distilled from the bundled
/// teachers: [`STUDENT_EMBEDDING_DIM`]-d identity embedding, 81 age bins).
///
/// # Errors
/// A missing or unreadable file, or weights of another architecture.
pub fn load_student(run_dir: &Path) -> Result<TrainedStudent> {
    let config = DistillConfig::read(&run_dir.join("config.json"))?;
    let device = Default::default();
    let student = Student::<NdArray>::new(
        &config.student.backbone,
        STUDENT_EMBEDDING_DIM,
        face_teachers::AGE_V1_BINS.len(),
        &device,
    )?;
    let student = crate::checkpoint::load_module(student, &run_dir.join("student.bin"), &device)?;
    let size = config.student.backbone.input_size()? as u32;
    let template = crate::data::student_template(size)?;
    Ok(TrainedStudent {
        student,
        config,
        size,
        template,
    })
}

impl TrainedStudent {
    /// Embeddings (L2-normalised rows) of crops aligned to [`TrainedStudent::template`].
    ///
    /// # Errors
    /// A crop of another size.
    pub fn embed(&self, crops: &[&image::RgbImage]) -> Result<Vec<f32>> {
        let s = self.size as usize;
        let normalize = face_data::Normalize::arcface();
        let mut pixels = Vec::with_capacity(crops.len() * 3 * s * s);
        for (i, c) in crops.iter().enumerate() {
            if c.dimensions() != (self.size, self.size) {
                return Err(DistillError::Data(format!(
                    "crop {i} is {}×{}, the student takes {s}×{s}",
                    c.width(),
                    c.height()
                )));
            }
            pixels.extend(face_data::Chw::from_rgb(c, &normalize).data);
        }
        let x = burn::tensor::Tensor::<NdArray, 4>::from_data(
            burn::tensor::TensorData::new(pixels, [crops.len(), 3, s, s]),
            &Default::default(),
        );
        let e = face_nets::l2_normalize(self.student.forward(x).embedding, 1e-12);
        e.into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| DistillError::Data(format!("embedding tensor: {e:?}")))
    }
}
