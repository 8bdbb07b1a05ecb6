//! The `--cache DIR`, `--force` and `--verify` flags of the commands that analyse through
//! the result cache (`analyze`, `serve`), declared once so that they mean one thing.

use std::path::PathBuf;

use super::{CacheError, Rescan, ResultCache};

/// The result cache a command analyses through, and how it rescans.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CacheArgs {
    /// Keep rows in DIR/results.redb by file content and settings, and take a file's row
    /// from there when its bytes were analysed before with the same settings (a renamed
    /// or copied file too): it is not decoded again. A file whose device, inode, size,
    /// mtime and ctime are as recorded is not even read. Several processes may share DIR.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// With --cache: analyse every file again and overwrite its cached row.
    #[arg(long, requires = "cache", conflicts_with = "verify")]
    pub force: bool,
    /// With --cache: read and hash every file, and name (on stderr) those whose bytes
    /// changed while their size, times and inode did not; they are analysed anew.
    #[arg(long, requires = "cache")]
    pub verify: bool,
}

impl CacheArgs {
    /// Opens the cache of `--cache`, if named. Where its folder or store cannot be
    /// written the command goes on without it, with a warning on stderr (see
    /// [`ResultCache::open_or_go_without`]); a path that cannot be a cache folder is the
    /// error.
    pub fn open(&self) -> Result<Option<ResultCache>, CacheError> {
        match &self.cache {
            Some(dir) => ResultCache::open_or_go_without(dir, |warning| {
                eprintln!("eval-cli: warning: {warning}");
            }),
            None => Ok(None),
        }
    }

    /// How files already in the cache are treated: `--force`, `--verify` or trusted.
    pub fn rescan(&self) -> Rescan {
        Rescan::of_flags(self.force, self.verify)
    }
}
