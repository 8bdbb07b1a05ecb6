//! Deterministic synthetic music with a known tempo.
//!
//! The tempo analyzer needs signals whose right answer is known: golden
//! cases for its unit tests, seeded inputs for the benchmarks, and the
//! built-in dataset of `eval-cli`. This crate renders them. A [`TrackSpec`]
//! names the tempo (quarter notes per minute, also in 3/4), meter, style,
//! swing, timing jitter and noise floor; [`render`] turns it into
//! interleaved `f32` samples with synthesised drums, a bass line following a
//! chord progression, chords, fills and section changes. The same spec gives
//! the same bits on every machine: one seeded ChaCha8 stream per purpose,
//! single-threaded arithmetic, and the pure-Rust `libm` for every
//! transcendental function.
//!
//! [`presets`] holds the golden signals; [`dataset_plan`] and
//! [`write_dataset`] build a folder of WAV and FLAC files with a
//! `manifest.csv` that gives each track's tempo and key ([`track_key`]).
//!
//! ```
//! use synth_music::{Style, TrackSpec, render};
//!
//! let spec = TrackSpec::new(128.0, Style::FourOnTheFloor)
//!     .with_seconds(2.0)
//!     .with_seed(7);
//! let samples = render(&spec);
//! assert_eq!(samples.len(), 2 * 44_100 * 2); // seconds * rate * channels
//! assert!(samples.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
//! assert_eq!(samples, render(&spec)); // deterministic
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod arrange;
mod dataset;
mod dsp;
mod io;
pub mod presets;
pub mod pulse_cases;
mod render;
mod rng;
mod spec;

pub use arrange::{TrackKey, track_key};
pub use dataset::{
    AudioFormat, COMPOUND_MANIFEST_HEADER, DatasetItem, DatasetSpec, MANIFEST_FILE,
    MANIFEST_HEADER, SWING_MANIFEST_HEADER, TEMPO_BANDS, TRIPLET_SWING, compound_manifest_csv,
    compound_plan, dataset_plan, manifest_csv, offbeat_of, swing_manifest_csv, swing_plan,
    write_compound_dataset, write_dataset, write_swing_dataset,
};
pub use io::{Error, write_flac, write_wav};
pub use render::try_render;
pub use spec::{Meter, Style, TrackSpec};

/// Renders `spec` as interleaved samples (`spec.sample_count()` of them),
/// peak-normalised to about -1 dBFS, never clipped.
///
/// # Panics
///
/// If [`TrackSpec::validate`] rejects the spec; use [`try_render`] to get
/// the error instead.
pub fn render(spec: &TrackSpec) -> Vec<f32> {
    match try_render(spec) {
        Ok(samples) => samples,
        Err(e) => panic!("cannot render track: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(style: Style) -> TrackSpec {
        TrackSpec::new(120.0, style).with_seconds(6.0)
    }

    #[test]
    fn same_seed_same_bits_other_seed_other_bits() {
        let spec = short(Style::HipHop).with_swing(0.2).with_humanize_ms(8.0);
        let a = render(&spec);
        let b = render(&spec);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let c = render(&spec.clone().with_seed(1));
        assert_ne!(a, c);
    }

    #[test]
    fn every_style_is_finite_normalised_and_sized() {
        for style in Style::ALL {
            for channels in [1, 2] {
                let spec = short(style)
                    .with_channels(channels)
                    .with_sample_rate(22_050);
                let out = render(&spec);
                assert_eq!(out.len(), 6 * 22_050 * usize::from(channels), "{style:?}");
                assert_eq!(out.len(), spec.sample_count());
                assert!(out.iter().all(|x| x.is_finite()), "{style:?}");
                let peak = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert!(peak <= 1.0 && peak > 0.8, "{style:?} peak {peak}");
            }
        }
    }

    #[test]
    fn length_rounds_fractional_seconds() {
        let spec = TrackSpec::new(100.0, Style::Rock)
            .with_seconds(0.5001)
            .with_sample_rate(8_000)
            .with_channels(3);
        assert_eq!(render(&spec).len(), 4_001 * 3);
    }

    #[test]
    fn invalid_specs_are_errors() {
        let spec = TrackSpec::new(10.0, Style::Rock);
        assert!(matches!(try_render(&spec), Err(Error::InvalidSpec { .. })));
        let spec = TrackSpec::new(120.0, Style::Rock).with_swing(0.7);
        assert!(try_render(&spec).is_err());
        let spec = TrackSpec::new(120.0, Style::Rock).with_channels(0);
        assert!(try_render(&spec).is_err());
    }

    #[test]
    fn silence_free_noise_floor() {
        let quiet = render(&short(Style::Ambientish).with_noise_db(f64::NEG_INFINITY));
        assert!(quiet.iter().all(|x| x.is_finite()));
    }

    /// Smoothed energy of a crudely low-passed (about 100 Hz) mono signal,
    /// sampled every 5 ms.
    fn low_band_frames(mono: &[f32], sr: f64) -> Vec<f64> {
        let a = (2.0 * std::f64::consts::PI * 100.0 / sr) as f32;
        let b = (1.0 / (0.008 * sr)) as f32;
        let (mut y1, mut y2, mut env) = (0.0f32, 0.0f32, 0.0f32);
        let hop = (0.005 * sr) as usize;
        let smoothed: Vec<f32> = mono
            .iter()
            .map(|&x| {
                y1 += a * (x - y1);
                y2 += a * (y1 - y2);
                env += b * (y2 * y2 - env);
                env
            })
            .collect();
        smoothed.chunks(hop).map(|c| f64::from(c[0])).collect()
    }

    #[test]
    fn kicks_land_on_the_beats() {
        let sr = 22_050.0;
        for (bpm, seed) in [(120.0, 0), (128.0, 1), (97.5, 2)] {
            let spec = TrackSpec::new(bpm, Style::FourOnTheFloor)
                .with_seconds(10.0)
                .with_sample_rate(sr as u32)
                .with_channels(1)
                .with_seed(seed);
            let frames = low_band_frames(&render(&spec), sr);
            let frame = |t: f64| ((t / 0.005) as usize).min(frames.len() - 1);
            let argmax = |lo: f64, hi: f64| {
                (frame(lo)..frame(hi))
                    .max_by(|&a, &b| frames[a].total_cmp(&frames[b]))
                    .unwrap()
            };
            let beat = 60.0 / bpm;
            let (mut on_sum, mut off_sum) = (0.0, 0.0);
            let mut k = 1;
            while (k as f64 + 1.0) * beat < 10.0 {
                // Within a quarter beat either side of the beat, the low band
                // peaks just after the beat (the kick's body)...
                let t = k as f64 * beat;
                let best = argmax(t - beat / 4.0, t + beat / 4.0);
                let found = best as f64 * 0.005;
                assert!(
                    (t..t + 0.1).contains(&found),
                    "bpm {bpm} beat {k}: low-band peak at {found:.3} s, beat at {t:.3} s"
                );
                // ...and, on average, well above anything between the beats.
                let off = argmax(t + beat / 4.0, t + 3.0 * beat / 4.0);
                on_sum += frames[best];
                off_sum += frames[off];
                k += 1;
            }
            assert!(
                on_sum > 1.3 * off_sum,
                "bpm {bpm}: on {on_sum} off {off_sum}"
            );
        }
    }
}
