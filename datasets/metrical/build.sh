#!/usr/bin/env bash
# Rebuilds the metrical model of analyzer-core (analyzer-core/src/metrical_weights.rs) from
# the development sets, and prints its leave-one-source-out validation.
#
# Usage, from the repository root:
#   bash datasets/metrical/build.sh WORK_DIR [--write]
# Needs: the real-music dev split (../shared/datasets/real-dev), the extra dev split
# (datasets/extra-dev) and the swing dev split (datasets/swing-dev) built, at $REAL_DEV_DIR
# (default ../real-dev-audio), $EXTRA_DEV_DIR (default ../extra-dev-audio) and
# $SWING_DEV_DIR (default ../swing-dev-audio); python3 with numpy (pip install numpy).
# The two sources reserved for independent evaluation (LMMS, openttd-openmsx) are in
# neither split and must never be added here.
set -euo pipefail
work=${1:?usage: build.sh WORK_DIR [--write]}
write=${2:-}
real_dev=${REAL_DEV_DIR:-../real-dev-audio}
extra_dev=${EXTRA_DEV_DIR:-../extra-dev-audio}
swing_dev=${SWING_DEV_DIR:-../swing-dev-audio}
mkdir -p "$work/features"
# The eval-cli that the README's test command builds (a lone `cargo build -p eval-cli`
# resolves features differently and rebuilds polars).
[ -x target/debug/eval-cli ] || cargo test --workspace --no-run --locked
cargo build -p analyzer-core --example metrical_features --locked
cargo build -p synth-music --example write_dataset --locked
cli=target/debug/eval-cli
features=target/debug/examples/metrical_features

# The tuning data: whole tracks and excerpts of 8-30 s from every source (3-15 s from the
# synthetic sets, for loops), so that the model is fitted on short audio as much as on long.
for seed in 1 2 3; do
  [ -f "$work/synth-s$seed/manifest.csv" ] || "$cli" dataset synth --out "$work/synth-s$seed" --count 48 --seed "$seed"
done
# The swung synthetic source: 48 tracks of 45 s, the off-beat eighth from 0.5 to 2/3 of the
# beat. Seed 4 shares no tempo or track seed with the synthetic sets above or the reserved ones.
[ -f "$work/synth-swing/manifest.csv" ] || target/debug/examples/write_dataset --swing "$work/synth-swing" 48 45 4
# The compound synthetic source: 48 jigs and shuffles of 45 s in 6/8 and 12/8, tempo in dotted
# quarters as swing-dev counts its jigs. Seed 5 is used by no other set.
[ -f "$work/synth-compound/manifest.csv" ] || target/debug/examples/write_dataset --compound "$work/synth-compound" 48 45 5
"$cli" dataset excerpts --from "$real_dev/manifest.csv" --seconds 8,10,15,30 --offsets 3 --out "$work/real-dev-ex"
"$cli" dataset excerpts --from "$extra_dev/manifest.csv" --seconds 8,10,15,30 --offsets 3 --out "$work/extra-dev-ex"
"$cli" dataset excerpts --from "$swing_dev/manifest.csv" --seconds 8,10,15,30 --offsets 3 --out "$work/swing-dev-ex"
"$cli" dataset excerpts --from "$work/synth-swing/manifest.csv" --seconds 8,10,15,30 --offsets 3 --out "$work/synth-swing-ex"
"$cli" dataset excerpts --from "$work/synth-compound/manifest.csv" --seconds 8,10,15,30 --offsets 3 --out "$work/synth-compound-ex"
for seed in 1 2; do
  "$cli" dataset excerpts --from "$work/synth-s$seed/manifest.csv" --seconds 3,5,8,10,15 --offsets 3 --out "$work/synth-s$seed-ex"
done

sets=("$real_dev" "$extra_dev" "$work/real-dev-ex" "$work/extra-dev-ex"
      "$work/synth-s1" "$work/synth-s2" "$work/synth-s3" "$work/synth-s1-ex" "$work/synth-s2-ex"
      "$swing_dev" "$work/swing-dev-ex" "$work/synth-swing" "$work/synth-swing-ex"
      "$work/synth-compound" "$work/synth-compound-ex")
csvs=()
for set in "${sets[@]}"; do
  out="$work/features/$(basename "$set").csv"
  "$features" "$set/manifest.csv" > "$out"
  csvs+=("$out")
done
if [ "$write" = --write ]; then
  python3 datasets/metrical/train.py "${csvs[@]}" --predictions "$work/loso" --write analyzer-core/src/metrical_weights.rs
else
  python3 datasets/metrical/train.py "${csvs[@]}" --predictions "$work/loso"
fi
