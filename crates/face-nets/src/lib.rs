//! # face-nets
//!
//! Face recognition networks on Burn 0.21, generic over `B: Backend` (NdArray for tests and
//! CPU, CUDA for training): backbones with PyTorch checkpoint import proven by parity tests.
//! Work in progress (issue 4): iResNet-18/34/50/100 so far.
#![warn(missing_docs)]

pub mod backbones;
mod error;
pub mod weights;

pub use backbones::{IResNet, IResNetConfig};
pub use error::{NetsError, Result};
