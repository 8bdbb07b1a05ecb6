//! Writes the synthetic dataset to a folder: `cargo run -p synth-music --example write_dataset -- DIR [COUNT] [SECONDS] [SEED]`.
//! (`eval-cli dataset synth` does the same with more options.)

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(
        args.first()
            .expect("usage: write_dataset DIR [COUNT] [SECONDS] [SEED]"),
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
    let items = synth_music::write_dataset(&dir, &spec).expect("dataset written");
    println!("{} files in {}", items.len(), dir.display());
}
