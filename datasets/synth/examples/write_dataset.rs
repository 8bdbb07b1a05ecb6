//! Writes the synthetic dataset to a folder; with `--swing` the swing set (the same plan
//! with the off-beat eighth swung from 0.5 to 2/3 of the beat, `offbeat` and `feel` columns
//! in its manifest); with `--compound` the compound set (jigs and shuffles in 6/8 and 12/8,
//! tempo in dotted quarters, feel `compound`):
//! `cargo run -p synth-music --example write_dataset -- [--swing|--compound] DIR [COUNT] [SECONDS] [SEED]`.
//! (`eval-cli dataset synth` writes the plain set with more options.)

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let set = match args.first().map(String::as_str) {
        Some(flag @ ("--swing" | "--compound")) => {
            let flag = flag.to_string();
            args.remove(0);
            flag
        }
        _ => String::new(),
    };
    let dir = std::path::PathBuf::from(
        args.first()
            .expect("usage: write_dataset [--swing|--compound] DIR [COUNT] [SECONDS] [SEED]"),
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
    let items = match set.as_str() {
        "--swing" => synth_music::write_swing_dataset(&dir, &spec).expect("swing set written"),
        "--compound" => {
            synth_music::write_compound_dataset(&dir, &spec).expect("compound set written")
        }
        _ => synth_music::write_dataset(&dir, &spec).expect("dataset written"),
    };
    println!("{} files in {}", items.len(), dir.display());
}
