//! `facekit distill`: teach, then distil a student from the two teachers (resumable). Photos
//! are detected and cut first; aligned crops (an insightface RecordIO set, a folder, a list)
//! are taught and trained as they are, streamed from disk when there are many
//! (`data.stream`).

use std::path::PathBuf;

use clap::Args;
use face_distill::config::DistillConfig;
use face_distill::data::{FaceSet, TrainFaces};
use face_nets::DeviceChoice;
use serde_json::json;

use crate::engine::Engine;
use crate::error::{bad, Classify, Res};
use crate::output::Outcome;

/// Options of `facekit distill`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["images", "aligned"])))]
pub struct DistillArgs {
    /// Folder of photos (unlabelled): faces are detected and cut into OUT/faces/.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// ArcFace-aligned square crops, used as they are: an insightface RecordIO folder
    /// (train.rec + train.idx), a folder of images, or a list file of image paths.
    #[arg(long, value_name = "REC_DIR|FOLDER|LIST")]
    pub aligned: Option<PathBuf>,
    /// Output folder (faces/, targets.safetensors, run/).
    #[arg(long)]
    pub out: PathBuf,
    /// Identities of some images (`image,identity` CSV) for the validation report.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// A configuration file (JSON, as written into run/config.json); default: the built-in one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key, e.g. `--set train.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Start the student's backbone from a `facekit pretrain` folder (config key `student.init`;
    /// the student then has the pretrained backbone's architecture).
    #[arg(long, value_name = "PRETRAIN_DIR")]
    pub init: Option<PathBuf>,
    /// The teachers (flags replace the config's `teachers` keys).
    #[command(flatten)]
    pub teachers: crate::args::TeacherArgs,
    /// cpu (NdArray), candle, cuda or cuda:0,1. The teachers run on NdArray for either CPU
    /// choice, on the first GPU for CUDA.
    #[arg(long, default_value = "cpu", value_parser = crate::args::device)]
    pub device: DeviceChoice,
    /// Train across this many processes (one per machine, or several on one): each computes
    /// its share of every batch, and the gradients are summed over all of them (burn-collective).
    #[arg(long, requires_all = ["peer_id", "orchestrator", "listen"])]
    pub peers: Option<u32>,
    /// This process's index among the peers, 0 to N-1; peer 0 hosts the orchestrators.
    #[arg(long, requires = "peers")]
    pub peer_id: Option<u32>,
    /// The orchestrators' HOST:PORT: peer 0 listens on this port and the next one, every peer
    /// connects to both.
    #[arg(long, value_name = "HOST:PORT", requires = "peers")]
    pub orchestrator: Option<String>,
    /// This peer's HOST:PORT for the gradient traffic: the address the other peers reach it at
    /// (it listens on that port on every interface).
    #[arg(long, value_name = "HOST:PORT", requires = "peers")]
    pub listen: Option<String>,
    /// Seconds to wait for the other peers (joining, each step) before stopping with an error.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0, requires = "peers")]
    pub peer_timeout: f64,
}

impl DistillArgs {
    /// The multi-process settings, when `--peers` is given.
    fn peers(&self) -> Res<Option<face_distill::PeersConfig>> {
        let (Some(count), Some(id), Some(orchestrator), Some(listen)) =
            (self.peers, self.peer_id, &self.orchestrator, &self.listen)
        else {
            return Ok(None);
        };
        if !(self.peer_timeout.is_finite() && self.peer_timeout > 0.0) {
            return Err(bad(format!(
                "--peer-timeout {}: expected seconds above 0",
                self.peer_timeout
            )));
        }
        let config = face_distill::PeersConfig {
            count,
            id,
            orchestrator: orchestrator.clone(),
            listen: listen.clone(),
            timeout: std::time::Duration::from_secs_f64(self.peer_timeout),
        };
        config.validate().input()?;
        Ok(Some(config))
    }
}

/// Runs `facekit distill`.
pub fn run(engine: &Engine, a: DistillArgs, quiet: bool) -> Res<Outcome> {
    let peers = a.peers()?;
    let base = match &a.config {
        Some(p) => DistillConfig::read(p).input()?,
        None => DistillConfig::default(),
    };
    let mut config = base.with_overrides(&a.overrides).input()?;
    if let Some(init) = &a.init {
        config.student.init = Some(init.clone());
    }
    config.teachers = a.teachers.apply(&config.teachers);
    let config = config.resolve_init().input()?;
    config.validate().input()?;
    // Before cutting and teaching, which take a while and run on the same device.
    if let DeviceChoice::Cuda(ids) = &a.device {
        face_nets::check_cuda(ids).failure()?;
    }
    let cache_path = a.out.join("targets.safetensors");
    let size = config.student.backbone.input_size() as u32;
    let (train, val): (Box<dyn TrainFaces>, Option<FaceSet>) = match (&a.images, &a.aligned) {
        (Some(images), _) => {
            if !images.is_dir() {
                return Err(bad(format!("{}: not a folder", images.display())));
            }
            let image_labels = match &a.labels {
                Some(p) => face_data::read_identity_labels(p).input()?,
                None => Default::default(),
            };
            let faces = a.out.join("faces");
            let cut = face_distill::pipeline::cut_faces(engine.mtcnn()?, images, &image_labels, &faces)
                .failure()?;
            face_distill::pipeline::build_targets(
                &engine.models,
                &config.teachers,
                &faces,
                &cache_path,
                !quiet,
                &a.device,
            )
            .input()?;
            let source = Box::new(face_data::FileFaces::folder(&faces).input()?);
            let val = if cut.face_labels.is_empty() {
                None
            } else {
                let cache = face_teachers::TargetCache::read(&cache_path).input()?;
                Some(FaceSet::from_cache(&cache, source.as_ref(), size, Some(&cut.face_labels)).input()?)
            };
            let train = face_distill::pipeline::training_faces(&cache_path, source, size, config.data.stream)
                .input()?;
            (train, val)
        }
        (None, Some(aligned)) => {
            if a.labels.is_some() {
                return Err(bad("--labels goes with --images (photos), not --aligned"));
            }
            let source = face_data::open_source(aligned, true).input()?;
            std::fs::create_dir_all(&a.out).map_err(|e| bad(format!("{}: {e}", a.out.display())))?;
            let options = face_teachers::BuildOptions {
                progress: !quiet,
                ..Default::default()
            };
            face_distill::pipeline::teach_source(
                &engine.models,
                &config.teachers,
                source.as_ref(),
                &cache_path,
                &options,
                &a.device,
            )
            .input()?;
            let train = face_distill::pipeline::training_faces(&cache_path, source, size, config.data.stream)
                .input()?;
            (train, None)
        }
        (None, None) => return Err(bad("give --images or --aligned")),
    };
    let run_dir = a.out.join("run");
    // burn-collective 0.21 prints its connection attempts on stdout (`println!`, two lines per
    // step with the re-registration): while the peers train, stdout points at /dev/null, so that
    // `--json` prints one JSON document and the progress line on stderr stays readable. Every
    // failure it would show is an error of ours, bounded by --peer-timeout.
    let redirect = peers.as_ref().map(|_| SilentStdout::new());
    let run = face_distill::pipeline::distill(
        &config,
        &a.device,
        train.as_ref(),
        val.as_ref(),
        &run_dir,
        true,
        peers.as_ref(),
    )
    .failure();
    drop(redirect);
    let run = run?;
    let mut human = format!(
        "{} training faces, {} steps this call (resumed from {}) → {}\n",
        train.len(),
        run.steps_this_call,
        run.resumed_from
            .as_ref()
            .map_or("scratch".to_owned(), |p| p.display().to_string()),
        run_dir.display()
    );
    if let Some(r) = &run.report {
        human.push_str(&r.table());
    }
    let summary = json!({
        "command": "distill", "faces": train.len(), "streamed": config.data.stream.streams(train.len()), "labelled": val.as_ref().map_or(0, |v| v.len()),
        "steps_this_call": run.steps_this_call, "run": run_dir, "report": run.report,
        "backbone": config.student.backbone.arch(), "init": config.student.init,
        "peers": peers.as_ref().map(|p| json!({ "count": p.count, "id": p.id })),
    });
    Ok(Outcome::ok(human, summary))
}

/// Points the process's stdout at /dev/null until dropped (Unix; elsewhere it does nothing).
struct SilentStdout(Option<i32>);

impl SilentStdout {
    fn new() -> Self {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            // SAFETY: plain descriptor calls on 1, which stays open for the process's life, and
            // on `null`, open until the end of this block; the duplicate of 1 is owned here and
            // closed on drop.
            unsafe {
                let saved = libc::dup(1);
                if saved >= 0 && libc::dup2(null.as_raw_fd(), 1) >= 0 {
                    return Self(Some(saved));
                }
                if saved >= 0 {
                    libc::close(saved);
                }
            }
        }
        Self(None)
    }
}

impl Drop for SilentStdout {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        if let Some(saved) = self.0.take() {
            // SAFETY: `saved` is the descriptor duplicated in `new`, still open.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}
