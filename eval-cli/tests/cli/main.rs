//! The integration tests of eval-cli: one binary (one link of the library), each front end
//! a module, the helpers they share in `util`. `cargo test -p eval-cli --test cli serve::`
//! runs one module's tests.

mod util;

mod amqp;
mod analyze;
mod cache;
mod dist;
mod eval;
mod front_ends;
mod key_eval;
mod loudness;
mod serve;
mod shard;
mod tag;
mod text_fuzz;
mod watch;
#[cfg(unix)]
mod whole_song;
mod ws;
