//! The level under which the analysed signal is not heard, and the gate that tells it.
//!
//! A file can hold samples that are not digital silence and still carry nothing a listener
//! hears: a 21.95 kHz tone that the resampler to the analysis rate filters down to its
//! residue, 90 dB and more under full scale. The onset and key stages normalise their
//! features to the signal's own level, so such residue read as a confident tempo and a key.
//! The floor is 20 dB under BS.1770's absolute gate (-70 LUFS), applied to the analysed
//! signal (mono, at the analysis rate) without K-weighting. It sits that far down because
//! the analysed signal is not what a listener hears of a file: it keeps nothing above half
//! the analysis rate, so a loud file whose energy lies in hi-hats over 5.5 kHz (-28 LUFS)
//! and music 48 dB down (-68 LUFS, over the gate) both fell under a floor at the gate and
//! lost a tempo and a key they had.
//!
//! It applies by 400 ms block, as the loudness gate does: audio is inaudible only when no
//! more than a few blocks reach the floor, so quiet music with loud moments, or music
//! between long silences, is analysed as before; audio shorter than those few blocks is
//! heard when every block of it reaches the floor (a loud 1.5-s chord kept its loudness
//! and lost its key as "too quiet to hear").

use crate::loudness::{ABSOLUTE_GATE_LUFS, LUFS_OFFSET};

/// The floor, in LUFS: 20 dB under BS.1770-4's absolute gate (see the module).
pub const AUDIBLE_FLOOR_LUFS: f64 = ABSOLUTE_GATE_LUFS - 20.0;

/// Seconds in a block the gate judges: BS.1770's gating block.
const BLOCK_SECONDS: f64 = 0.4;

/// Blocks that must reach the floor for the signal to be heard: 2 s, what a tempo needs
/// ([`crate::tempo::MIN_SECONDS`]). One or two blocks do not make music: a loud tone far
/// above the analysis band leaves a click where it starts and stops (the resampler's
/// filter meeting a step), -63 LUFS for one block, and 155 dB under full scale between.
const MIN_AUDIBLE_BLOCKS: usize = 5;

/// The mean square of samples at the floor (a mono signal counts as one front channel:
/// no weight, no K-filter).
pub fn audible_mean_square() -> f64 {
    10f64.powf((AUDIBLE_FLOOR_LUFS - LUFS_OFFSET) / 10.0)
}

/// Whether a stretch of samples (`sum_of_squares` over `count` of them) reaches the floor.
pub fn is_audible(sum_of_squares: f64, count: usize) -> bool {
    count > 0 && sum_of_squares >= audible_mean_square() * count as f64
}

/// What a stretch of the analysed signal holds, by level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Every sample is zero.
    Silent,
    /// Some samples are not zero, but fewer than [`MIN_AUDIBLE_BLOCKS`] blocks of 400 ms
    /// reach [`AUDIBLE_FLOOR_LUFS`], and not every block does.
    Inaudible,
    /// Enough blocks reach [`AUDIBLE_FLOOR_LUFS`], or all of them in shorter audio.
    Audible,
}

/// What a [`LevelGate`] counted in a stretch; the stretches of a sampled file add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelCount {
    /// Blocks that reach the floor.
    audible_blocks: usize,
    /// Blocks judged (a last partial one included).
    blocks: usize,
    /// Whether any sample is not zero.
    any_sound: bool,
}

impl LevelCount {
    /// The count of this stretch and `other` together.
    pub fn merged(self, other: LevelCount) -> LevelCount {
        LevelCount {
            audible_blocks: self.audible_blocks + other.audible_blocks,
            blocks: self.blocks + other.blocks,
            any_sound: self.any_sound || other.any_sound,
        }
    }

    /// The verdict on the counted audio.
    pub fn level(&self) -> Level {
        let every_block = self.blocks > 0 && self.audible_blocks == self.blocks;
        if self.audible_blocks >= MIN_AUDIBLE_BLOCKS || every_block {
            Level::Audible
        } else if self.any_sound {
            Level::Inaudible
        } else {
            Level::Silent
        }
    }
}

/// The reason given for audio that is not silent but stays under the floor.
pub fn inaudible_reason() -> String {
    format!(
        "too quiet to hear: the analysed signal (the mono mix below about 5.5 kHz, the band \
         tempo and key are read in) reaches {AUDIBLE_FLOOR_LUFS} LUFS (20 dB under the \
         loudness gate) in under {:.0} s of it",
        MIN_AUDIBLE_BLOCKS as f64 * BLOCK_SECONDS
    )
}

/// Counts the blocks of a stream of samples that reach the floor; push, then
/// [`LevelGate::finish`].
#[derive(Debug, Clone)]
pub struct LevelGate {
    block: usize,
    filled: usize,
    sum_of_squares: f64,
    count: LevelCount,
}

impl LevelGate {
    /// A gate for samples at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Self {
        LevelGate {
            block: ((f64::from(sample_rate) * BLOCK_SECONDS).round() as usize).max(1),
            filled: 0,
            sum_of_squares: 0.0,
            count: LevelCount::default(),
        }
    }

    /// Adds samples.
    pub fn push(&mut self, samples: &[f32]) {
        for &s in samples {
            self.count.any_sound |= s != 0.0;
            self.sum_of_squares += f64::from(s) * f64::from(s);
            self.filled += 1;
            if self.filled == self.block {
                self.close_block();
            }
        }
    }

    /// The count of everything pushed; a last partial block is judged on its own.
    pub fn finish(mut self) -> LevelCount {
        if self.filled > 0 {
            self.close_block();
        }
        self.count
    }

    fn close_block(&mut self) {
        self.count.blocks += 1;
        if is_audible(self.sum_of_squares, self.filled) {
            self.count.audible_blocks += 1;
        }
        self.filled = 0;
        self.sum_of_squares = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_of(samples: &[f32]) -> LevelCount {
        let mut gate = LevelGate::new(11_025);
        // In uneven pieces: the blocks do not depend on how the stream is cut.
        for piece in samples.chunks(777) {
            gate.push(piece);
        }
        gate.finish()
    }

    fn level_of(samples: &[f32]) -> Level {
        count_of(samples).level()
    }

    fn sine(amplitude: f32, seconds: f64) -> Vec<f32> {
        (0..(11_025.0 * seconds) as usize)
            .map(|i| amplitude * (i as f32 * 0.1).sin())
            .collect()
    }

    #[test]
    fn the_floor_is_the_loudness_gate() {
        // A sine's mean square is half its squared amplitude: -70 LUFS is a sine of
        // amplitude 10^((-70 + 0.691) / 20) * sqrt(2), about -66.3 dBFS.
        let at_floor = (audible_mean_square() * 2.0).sqrt() as f32;
        assert_eq!(level_of(&sine(at_floor * 1.01, 2.0)), Level::Audible);
        assert_eq!(level_of(&sine(at_floor * 0.99, 2.0)), Level::Inaudible);
        assert_eq!(level_of(&vec![0.0; 30_000]), Level::Silent);
        assert_eq!(level_of(&[]), Level::Silent);
    }

    #[test]
    fn two_seconds_over_the_floor_make_the_stretch_audible() {
        let silence = vec![0.0f32; 11_025 * 60];
        let hiss = vec![1e-6f32; 11_025 * 60];
        // 2 s of sound among a minute of silence and a minute of hiss is heard; 1.2 s
        // (a click where a loud ultrasonic tone starts) is not.
        let with = |seconds| [&silence[..], &sine(0.01, seconds), &hiss[..]].concat();
        assert_eq!(level_of(&with(2.0)), Level::Audible);
        assert_eq!(level_of(&with(1.2)), Level::Inaudible);
        // The segments of a sampled file add up.
        let part = count_of(&with(1.2));
        assert_eq!(part.merged(part).level(), Level::Audible);
        assert_eq!(
            count_of(&silence).merged(count_of(&hiss)).level(),
            Level::Inaudible
        );
        assert_eq!(LevelCount::default().level(), Level::Silent);
    }

    /// Audio shorter than the 2 s the rule asks for is heard when every block of it
    /// reaches the floor, partial last block included; one quiet block keeps it unheard.
    #[test]
    fn short_audio_loud_throughout_is_heard() {
        assert_eq!(level_of(&sine(0.3, 1.5)), Level::Audible);
        assert_eq!(level_of(&sine(0.3, 0.1)), Level::Audible);
        let quiet_end = [&sine(0.3, 1.2)[..], &vec![1e-7f32; 11_025]].concat();
        assert_eq!(level_of(&quiet_end), Level::Inaudible);
    }
}
