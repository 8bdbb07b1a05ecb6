//! How a key is written into a tag: the `--key-notation` flag. DJ programs disagree (the
//! ID3 standard form `Am` is what most players show; Mixed In Key writes Camelot `8A`;
//! Beatunes and Traktor can write Open Key `1m`), so the user picks one.

use analyzer_core::key::{Key, Mode};

/// The `--key-notation` flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyNotation {
    /// The ID3v2 `TKEY` form: tonic (sharps only) and `m` for minor, `Am`, `F#`, `C#m`.
    #[default]
    Standard,
    /// The Camelot wheel: `8A` (A minor), `8B` (C major).
    Camelot,
    /// Open Key: `1m` (A minor), `1d` (C major), C major at one o'clock.
    #[value(name = "openkey")]
    OpenKey,
}

impl KeyNotation {
    /// `key` written in this notation.
    pub fn write(self, key: Key) -> String {
        match self {
            KeyNotation::Standard => match key.mode() {
                Mode::Major => key.tonic_name().to_string(),
                Mode::Minor => format!("{}m", key.tonic_name()),
            },
            KeyNotation::Camelot => key.camelot(),
            KeyNotation::OpenKey => {
                // The relative major's place on the circle of fifths, C = 1, G = 2, F = 12.
                let (major_tonic, letter) = match key.mode() {
                    Mode::Major => (key.tonic(), 'd'),
                    Mode::Minor => ((key.tonic() + 3) % 12, 'm'),
                };
                format!("{}{letter}", (major_tonic * 7) % 12 + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        text.parse().unwrap()
    }

    #[test]
    fn each_notation_writes_the_forms_dj_software_reads() {
        let cases = [
            ("A minor", "Am", "8A", "1m"),
            ("C major", "C", "8B", "1d"),
            ("F# major", "F#", "2B", "7d"),
            ("C# minor", "C#m", "12A", "5m"),
            ("G major", "G", "9B", "2d"),
            ("F major", "F", "7B", "12d"),
            ("D minor", "Dm", "7A", "12m"),
            ("Bb major", "A#", "6B", "11d"),
        ];
        for (text, standard, camelot, open_key) in cases {
            let k = key(text);
            assert_eq!(KeyNotation::Standard.write(k), standard, "{text}");
            assert_eq!(KeyNotation::Camelot.write(k), camelot, "{text}");
            assert_eq!(KeyNotation::OpenKey.write(k), open_key, "{text}");
        }
    }

    /// Open Key and Camelot number the same wheel, seven hours apart, for all 24 keys.
    #[test]
    fn open_key_is_camelot_turned_by_seven_hours() {
        for k in Key::all() {
            let camelot = k.camelot();
            let hour: u32 = camelot[..camelot.len() - 1].parse().unwrap();
            let open = KeyNotation::OpenKey.write(k);
            let open_hour: u32 = open[..open.len() - 1].parse().unwrap();
            assert_eq!((open_hour + 6) % 12 + 1, hour, "{k}");
        }
    }
}
