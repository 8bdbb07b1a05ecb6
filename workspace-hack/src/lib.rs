//! No code: this crate exists for its `Cargo.toml`, which pins the union of the features that
//! the workspace's commands ask of shared dependencies (see the comment there for why).
