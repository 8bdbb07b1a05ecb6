//! The scoring rules of tempo estimation, as small pure functions: Accuracy1/Accuracy2 and the
//! error class of one estimate, tempo bands, the reliability curve (accuracy by confidence),
//! the Karp-Flatt serial fraction and Amdahl's projection, and latency percentiles. Everything else in the harness only counts what these
//! functions decide, so the rules live (and are tested) in one place.
//!
//! Accuracy1 and Accuracy2 follow the MIREX tempo-estimation convention (Gouyon et al., "An
//! experimental comparison of audio tempo induction algorithms", IEEE TASLP 14(5), 2006):
//! an estimate is right when it lies within 4 % of the truth (Accuracy1), or, for
//! Accuracy2, within 4 % of the truth scaled by 2, 1/2, 3 or 1/3 (octave and metrical-level
//! errors forgiven). "Either reading" is Accuracy1 of two readings, the estimate or its
//! alternative (MIREX's audio tempo extraction task scores two tempi so: "at least one
//! tempo correct", McKinney et al., "Evaluation of audio beat tracking and music tempo
//! extraction algorithms", JNMR 36(1), 2007): what a user who is shown both gets right.

use serde::{Deserialize, Serialize};

/// Relative tolerance of Accuracy1 and Accuracy2: 4 % of the (scaled) true tempo.
pub const TOLERANCE: f64 = 0.04;

/// Slack added to [`TOLERANCE`] so that an estimate exactly on the 4 % boundary counts as
/// within it despite binary rounding (e.g. 104 against 100).
const BOUNDARY_SLACK: f64 = 1e-9;

/// How an estimate relates to the true tempo. The first relation that holds (in the order of
/// the variants) names the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Within 4 % of the truth (Accuracy1).
    Ok,
    /// Within 4 % of twice the truth.
    Double,
    /// Within 4 % of half the truth.
    Half,
    /// Within 4 % of three times the truth.
    Triple,
    /// Within 4 % of a third of the truth.
    Third,
    /// Within 4 % of two thirds of the truth (not forgiven by Accuracy2).
    TwoThirds,
    /// Within 4 % of three halves of the truth (not forgiven by Accuracy2).
    ThreeHalves,
    /// None of the above.
    Other,
    /// The file could not be analysed (error, timeout, cancelled), or gave no finite tempo.
    Failed,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Ok,
        ErrorClass::Double,
        ErrorClass::Half,
        ErrorClass::Triple,
        ErrorClass::Third,
        ErrorClass::TwoThirds,
        ErrorClass::ThreeHalves,
        ErrorClass::Other,
        ErrorClass::Failed,
    ];

    /// The name used in CSV and JSON: `ok`, `double`, `half`, `triple`, `third`,
    /// `two_thirds`, `three_halves`, `other`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Ok => "ok",
            ErrorClass::Double => "double",
            ErrorClass::Half => "half",
            ErrorClass::Triple => "triple",
            ErrorClass::Third => "third",
            ErrorClass::TwoThirds => "two_thirds",
            ErrorClass::ThreeHalves => "three_halves",
            ErrorClass::Other => "other",
            ErrorClass::Failed => "failed",
        }
    }

    /// The tempo ratio est/truth the class stands for (`None` for `other` and `failed`).
    pub fn factor(self) -> Option<f64> {
        match self {
            ErrorClass::Ok => Some(1.0),
            ErrorClass::Double => Some(2.0),
            ErrorClass::Half => Some(0.5),
            ErrorClass::Triple => Some(3.0),
            ErrorClass::Third => Some(1.0 / 3.0),
            ErrorClass::TwoThirds => Some(2.0 / 3.0),
            ErrorClass::ThreeHalves => Some(1.5),
            ErrorClass::Other | ErrorClass::Failed => None,
        }
    }

    /// True for the classes Accuracy1 counts as right (only `ok`).
    pub fn acc1(self) -> bool {
        self == ErrorClass::Ok
    }

    /// True for the classes Accuracy2 counts as right: `ok`, `double`, `half`, `triple`,
    /// `third`.
    pub fn acc2(self) -> bool {
        matches!(
            self,
            ErrorClass::Ok
                | ErrorClass::Double
                | ErrorClass::Half
                | ErrorClass::Triple
                | ErrorClass::Third
        )
    }
}

/// True when `est` lies within [`TOLERANCE`] of `target` (inclusive).
pub fn within(est: f64, target: f64) -> bool {
    (est - target).abs() <= target * (TOLERANCE + BOUNDARY_SLACK)
}

/// Classifies an estimate against the true tempo. `None`, a non-finite or non-positive
/// estimate, or a non-finite or non-positive truth, is [`ErrorClass::Failed`].
pub fn classify(est: Option<f64>, truth: f64) -> ErrorClass {
    let Some(est) = est else {
        return ErrorClass::Failed;
    };
    if !(est.is_finite() && est > 0.0 && truth.is_finite() && truth > 0.0) {
        return ErrorClass::Failed;
    }
    ErrorClass::ALL
        .into_iter()
        .find(|class| class.factor().is_some_and(|f| within(est, truth * f)))
        .unwrap_or(ErrorClass::Other)
}

/// True when the estimate or its alternative (`alt_bpm`, when the estimator gives one) is
/// within 4 % of the truth: the Accuracy1 of either reading. A failed file (`class`
/// [`ErrorClass::Failed`]) is wrong whatever its alternative.
pub fn either_acc1(class: ErrorClass, alt: Option<f64>, truth: Option<f64>) -> bool {
    match class {
        ErrorClass::Ok => true,
        ErrorClass::Failed => false,
        _ => alt
            .zip(truth)
            .is_some_and(|(alt, truth)| classify(Some(alt), truth) == ErrorClass::Ok),
    }
}

/// `hits / n` as a fraction, or 0 when `n` is 0 (an empty dataset has no accuracy to
/// claim; JSON has no NaN).
pub fn fraction(hits: usize, n: usize) -> f64 {
    if n == 0 { 0.0 } else { hits as f64 / n as f64 }
}

/// The tempo band of a true tempo: `<60`, `60-90`, `90-120`, `120-150`, `150-200` (200
/// included, as in the synthetic plan) or `>200`.
pub fn tempo_band(bpm: f64) -> &'static str {
    match bpm {
        b if b < 60.0 => "<60",
        b if b < 90.0 => "60-90",
        b if b < 120.0 => "90-120",
        b if b < 150.0 => "120-150",
        b if b <= 200.0 => "150-200",
        _ => ">200",
    }
}

/// Every tempo band, slowest first.
pub const TEMPO_BAND_NAMES: [&str; 6] = ["<60", "60-90", "90-120", "120-150", "150-200", ">200"];

/// Confidence bins of the reliability curve: 0-0.2, 0.2-0.4, ..., 0.8-1.0.
pub const RELIABILITY_BINS: usize = 5;

/// The files whose confidence fell in `[lo, hi)` (the last bin includes 1), and how many of
/// them were right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lowest confidence of the bin.
    pub lo: f64,
    /// Highest confidence of the bin (excluded, but for the last bin).
    pub hi: f64,
    /// Files in the bin.
    pub n: usize,
    /// Fraction of them right by Accuracy1 (0 when the bin is empty).
    pub acc1: f64,
    /// Fraction of them right by Accuracy2 (0 when the bin is empty).
    pub acc2: f64,
}

/// Accuracy by confidence in `bins` equal bins over 0..1: a reliability diagram (DeGroot &
/// Fienberg, "The comparison and evaluation of forecasters", The Statistician 32, 1983),
/// which shows whether a higher confidence means a likelier right answer, and so whether
/// the confidence can be used to flag files for a second look. Confidences outside 0..1
/// count in the end bins; NaN ones are left out. Every bin is listed, empty ones too.
pub fn reliability(points: &[(f64, ErrorClass)], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut counts = vec![(0usize, 0usize, 0usize); bins];
    for &(confidence, class) in points.iter().filter(|p| !p.0.is_nan()) {
        let k = ((confidence.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        let c = &mut counts[k];
        c.0 += 1;
        c.1 += usize::from(class.acc1());
        c.2 += usize::from(class.acc2());
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(k, (n, h1, h2))| ReliabilityBin {
            lo: k as f64 / bins as f64,
            hi: (k + 1) as f64 / bins as f64,
            n,
            acc1: fraction(h1, n),
            acc2: fraction(h2, n),
        })
        .collect()
}

/// The Karp-Flatt experimentally determined serial fraction (Karp & Flatt, "Measuring
/// parallel processor performance", CACM 33(5), 1990): `e = (1/S - 1/p) / (1 - 1/p)` for
/// speedup `S` on `p` processors. `None` when `p <= 1` (undefined), when `S` is not
/// positive and finite, or when `S > p`: a superlinear speedup (noise, or caches that two
/// cores have twice of) has no serial fraction, and Amdahl's law fed a negative one
/// projects nonsense. Nor has a slowdown, `S < 1` (`e > 1`, a "fraction" of 1.1 was
/// printed, projecting 0.92x on 8 cores): the parallel runs met other load.
pub fn karp_flatt(speedup: f64, p: usize) -> Option<f64> {
    if p <= 1 || !(speedup.is_finite() && speedup >= 1.0) || speedup > p as f64 {
        return None;
    }
    let p = p as f64;
    Some((1.0 / speedup - 1.0 / p) / (1.0 - 1.0 / p))
}

/// Amdahl's law: the speedup on `p` processors of a program with serial fraction `e`,
/// `1 / (e + (1 - e) / p)`.
pub fn amdahl_speedup(serial_fraction: f64, p: usize) -> f64 {
    let p = p.max(1) as f64;
    1.0 / (serial_fraction + (1.0 - serial_fraction) / p)
}

/// Per-file latency percentiles in milliseconds: what `timings.json` and `compare.json`
/// report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median latency, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Slowest file, ms.
    pub max: f64,
}

/// Latency percentiles of per-file times in seconds, from an HDR histogram (microsecond
/// resolution, 3 significant digits). All zero for no samples.
pub fn latency_ms(elapsed_s: &[f64]) -> Latency {
    // Bounds: 1 us to 10 hours; values outside are clamped into range.
    let Ok(mut hist) = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 36_000_000_000, 3) else {
        return Latency::default();
    };
    for &s in elapsed_s {
        let us = (s.max(0.0) * 1e6).round() as u64;
        hist.saturating_record(us.max(1));
    }
    if hist.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        p50: ms(hist.value_at_quantile(0.50)),
        p90: ms(hist.value_at_quantile(0.90)),
        p99: ms(hist.value_at_quantile(0.99)),
        max: ms(hist.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_reading_counts_the_alternative_of_an_answered_file() {
        let truth = Some(120.0);
        // The estimate right: the alternative does not matter.
        assert!(either_acc1(classify(Some(121.0), 120.0), Some(80.0), truth));
        // The estimate at 3:2, the alternative right (the dotted quarter of a jig).
        assert!(either_acc1(
            classify(Some(180.0), 120.0),
            Some(119.0),
            truth
        ));
        // Both wrong, or no alternative.
        assert!(!either_acc1(
            classify(Some(180.0), 120.0),
            Some(90.0),
            truth
        ));
        assert!(!either_acc1(classify(Some(180.0), 120.0), None, truth));
        // A failed file is wrong, and a row without tempo truth is never right.
        assert!(!either_acc1(ErrorClass::Failed, Some(120.0), truth));
        assert!(!either_acc1(ErrorClass::Other, Some(120.0), None));
        // The 4 % edge as Accuracy1's; a bad alternative is no reading.
        assert!(either_acc1(ErrorClass::Other, Some(124.8), truth));
        assert!(!either_acc1(ErrorClass::Other, Some(124.9), truth));
        assert!(!either_acc1(ErrorClass::Other, Some(f64::NAN), truth));
    }

    #[test]
    fn classes_of_exact_relations() {
        let cases = [
            (120.0, ErrorClass::Ok),
            (240.0, ErrorClass::Double),
            (60.0, ErrorClass::Half),
            (360.0, ErrorClass::Triple),
            (40.0, ErrorClass::Third),
            (80.0, ErrorClass::TwoThirds),
            (180.0, ErrorClass::ThreeHalves),
            (100.0, ErrorClass::Other),
        ];
        for (est, class) in cases {
            assert_eq!(classify(Some(est), 120.0), class, "est {est}");
        }
    }

    #[test]
    fn four_percent_boundary_is_inclusive() {
        assert_eq!(classify(Some(104.0), 100.0), ErrorClass::Ok);
        assert_eq!(classify(Some(96.0), 100.0), ErrorClass::Ok);
        assert_eq!(classify(Some(104.01), 100.0), ErrorClass::Other);
        assert_eq!(classify(Some(95.99), 100.0), ErrorClass::Other);
        assert_eq!(classify(Some(208.0), 100.0), ErrorClass::Double);
        assert_eq!(classify(Some(208.1), 100.0), ErrorClass::Other);
        assert_eq!(classify(Some(48.0), 100.0), ErrorClass::Half);
    }

    #[test]
    fn accuracy_flags_follow_the_class() {
        assert!(ErrorClass::Ok.acc1() && ErrorClass::Ok.acc2());
        for c in [
            ErrorClass::Double,
            ErrorClass::Half,
            ErrorClass::Triple,
            ErrorClass::Third,
        ] {
            assert!(!c.acc1() && c.acc2(), "{c:?}");
        }
        for c in [
            ErrorClass::TwoThirds,
            ErrorClass::ThreeHalves,
            ErrorClass::Other,
            ErrorClass::Failed,
        ] {
            assert!(!c.acc1() && !c.acc2(), "{c:?}");
        }
    }

    #[test]
    fn degenerate_inputs_fail() {
        assert_eq!(classify(None, 120.0), ErrorClass::Failed);
        assert_eq!(classify(Some(f64::NAN), 120.0), ErrorClass::Failed);
        assert_eq!(classify(Some(0.0), 120.0), ErrorClass::Failed);
        assert_eq!(classify(Some(120.0), 0.0), ErrorClass::Failed);
        assert_eq!(classify(Some(120.0), f64::INFINITY), ErrorClass::Failed);
        assert_eq!(fraction(0, 0), 0.0);
        assert_eq!(fraction(3, 4), 0.75);
    }

    #[test]
    fn bands() {
        assert_eq!(tempo_band(59.9), "<60");
        assert_eq!(tempo_band(60.0), "60-90");
        assert_eq!(tempo_band(119.99), "90-120");
        assert_eq!(tempo_band(120.0), "120-150");
        assert_eq!(tempo_band(200.0), "150-200");
        assert_eq!(tempo_band(200.5), ">200");
    }

    #[test]
    fn reliability_bins_count_and_score() {
        let points = [
            (0.05, ErrorClass::Other),
            (0.2, ErrorClass::Ok),
            (0.39, ErrorClass::Double),
            (0.9, ErrorClass::Ok),
            (1.0, ErrorClass::Ok),
            (1.7, ErrorClass::Half),
            (-0.1, ErrorClass::Ok),
            (f64::NAN, ErrorClass::Ok),
        ];
        let bins = reliability(&points, RELIABILITY_BINS);
        let got: Vec<(usize, f64, f64)> = bins.iter().map(|b| (b.n, b.acc1, b.acc2)).collect();
        assert_eq!(
            got,
            [
                (2, 0.5, 0.5),
                (2, 0.5, 1.0),
                (0, 0.0, 0.0),
                (0, 0.0, 0.0),
                (3, 2.0 / 3.0, 1.0),
            ]
        );
        assert_eq!((bins[0].lo, bins[0].hi), (0.0, 0.2));
        assert_eq!((bins[4].lo, bins[4].hi), (0.8, 1.0));
        assert!(reliability(&[], 5).iter().all(|b| b.n == 0));
        assert_eq!(reliability(&points, 0).len(), 1);
    }

    #[test]
    fn karp_flatt_known_numbers() {
        // Perfect speedup: no serial fraction.
        assert!(karp_flatt(4.0, 4).unwrap().abs() < 1e-12);
        // No speedup at all: everything is serial.
        assert!((karp_flatt(1.0, 4).unwrap() - 1.0).abs() < 1e-12);
        // S = 1.8 on 2: e = (1/1.8 - 1/2) / (1/2) = 1/9.
        let e = karp_flatt(1.8, 2).unwrap();
        assert!((e - 1.0 / 9.0).abs() < 1e-12);
        // Amdahl with e = 1/9 on 8 cores: 1 / (1/9 + 8/72) = 4.5.
        assert!((amdahl_speedup(e, 8) - 4.5).abs() < 1e-9);
        // Round trip: Amdahl's speedup gives back its serial fraction.
        let s = amdahl_speedup(0.05, 6);
        assert!((karp_flatt(s, 6).unwrap() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn karp_flatt_degenerate() {
        assert_eq!(karp_flatt(1.0, 1), None);
        assert_eq!(karp_flatt(1.0, 0), None);
        assert_eq!(karp_flatt(0.0, 2), None);
        assert_eq!(karp_flatt(f64::NAN, 2), None);
        assert_eq!(karp_flatt(2.36, 2), None);
        assert_eq!(karp_flatt(0.95, 2), None);
        assert_eq!(karp_flatt(2.0, 2), Some(0.0));
        assert_eq!(amdahl_speedup(0.0, 8), 8.0);
        assert_eq!(amdahl_speedup(1.0, 8), 1.0);
    }

    #[test]
    fn latency_percentiles() {
        assert_eq!(latency_ms(&[]), Latency::default());
        let l = latency_ms(&[0.010, 0.020, 0.030, 1.0]);
        assert!((l.p50 - 20.0).abs() < 0.1, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max);
    }
}
