//! From score to samples: synthesise every event onto the stereo bus, add
//! reverb, lay out the requested channels, normalise, add the noise floor.

use crate::Error;
use crate::arrange::{Sound, score};
use crate::dsp::{Drum, Mix, Synth, midi_hz};
use crate::rng::{Rand, Stream};
use crate::spec::TrackSpec;

/// Peak level of the finished track: -1 dBFS.
pub(crate) const PEAK: f32 = 0.891_250_9;

/// Reverb return level.
const REVERB_WET: f32 = 0.5;

/// Mix level of each drum at full velocity.
fn drum_gain(drum: Drum) -> f32 {
    match drum {
        Drum::Kick => 1.0,
        Drum::Snare => 0.55,
        Drum::Clap => 0.45,
        Drum::HatClosed => 0.8,
        Drum::HatOpen => 0.6,
        Drum::Shaker => 0.3,
        Drum::Rim => 0.25,
        Drum::Tom(_) => 0.6,
        Drum::Conga(..) => 0.45,
        Drum::Cowbell => 0.15,
        Drum::Clave => 0.3,
        Drum::Crash => 0.2,
        Drum::Brush => 0.3,
    }
}

/// Renders `spec` after checking it; see [`crate::render`].
pub fn try_render(spec: &TrackSpec) -> Result<Vec<f32>, Error> {
    spec.validate()?;
    let frames = spec.frame_count();
    let sr = spec.sample_rate as f32;
    let mut mix = Mix::new(frames);
    let mut synth = Synth::new(sr, Rand::new(spec.seed, Stream::Voices));
    for event in score(spec) {
        let start = (event.time * f64::from(spec.sample_rate)).round() as usize;
        if start >= frames {
            break; // events are in time order
        }
        let (samples, gain) = match event.sound {
            Sound::Drum(drum) => (synth.drum(drum), drum_gain(drum)),
            Sound::Note {
                patch,
                pitches,
                hold,
            } => {
                let mut hz = [0.0; 4];
                for (h, &m) in hz.iter_mut().zip(pitches.midi()) {
                    *h = midi_hz(m);
                }
                let hz = &hz[..pitches.midi().len()];
                (synth.note(patch, hz, hold as f32), 1.0)
            }
        };
        mix.add(start, samples, gain * event.vel, event.pan, event.send);
    }
    mix.apply_reverb(sr, REVERB_WET);

    let channels = usize::from(spec.channels);
    let mut out = Vec::with_capacity(frames * channels);
    if channels == 1 {
        out.extend(mix.left.iter().zip(&mix.right).map(|(l, r)| 0.5 * (l + r)));
    } else {
        for (&l, &r) in mix.left.iter().zip(&mix.right) {
            out.extend((0..channels).map(|c| if c % 2 == 0 { l } else { r }));
        }
    }
    drop(mix);
    normalise(&mut out);
    if spec.noise_db > f64::NEG_INFINITY {
        // Uniform noise in [-a, a) has RMS a / sqrt(3).
        let amp = libm::pow(10.0, spec.noise_db / 20.0) as f32 * 3f32.sqrt();
        let mut noise = Rand::new(spec.seed, Stream::Background);
        for x in &mut out {
            *x += amp * noise.noise();
        }
        normalise(&mut out);
    }
    Ok(out)
}

/// Scales `samples` so that the peak is [`PEAK`]; leaves silence alone.
fn normalise(samples: &mut [f32]) {
    let peak = samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 0.0 && peak.is_finite() {
        let gain = PEAK / peak;
        for x in samples.iter_mut() {
            *x *= gain;
        }
    }
}
