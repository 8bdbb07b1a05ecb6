#!/usr/bin/env bash
# Ours beside the installed peers on excerpts of a development split, by excerpt length, with
# our leave-one-source-out predictions as one more estimator (the honest figure for a split
# the metrical model was trained on). Writes reports/peers-NAME-excerpts/.
#
#   bash datasets/metrical/build.sh WORK          # excerpts and leave-one-source-out predictions
#   bash ci/peers-excerpts.sh real-dev WORK       # or extra-dev
#
# Peers run on the first of the three offsets of each excerpt length (one excerpt per song
# and length), since Python tools cost seconds per file; see ci/peers.sh for installing them.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: ci/peers-excerpts.sh real-dev|extra-dev WORK}
work=${2:?usage: ci/peers-excerpts.sh real-dev|extra-dev WORK}
cli=${EVAL_CLI:-target/debug/eval-cli}
excerpts=$work/$name-ex
loso=$work/loso/$name-ex.loso.csv
[ -f "$excerpts/manifest.csv" ] && [ -f "$loso" ] || { echo "run datasets/metrical/build.sh $work first" >&2; exit 2; }

subset=$work/$name-ex-o0
side=$work/side-$name
mkdir -p "$subset" "$side"
# file,bpm,... of the first offset, with paths into the excerpt folder.
python3 - "$excerpts/manifest.csv" "$subset/manifest.csv" "$loso" "$side/ours-loso.csv" "$name-ex" <<'PY'
import csv, sys
src, dst, loso, loso_out, folder = sys.argv[1:]
rows = [r for r in csv.DictReader(open(src)) if r["file"].endswith("_o0.wav")]
with open(dst, "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
    w.writeheader()
    for r in rows:
        w.writerow({**r, "file": f"../{folder}/{r['file']}"})
with open(loso_out, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["file", "bpm"])
    for r in csv.DictReader(open(loso)):
        if r["file"].endswith("_o0.wav"):
            w.writerow([f"../{folder}/{r['file']}", r["bpm"]])
PY
bash ci/peers.sh "$subset/manifest.csv" "$work/peers-$name" --workers 2
estimators=(--estimator ours-fit=ours --estimator "ours-loso=csv:$side/ours-loso.csv")
for dir in "$work/peers-$name"/estimators/*; do
  label=${dir##*/}; label=${label#*-}
  [ "$label" = ours ] && continue
  python3 - "$dir/results.csv" "$side/$label.csv" <<'PY'
import csv, sys
w = csv.writer(open(sys.argv[2], "w", newline=""))
w.writerow(["file", "bpm"])
for r in csv.DictReader(open(sys.argv[1])):
    w.writerow([r["file"], r["est_bpm"]])
PY
  estimators+=(--estimator "$label=csv:$side/$label.csv")
done
out=reports/peers-$name-excerpts
rm -rf "$out"
"$cli" evaluate --dataset "$subset/manifest.csv" --out-dir "$out" --progress off --workers 2 "${estimators[@]}"
