//! facekit: face recognition on Burn — metrics, data, networks (see the crates' READMEs).

pub use face_data as data;
pub use face_metrics as metrics;
pub use face_nets as nets;
