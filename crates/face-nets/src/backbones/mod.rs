//! Backbones: one file per family, each with its config, presets and checkpoint key table.

pub mod iresnet;

pub use iresnet::{IResNet, IResNetConfig};
