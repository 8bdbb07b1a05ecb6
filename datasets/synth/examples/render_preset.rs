//! Renders one golden preset to a 16-bit WAV file (used to make the committed format fixtures):
//! `cargo run -p synth-music --example render_preset -- NAME SECONDS RATE OUT.wav`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, seconds, rate, out] = args.as_slice() else {
        eprintln!("usage: render_preset NAME SECONDS RATE OUT.wav");
        std::process::exit(2);
    };
    let Some((_, spec)) = synth_music::presets::all()
        .into_iter()
        .find(|(n, _)| n == name)
    else {
        eprintln!("unknown preset {name}");
        std::process::exit(2);
    };
    let spec = spec
        .with_seconds(seconds.parse().expect("SECONDS is a number"))
        .with_sample_rate(rate.parse().expect("RATE is a number"));
    let samples = synth_music::render(&spec);
    synth_music::write_wav(out.as_ref(), &samples, spec.sample_rate, spec.channels)
        .expect("WAV written");
}
