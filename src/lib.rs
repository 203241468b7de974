//! facekit: face recognition on Burn — file output and configs, metrics, data, search,
//! evaluation protocols, networks,
//! detection, teachers, distillation, self-supervised pretraining
//! (see the crates' READMEs).

pub use face_data as data;
pub use face_detect as detect;
pub use face_distill as distill;
pub use face_eval as eval;
pub use face_io as io;
pub use face_metrics as metrics;
pub use face_nets as nets;
pub use face_search as search;
pub use face_ssl as ssl;
pub use face_teachers as teachers;
