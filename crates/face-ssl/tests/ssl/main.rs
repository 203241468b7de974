//! face-ssl's tests in one binary (Burn's CPU kernels compile once per test binary):
//!
//! - `reference`: DINO's pieces against a numpy reference;
//! - `views`: multi-crop views, the LAFS augmentations, the token ViT as a backbone;
//! - `pretrain`: tiny LAFS / DINO runs, collapse monitors, the 1-shot protocol, step-exact resume.

mod common;
mod pretrain;
mod reference;
mod views;
