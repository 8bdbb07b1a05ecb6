#!/usr/bin/env bash
# Puts the key tools installed on this machine beside ours on one dataset with key truth,
# in weighted score (MIREX and mir_eval), accuracy and CPU seconds per file: `eval-cli
# evaluate` with one --estimator per tool found (estimators.csv has the key columns, the
# report a key table beside the estimators).
#
#   bash ci/peers-key.sh DATASET OUT_DIR [EXTRA eval-cli ARGS...]
#   bash ci/peers-key.sh synth reports/peers-key-synth
#
# Nothing is hard-coded: a tool that is not installed is left out (and said so). Install
# essentia from the Python registry with `pip install essentia`; its KeyExtractor runs once
# per file and profile in a separate process (essentia is AGPL: nothing of it is linked
# into the project), so its CPU includes Python's start and the import.
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:?usage: ci/peers-key.sh DATASET OUT_DIR [ARGS...]}
out=${2:?usage: ci/peers-key.sh DATASET OUT_DIR [ARGS...]}
shift 2
cli=${EVAL_CLI:-target/debug/eval-cli}
[ -x "$cli" ] || cargo build -p eval-cli --locked

estimators=(--estimator ours)
# add LABEL SPEC: one more estimator, reported under LABEL.
add() { estimators+=(--estimator "$1=$2"); echo "peer $1: $2"; }
skip() { echo "peer not installed, skipped: $1" >&2; }

if python3 -c 'import essentia' 2>/dev/null; then
  for profile in edma bgate krumhansl temperley shaath; do
    add "essentia-$profile" "cmd:python3 ci/peers/essentia_key.py {file} $profile"
  done
else skip 'essentia (pip)'; fi

"$cli" evaluate --dataset "$dataset" --out-dir "$out" --progress off --timeout 300 \
  "${estimators[@]}" "$@"
