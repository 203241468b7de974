//! One module per command, each with its own typed `Args` and a `run`.

pub mod align;
pub mod detect;
pub mod distill;
pub mod embed;
pub mod eval;
pub mod export;
pub mod lexicon;
pub mod oversample;
pub mod pretrain;
pub mod search;
pub mod teach;
pub mod verify;
