//! A musical key as a value: one of 24 (12 tonics x major/minor), how it is written
//! (`A minor`, sharps only), its Camelot code (`8A`) and how two keys relate (the MIREX
//! classes: same, fifth, relative, parallel).

use std::fmt;
use std::str::FromStr;

/// Pitch-class names, sharps only, C = 0.
pub const PITCH_NAMES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

/// Major or minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Major (Ionian).
    Major,
    /// Natural/harmonic minor (Aeolian).
    Minor,
}

impl Mode {
    /// `major` or `minor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Major => "major",
            Mode::Minor => "minor",
        }
    }
}

/// One of the 24 keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Pitch class of the tonic, 0 (C) to 11 (B).
    tonic: u8,
    /// Major or minor.
    mode: Mode,
}

/// How an estimated key relates to the true one: the classes MIREX scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRelation {
    /// The same key.
    Same,
    /// Same mode, tonic a perfect fifth above the truth (G major for C major).
    FifthAbove,
    /// Same mode, tonic a perfect fifth below the truth (F major for C major).
    FifthBelow,
    /// The relative key (A minor for C major, C major for A minor).
    Relative,
    /// The same tonic in the other mode (C minor for C major).
    Parallel,
    /// Anything else.
    Other,
}

impl KeyRelation {
    /// Every relation, in the order reports list them.
    pub const ALL: [KeyRelation; 6] = [
        KeyRelation::Same,
        KeyRelation::FifthAbove,
        KeyRelation::FifthBelow,
        KeyRelation::Relative,
        KeyRelation::Parallel,
        KeyRelation::Other,
    ];

    /// The MIREX weighted score of an estimate in this relation, as MIREX has scored since
    /// 2017: same 1.0, a fifth either way 0.5, relative 0.3, parallel 0.2, other 0.
    pub fn weighted_score(self) -> f64 {
        match self {
            KeyRelation::Same => 1.0,
            KeyRelation::FifthAbove | KeyRelation::FifthBelow => 0.5,
            KeyRelation::Relative => 0.3,
            KeyRelation::Parallel => 0.2,
            KeyRelation::Other => 0.0,
        }
    }

    /// The same score as mir_eval 0.8.2's `key.weighted_score` computes it: only the fifth
    /// above the truth earns 0.5, the fifth below 0.
    pub fn weighted_score_mir_eval(self) -> f64 {
        match self {
            KeyRelation::FifthBelow => 0.0,
            other => other.weighted_score(),
        }
    }

    /// A short name for tables and CSV: `same`, `fifth_above`, `fifth_below`, `relative`,
    /// `parallel`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRelation::Same => "same",
            KeyRelation::FifthAbove => "fifth_above",
            KeyRelation::FifthBelow => "fifth_below",
            KeyRelation::Relative => "relative",
            KeyRelation::Parallel => "parallel",
            KeyRelation::Other => "other",
        }
    }
}

impl Key {
    /// The key on `tonic` (a pitch class, taken modulo 12) in `mode`.
    pub fn new(tonic: u8, mode: Mode) -> Key {
        Key {
            tonic: tonic % 12,
            mode,
        }
    }

    /// All 24 keys: the 12 major keys from C, then the 12 minor ones from C.
    pub fn all() -> impl Iterator<Item = Key> {
        [Mode::Major, Mode::Minor]
            .into_iter()
            .flat_map(|mode| (0..12).map(move |tonic| Key::new(tonic, mode)))
    }

    /// Pitch class of the tonic, 0 (C) to 11 (B).
    pub fn tonic(self) -> u8 {
        self.tonic
    }

    /// Major or minor.
    pub fn mode(self) -> Mode {
        self.mode
    }

    /// The tonic's name, sharps only (`C#`, never `Db`).
    pub fn tonic_name(self) -> &'static str {
        PITCH_NAMES[self.tonic as usize]
    }

    /// The Camelot wheel code DJ software shows: the hour (1-12) on the circle of fifths
    /// and `B` for major, `A` for minor; C major is `8B`, A minor `8A`, G major `9B`.
    pub fn camelot(self) -> String {
        let letter = match self.mode {
            Mode::Major => 'B',
            Mode::Minor => 'A',
        };
        format!("{}{letter}", self.camelot_hour())
    }

    /// The hour (1-12) of the Camelot code: the place on the circle of fifths, shared by a
    /// minor key and its relative major.
    fn camelot_hour(self) -> u8 {
        let major_tonic = match self.mode {
            Mode::Major => self.tonic,
            Mode::Minor => (self.tonic + 3) % 12,
        };
        let fifths = (major_tonic * 7) % 12;
        (fifths + 7) % 12 + 1
    }

    /// Hours between this key and `other` on the Camelot wheel (0-6): 0 for the same key
    /// and the relative one, 1 for a fifth either way, 3 for the parallel key. The
    /// circle-of-fifths distance a key error spans.
    pub fn wheel_distance(self, other: Key) -> u8 {
        let apart = (self.camelot_hour() + 12 - other.camelot_hour()) % 12;
        apart.min(12 - apart)
    }

    /// How this estimate relates to `truth`.
    pub fn relation_to(self, truth: Key) -> KeyRelation {
        let up = (self.tonic + 12 - truth.tonic) % 12;
        match (self.mode == truth.mode, up) {
            (true, 0) => KeyRelation::Same,
            (true, 7) => KeyRelation::FifthAbove,
            (true, 5) => KeyRelation::FifthBelow,
            (false, 0) => KeyRelation::Parallel,
            // A minor is 9 semitones above C major; C major 3 above A minor.
            (false, 9) if truth.mode == Mode::Major => KeyRelation::Relative,
            (false, 3) if truth.mode == Mode::Minor => KeyRelation::Relative,
            _ => KeyRelation::Other,
        }
    }
}

impl fmt::Display for Key {
    /// `A minor`, `C# major`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.tonic_name(), self.mode.as_str())
    }
}

/// Why a text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a key: {text:?} (expected e.g. `A minor`, `C#m`, `Dbm`, `Bb major` or `8A`)")]
pub struct KeyParseError {
    text: String,
}

impl FromStr for Key {
    type Err = KeyParseError;

    /// Reads the ways tools write a key: `A minor`, `a minor`, `Am`, `A min`, `Amin`,
    /// `C# major`, `C#`, `Db`, `Dbm`, `D♭ minor`, `Bb:maj`, `C:min` (mir_eval), and Camelot
    /// codes `8A` / `8B`. A tonic alone is major; `CM` (a capital M, as chord symbols write
    /// it) is major, `Cm` minor.
    fn from_str(text: &str) -> Result<Key, KeyParseError> {
        let fail = || KeyParseError {
            text: text.to_string(),
        };
        let trimmed = text.trim();
        if let Some(key) = parse_camelot(trimmed) {
            return Ok(key);
        }
        let mut chars = trimmed.chars().peekable();
        let letter = chars.next().ok_or_else(fail)?;
        let natural: u8 = match letter.to_ascii_uppercase() {
            'C' => 0,
            'D' => 2,
            'E' => 4,
            'F' => 5,
            'G' => 7,
            'A' => 9,
            'B' => 11,
            _ => return Err(fail()),
        };
        // Up to a double sharp or flat (`C##` is D): thirteen flats underflowed and
        // `C#########` read as A major.
        let mut shift: i8 = 0;
        let mut accidentals = 0;
        while let Some(&c) = chars.peek() {
            match c {
                '#' | '♯' => shift += 1,
                'b' | '♭' => shift -= 1,
                _ => break,
            }
            accidentals += 1;
            // Two of one kind at most, never both kinds (`C#b` read as C).
            if accidentals > 2 || shift.unsigned_abs() != accidentals {
                return Err(fail());
            }
            chars.next();
        }
        let tonic = (i16::from(natural) + i16::from(shift)).rem_euclid(12) as u8;
        let rest: String = chars.collect();
        let rest = rest.trim().trim_start_matches(':').trim();
        // A lone capital M is major, as chord symbols write it (`CM`, `D#M`); a lone small
        // m is minor. Every longer word is read in any case.
        let mode = match rest {
            "M" => Mode::Major,
            "m" => Mode::Minor,
            _ => match rest.to_ascii_lowercase().as_str() {
                "" | "maj" | "major" | "dur" => Mode::Major,
                "min" | "minor" | "moll" => Mode::Minor,
                _ => return Err(fail()),
            },
        };
        Ok(Key::new(tonic, mode))
    }
}

/// `8A`, `12B`: the Camelot hour and letter.
fn parse_camelot(text: &str) -> Option<Key> {
    let letter = text.chars().last()?;
    let mode = match letter.to_ascii_uppercase() {
        'A' => Mode::Minor,
        'B' => Mode::Major,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    // Digits only: `+1A` parsed as 1A.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hour: u32 = digits.parse().ok()?;
    if !(1..=12).contains(&hour) {
        return None;
    }
    // Inverse of `camelot`: hour -> position on the circle of fifths -> major tonic.
    let fifths = (hour + 12 - 1 + 12 - 7) % 12;
    let major_tonic = ((fifths * 7) % 12) as u8;
    Some(match mode {
        Mode::Major => Key::new(major_tonic, Mode::Major),
        Mode::Minor => Key::new(major_tonic + 9, Mode::Minor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most two accidentals: thirteen flats underflowed (a panic in a debug build)
    /// and nine sharps wrapped to another key; a Camelot hour is digits only.
    #[test]
    fn runs_of_accidentals_and_signed_hours_are_not_keys() {
        assert_eq!("C##".parse::<Key>().unwrap(), Key::new(2, Mode::Major));
        assert_eq!(
            "Cbb minor".parse::<Key>().unwrap(),
            Key::new(10, Mode::Minor)
        );
        assert_eq!("Cb".parse::<Key>().unwrap(), Key::new(11, Mode::Major));
        for bad in [
            "C#########",
            "Cbbbbbbbbbbbbb",
            "C###",
            "C#b",
            "Cb#",
            "+1A",
            "-1B",
            "1 A",
        ] {
            assert!(bad.parse::<Key>().is_err(), "{bad}");
        }
    }

    fn key(text: &str) -> Key {
        text.parse().unwrap()
    }

    #[test]
    fn names_use_sharps_and_round_trip() {
        for k in Key::all() {
            assert_eq!(key(&k.to_string()), k);
            assert_eq!(key(&k.camelot()), k, "{k} {}", k.camelot());
        }
        assert_eq!(Key::all().count(), 24);
        assert_eq!(Key::new(1, Mode::Minor).to_string(), "C# minor");
    }

    #[test]
    fn camelot_codes_match_the_wheel() {
        for (name, code) in [
            ("C major", "8B"),
            ("A minor", "8A"),
            ("G major", "9B"),
            ("E minor", "9A"),
            ("F major", "7B"),
            ("B major", "1B"),
            ("G# minor", "1A"),
            ("F# major", "2B"),
            ("D# minor", "2A"),
            ("A# major", "6B"),
            ("E major", "12B"),
            ("C# minor", "12A"),
        ] {
            assert_eq!(key(name).camelot(), code, "{name}");
        }
    }

    #[test]
    fn tool_spellings_are_read() {
        for (text, name) in [
            ("Dbm", "C# minor"),
            ("Bb major", "A# major"),
            ("bb:min", "A# minor"),
            ("C:maj", "C major"),
            ("F#", "F# major"),
            ("E♭ minor", "D# minor"),
            ("Cb", "B major"),
            ("B#m", "C minor"),
            ("  a min ", "A minor"),
            ("12A", "C# minor"),
            ("1B", "B major"),
            ("CM", "C major"),
            ("D#M", "D# major"),
            ("D#m", "D# minor"),
            ("C MAJOR", "C major"),
            ("a MIN", "A minor"),
        ] {
            assert_eq!(key(text).to_string(), name, "{text}");
        }
        for bad in ["", "H", "13A", "0B", "C dorian", "X", "Cmm"] {
            assert!(bad.parse::<Key>().is_err(), "{bad}");
        }
    }

    #[test]
    fn wheel_distances_count_fifths() {
        for (a, b, hours) in [
            ("C major", "C major", 0),
            ("A minor", "C major", 0),
            ("G major", "C major", 1),
            ("F major", "C major", 1),
            ("D minor", "C major", 1),
            ("C minor", "C major", 3),
            ("F# major", "C major", 6),
            ("B major", "C major", 5),
            ("D major", "C major", 2),
        ] {
            assert_eq!(key(a).wheel_distance(key(b)), hours, "{a} / {b}");
            assert_eq!(key(b).wheel_distance(key(a)), hours, "{b} / {a}");
        }
    }

    #[test]
    fn scores_follow_mirex_and_mir_eval() {
        let scores: Vec<(f64, f64)> = KeyRelation::ALL
            .iter()
            .map(|r| (r.weighted_score(), r.weighted_score_mir_eval()))
            .collect();
        assert_eq!(
            scores,
            [
                (1.0, 1.0),
                (0.5, 0.5),
                (0.5, 0.0),
                (0.3, 0.3),
                (0.2, 0.2),
                (0.0, 0.0)
            ]
        );
    }

    #[test]
    fn relations_are_the_mirex_classes() {
        for (estimate, truth, relation) in [
            ("C major", "C major", KeyRelation::Same),
            ("G major", "C major", KeyRelation::FifthAbove),
            ("F major", "C major", KeyRelation::FifthBelow),
            ("E minor", "A minor", KeyRelation::FifthAbove),
            ("D minor", "A minor", KeyRelation::FifthBelow),
            ("A minor", "C major", KeyRelation::Relative),
            ("C major", "A minor", KeyRelation::Relative),
            ("C minor", "C major", KeyRelation::Parallel),
            ("A major", "A minor", KeyRelation::Parallel),
            ("E minor", "C major", KeyRelation::Other),
            ("D# major", "C minor", KeyRelation::Relative),
            ("C major", "D# minor", KeyRelation::Other),
            ("G minor", "C major", KeyRelation::Other),
        ] {
            assert_eq!(
                key(estimate).relation_to(key(truth)),
                relation,
                "{estimate} for {truth}"
            );
        }
    }
}
