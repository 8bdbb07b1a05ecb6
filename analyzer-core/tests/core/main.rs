//! The integration tests of analyzer-core, one binary (`cargo test -p analyzer-core --test
//! core`; a module's name filters: `--test core fuzz::`): bad input and its typed errors,
//! every format and tag, the seeded fuzz run, the golden tempi, short loops, loudness, the
//! pulse test (noise against disguised beats), and sampled analysis.

mod compound;
mod errors;
mod formats;
mod fuzz;
mod golden;
mod key;
mod level;
mod loops;
mod loudness;
mod pulse;
mod sampled;
