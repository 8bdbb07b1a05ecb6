//! The mix down to mono: channels averaged without letting opposite polarities cancel,
//! and samples that are not audio (NaN, infinite, absurdly large) left out.

/// The largest sample magnitude read as audio (+120 dBFS). Decoders scale audio to ±1, and
/// float files with headroom, or even integer PCM stored unscaled as float (±32768), stay
/// far below it; a sample beyond it is damage, and sums of such samples overflow `f32` in
/// the resampler and the spectra (a float file of samples near 3e38 made the resampler's
/// FFT panic, one near 1e18 read as silence).
pub const MAX_SAMPLE: f32 = 1.0e6;

/// Whether a decoded sample is audio: finite and within ±[`MAX_SAMPLE`].
pub(crate) fn is_audio(sample: f32) -> bool {
    sample.abs() <= MAX_SAMPLE
}

/// `sample` where it is audio ([`is_audio`]), else silence: how every stage that takes
/// samples from a caller treats NaN, infinities and absurd values, as the decoder does.
pub(crate) fn audio_or_silence(sample: f32) -> f32 {
    if is_audio(sample) { sample } else { 0.0 }
}

/// How far (in energy) the plain mix of a block may fall under its channels' mean energy
/// before the mix counts as cancelled: 30 dB. A channel in inverted polarity cancels
/// completely (16-bit samples negate exactly), and 1 % of difference between the two
/// still leaves the mix 46 dB down. Ordinary stereo stays well above the line: two
/// uncorrelated channels mix 3 dB under their mean, and the most cancelled packet of the
/// 19 real-dev songs (wide chorus and reverb in a MIDI rendering) 22.5 dB.
const CANCELLED_MIX_RATIO: f64 = 0.001;

/// Averages interleaved channels into `mono` as [`MonoMixer::mix`] does, for samples held
/// in memory (one block, no history).
pub fn mix_to_mono(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) -> u64 {
    MonoMixer::default().mix(interleaved, channels, mono)
}

/// Mixes a stream down to mono, one decoded block (packet) at a time, without letting
/// channels in opposite polarity cancel.
///
/// The mix is the average of the channels. Where a block's average falls more than
/// [`CANCELLED_MIX_RATIO`] under the channels' mean energy (one channel's polarity
/// inverted: left = m, right = -m averages to silence while a listener hears m), the
/// mixer starts aligning: each channel's polarity is set to agree with that block's
/// loudest channel (the reference, kept from then on, so that the mix does not flip its
/// own polarity from block to block) before averaging. It goes on aligning while some
/// channel of a block is in opposite polarity to the reference, and stops at the first
/// block where none is: a decision made afresh in every block flipped between the two
/// mixes wherever the cancellation depended on the content (a channel inverted and
/// delayed by one sample cancels the bass but not the hi-hats), and the flips read as
/// onsets.
///
/// Ordinary music never starts it, so its mix is the plain average, bit for bit. A
/// sampled decode starts a fresh mixer at each segment; the decode that measures the
/// loudness mixes the whole stream with one, so the two can differ in files whose
/// channels cancel.
#[derive(Debug, Clone, Default)]
pub struct MonoMixer {
    /// While aligning, the channel whose polarity the others are aligned to.
    reference: Option<usize>,
}

impl MonoMixer {
    /// Averages interleaved channels into `mono`, aligning their polarity when they cancel
    /// (see the type), and replacing samples that are not audio (NaN, infinite, beyond
    /// ±[`MAX_SAMPLE`]) by zero. Returns how many it replaced.
    pub fn mix(&mut self, interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) -> u64 {
        let channels = channels.max(1);
        let scale = 1.0 / channels as f32;
        let mut non_finite = 0u64;
        mono.clear();
        mono.extend(interleaved.chunks_exact(channels).map(|frame| {
            let mut sum = 0.0f32;
            for &s in frame {
                if is_audio(s) {
                    sum += s;
                } else {
                    non_finite += 1;
                }
            }
            sum * scale
        }));
        // Not a whole frame: nothing to align (and no per-channel sums to allocate for a
        // channel count that no samples back).
        if channels > 1 && interleaved.len() >= channels {
            self.align_cancelling_channels(interleaved, channels, mono);
        }
        non_finite
    }

    /// Replaces `mono`, the plain average of `interleaved`'s channels, by the average with
    /// every channel's polarity aligned to the reference channel's, while the mixer is
    /// aligning and the aligned average is the louder. Samples that are not audio count as
    /// zero, as in the plain average.
    fn align_cancelling_channels(
        &mut self,
        interleaved: &[f32],
        channels: usize,
        mono: &mut [f32],
    ) {
        let audio = |s: f32| if is_audio(s) { f64::from(s) } else { 0.0 };
        let mix_energy: f64 = mono.iter().map(|&m| f64::from(m) * f64::from(m)).sum();
        let mut energies = vec![0.0f64; channels];
        for frame in interleaved.chunks_exact(channels) {
            for (energy, &s) in energies.iter_mut().zip(frame) {
                *energy += audio(s) * audio(s);
            }
        }
        let mean_energy = energies.iter().sum::<f64>() / channels as f64;
        if mix_energy < mean_energy * CANCELLED_MIX_RATIO && self.reference.is_none() {
            let loudest = (0..channels)
                .max_by(|&a, &b| energies[a].total_cmp(&energies[b]).then(b.cmp(&a)))
                .unwrap_or(0);
            self.reference = Some(loudest);
        }
        let Some(reference) = self.reference.filter(|&r| r < channels) else {
            self.reference = None;
            return;
        };
        let mut correlations = vec![0.0f64; channels];
        for frame in interleaved.chunks_exact(channels) {
            let reference = audio(frame[reference]);
            for (correlation, &s) in correlations.iter_mut().zip(frame) {
                *correlation += audio(s) * reference;
            }
        }
        let signs: Vec<f32> = correlations
            .iter()
            .map(|&c| if c < 0.0 { -1.0 } else { 1.0 })
            .collect();
        if signs.iter().all(|&s| s > 0.0) {
            self.reference = None;
            return;
        }
        let scale = 1.0 / channels as f32;
        let aligned = |frame: &[f32]| -> f32 {
            let sum: f32 = frame
                .iter()
                .zip(&signs)
                .map(|(&s, &sign)| if is_audio(s) { s * sign } else { 0.0 })
                .sum();
            sum * scale
        };
        let aligned_energy: f64 = interleaved
            .chunks_exact(channels)
            .map(|frame| f64::from(aligned(frame)).powi(2))
            .sum();
        if aligned_energy <= mix_energy {
            return;
        }
        for (m, frame) in mono.iter_mut().zip(interleaved.chunks_exact(channels)) {
            *m = aligned(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel in inverted polarity is aligned instead of cancelling the mix; channels that
    /// do not cancel (uncorrelated, hard-panned, partly opposed) mix to their plain average.
    #[test]
    fn channels_in_opposite_polarity_do_not_cancel() {
        let m: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        let other: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.031).cos() * 0.5).collect();
        let interleave = |l: &[f32], r: &[f32]| -> Vec<f32> {
            l.iter().zip(r).flat_map(|(&a, &b)| [a, b]).collect()
        };
        let plain = |x: &[f32]| -> Vec<f32> { x.chunks(2).map(|f| (f[0] + f[1]) * 0.5).collect() };
        let inverted: Vec<f32> = m.iter().map(|s| -s).collect();
        let mut mono = Vec::new();
        let mut mixer = MonoMixer::default();
        mixer.mix(&interleave(&m, &inverted), 2, &mut mono);
        assert_eq!(mono, m);
        // The polarity of the first aligned block is kept while the channels stay opposed,
        // even when the other channel becomes the louder.
        let louder_right: Vec<f32> = inverted.iter().map(|s| s * 1.001).collect();
        mixer.mix(&interleave(&m, &louder_right), 2, &mut mono);
        assert!(mono.iter().zip(&m).all(|(a, b)| a * b >= 0.0));
        // Opposed by less than the line: the plain average.
        let mostly: Vec<f32> = m.iter().zip(&other).map(|(a, b)| b - 0.9 * a).collect();
        for (left, right) in [(&m, &other), (&m, &vec![0.0; 1000]), (&m, &mostly)] {
            let x = interleave(left, right);
            mix_to_mono(&x, 2, &mut mono);
            assert_eq!(mono, plain(&x));
        }
    }
}
