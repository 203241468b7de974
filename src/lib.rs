pub use face_metrics as metrics;
