//! Writes a swing set (the synthetic plan with the off-beat eighth swung from 0.5 to 2/3 of
//! the beat, `offbeat` and `feel` columns in its manifest) to a folder:
//! `cargo run -p synth-music --example write_swing_dataset -- DIR [COUNT] [SECONDS] [SEED]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(
        args.first()
            .expect("usage: write_swing_dataset DIR [COUNT] [SECONDS] [SEED]"),
    );
    let mut spec = synth_music::DatasetSpec::default();
    if let Some(n) = args.get(1) {
        spec.count = n.parse().expect("COUNT is a number");
    }
    if let Some(s) = args.get(2) {
        spec.seconds = s.parse().expect("SECONDS is a number");
    }
    if let Some(k) = args.get(3) {
        spec.seed = k.parse().expect("SEED is a number");
    }
    let items = synth_music::write_swing_dataset(&dir, &spec).expect("swing set written");
    println!("{} files in {}", items.len(), dir.display());
}
