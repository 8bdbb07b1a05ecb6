//! One criterion group per analysis stage, then whole files and batches.
//!
//! Every group sets `Throughput::Elements(seconds of audio)`, so criterion's "elements/s"
//! reads as audio-seconds per second: the realtime factor. Inputs are one seeded 30-s
//! synthetic track (rock, 123 BPM, 44.1 kHz stereo) made once before any timed loop, in
//! every format whose encoder is on the PATH (see `bench_suite::Inputs`); a format without
//! its encoder is skipped with a note on stderr.
//!
//! Groups:
//! - `decode/FORMAT`: the decoder alone, mono mixdown included, no analysis;
//! - `mixdown`: stereo to mono of the decoded track;
//! - `resample`: 44.1 kHz mono to the analysis rate;
//! - `onset_envelope`: STFT and spectral flux at the analysis rate;
//! - `tempo`: the tempo estimator on the envelope;
//! - `key/chroma_RATE`: the key's pitch-class votes at the analysis rate; `key/estimate`:
//!   the key from them;
//! - `analyze_file/FORMAT`: one whole file, end to end (decode + tempo and key); and
//!   `analyze_file/wav_tempo_only` without the key;
//! - `batch/workers=N`: 8 FLAC files through the real batch runner (`analyzer_core::batch`,
//!   costliest first): the sequential path for N = 1, a pool of exactly N threads for the
//!   available cores.
//!
//! `analyze_file/FORMAT` minus `decode/FORMAT` is the analysis cost of that file.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use analyzer_core::batch::{Batch, Status, executor_for};
use analyzer_core::decode::{decode_mono, mix_to_mono};
use analyzer_core::resample::MonoResampler;
use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};
use bench_suite::{Format, Inputs, write_batch};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

/// Seconds of audio in the single-track inputs.
const TRACK_SECONDS: f64 = 30.0;
/// Seed of the single track.
const SEED: u64 = 42;
/// Files in a batch.
const BATCH_FILES: usize = 8;

/// Short settings so that the whole suite runs in a few minutes on a 2-core machine.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, audio_seconds: f64) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(audio_seconds.round() as u64));
}

fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerConfig::default()).expect("the default configuration is valid")
}

fn inputs() -> Inputs {
    let inputs = Inputs::create(TRACK_SECONDS, SEED).expect("cannot write benchmark inputs");
    for (format, why) in &inputs.skipped {
        eprintln!("bench-suite: skipping {format} benchmarks: {why}");
    }
    inputs
}

fn stages(c: &mut Criterion) {
    let inputs = inputs();
    let analyzer = analyzer();
    let stop = StopSignal::never();

    let mut group = c.benchmark_group("decode");
    configure(&mut group, inputs.seconds);
    for format in Format::ALL {
        let Some(path) = inputs.file(format) else {
            continue;
        };
        group.bench_function(format.extension(), |b| {
            b.iter(|| {
                decode_mono(black_box(path), &stop, |mono, _rate| {
                    black_box(mono);
                    Ok(())
                })
                .expect("decodes")
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("mixdown");
    configure(&mut group, inputs.seconds);
    let mut mono = Vec::new();
    group.bench_function("stereo", |b| {
        b.iter(|| {
            mix_to_mono(
                black_box(&inputs.samples),
                usize::from(inputs.channels),
                &mut mono,
            )
        })
    });
    group.finish();

    let mono = inputs.mono();
    let rate = analyzer.config().analysis_rate;
    let resample = |mono: &[f32]| {
        let mut resampler = MonoResampler::new(inputs.sample_rate, rate).expect("valid rates");
        let mut out = Vec::with_capacity(mono.len() / 3);
        resampler.push(mono, &mut out).expect("resamples");
        resampler.finish(&mut out).expect("resamples");
        out
    };
    let mut group = c.benchmark_group("resample");
    configure(&mut group, inputs.seconds);
    group.bench_function(format!("{}_to_{rate}", inputs.sample_rate), |b| {
        b.iter(|| resample(black_box(&mono)))
    });
    group.finish();

    let at_analysis_rate = resample(&mono);
    let mut group = c.benchmark_group("onset_envelope");
    configure(&mut group, inputs.seconds);
    group.bench_function(format!("stft_flux_{rate}"), |b| {
        b.iter(|| {
            analyzer
                .onset_detector()
                .envelope(black_box(&at_analysis_rate))
        })
    });
    group.finish();

    let envelope = analyzer.onset_detector().envelope(&at_analysis_rate);
    let mut group = c.benchmark_group("tempo");
    configure(&mut group, inputs.seconds);
    group.bench_function("estimate", |b| {
        b.iter(|| {
            analyzer
                .tempo_estimator()
                .estimate(black_box(&envelope), &stop)
                .expect("estimates")
        })
    });
    group.finish();

    let plan = analyzer.chroma_plan().expect("the key is on by default");
    let chroma = |samples: &[f32]| {
        let mut tracker = plan.tracker();
        tracker.push(samples);
        tracker.finish()
    };
    let mut group = c.benchmark_group("key");
    configure(&mut group, inputs.seconds);
    group.bench_function(format!("chroma_{rate}"), |b| {
        b.iter(|| chroma(black_box(&at_analysis_rate)))
    });
    let votes = chroma(&at_analysis_rate);
    group.bench_function("estimate", |b| {
        b.iter(|| analyzer.key_estimator().estimate(black_box(&votes)))
    });
    group.finish();

    let tempo_only = Analyzer::new(AnalyzerConfig::default().with_key(false))
        .expect("the default configuration is valid");
    let mut group = c.benchmark_group("analyze_file");
    configure(&mut group, inputs.seconds);
    if let Some(path) = inputs.file(Format::Wav) {
        group.bench_function("wav_tempo_only", |b| {
            b.iter(|| {
                tempo_only
                    .analyze_file(black_box(path), &stop)
                    .expect("analyses")
            })
        });
    }
    for format in Format::ALL {
        let Some(path) = inputs.file(format) else {
            continue;
        };
        group.bench_function(format.extension(), |b| {
            b.iter(|| {
                analyzer
                    .analyze_file(black_box(path), &stop)
                    .expect("analyses")
            })
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("bench-suite-{}-batch", std::process::id()));
    let files: Vec<PathBuf> =
        write_batch(&dir, BATCH_FILES, TRACK_SECONDS).expect("cannot write batch inputs");
    let analyzer = analyzer();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut workers = vec![1];
    if cores > 1 {
        workers.push(cores);
    }

    let mut group = c.benchmark_group("batch");
    configure(&mut group, TRACK_SECONDS * BATCH_FILES as f64);
    for n in workers {
        let executor = executor_for(n).expect("thread pool");
        group.bench_function(format!("workers={n}"), |b| {
            b.iter(|| {
                let summary = Batch::new(&analyzer).run(&files, &*executor);
                assert!(summary.results.iter().all(|r| r.status == Status::Ok));
                summary.results
            })
        });
    }
    group.finish();
    // Best effort: a leftover temporary folder is harmless.
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, stages, batch);
criterion_main!(benches);
