pub use face_data as data;
pub use face_metrics as metrics;
