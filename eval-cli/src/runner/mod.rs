//! The batch runner shared by `analyze`, `evaluate` and `compare` (not yet implemented).
