#!/usr/bin/env bash
# Rows of two builds compared byte for byte: the analyze CSV, the shards merged, and
# evaluate's results.csv and summary.json, on each dataset folder given (a folder with a
# manifest.csv: the synthetic set, the real-dev split). A refactor must leave them
# identical; a change that means to alter rows shows here what it altered. A change that
# only adds columns (or summary fields) after the old ones passes when the old ones keep
# their bytes (ci/identity_columns.py), and says what it added.
#
#   bash ci/identity.sh OLD_REV DATASET_DIR...      # builds OLD_REV in a worktree first
#   OLD_BIN=path/to/old/eval-cli bash ci/identity.sh - DATASET_DIR...
#
# The new binary is target/debug/eval-cli (`cargo test --workspace --no-run` builds it).
# Building OLD_REV copies target/ beside it (several GB) so that dependencies are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
new=$root/target/debug/eval-cli
rev=${1:?usage: ci/identity.sh OLD_REV|- DATASET_DIR...}
shift
[ $# -gt 0 ] || { echo "identity: name at least one dataset folder" >&2; exit 2; }
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/old" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$rev" = - ]; then
  old=${OLD_BIN:?set OLD_BIN with -}
else
  git worktree add -q --detach "$work/old" "$rev"
  cp -a target "$work/old/target"
  (cd "$work/old" && cargo build -q -p eval-cli --locked)
  old=$work/old/target/debug/eval-cli
fi

status=0
for data in "$@"; do
  name=$(basename "$data")
  for side in old new; do
    bin=${!side}
    out=$work/rows-$side/$name
    mkdir -p "$out"
    "$bin" analyze "$data" --workers 2 --progress off --out "$out/analyze.csv" >/dev/null 2>&1 || true
    for k in 1 2 3; do
      "$bin" analyze "$data" --shard "$k/3" --progress off --out "$out/part$k.csv" >/dev/null 2>&1 || true
    done
    "$bin" merge "$out"/part{1,2,3}.csv --out "$out/merged.csv" >/dev/null 2>&1 || true
    "$bin" evaluate --dataset "$data/manifest.csv" --out-dir "$out/eval" --progress off >/dev/null 2>&1 || true
  done
  for file in analyze.csv merged.csv eval/results.csv eval/summary.json; do
    if cmp -s "$work/rows-old/$name/$file" "$work/rows-new/$name/$file"; then
      echo "identical  $name/$file"
    elif added=$(python3 "$root/ci/identity_columns.py" "$work/rows-old/$name/$file" "$work/rows-new/$name/$file"); then
      echo "identical  $name/$file in the old columns; added: $added"
    else
      echo "DIFFERS    $name/$file"
      diff "$work/rows-old/$name/$file" "$work/rows-new/$name/$file" | head -10 || true
      status=1
    fi
  done
done
exit "$status"
