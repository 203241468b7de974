//! Dataset file formats and protocols. Each submodule documents the layout it reads and where
//! that layout is defined. Caption corpora (LAION-Face style) are read by
//! [`crate::captions`].

pub mod celeba;
pub mod folders;
pub mod ijb;
pub mod lfw;
pub mod recordio;
