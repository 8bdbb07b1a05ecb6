#!/usr/bin/env bash
# Puts the tempo tools installed on this machine beside ours on one dataset, in accuracy and
# in CPU seconds per file: `eval-cli evaluate` with one --estimator per tool found.
#
#   bash ci/peers.sh DATASET OUT_DIR [EXTRA eval-cli ARGS...]
#   bash ci/peers.sh synth reports/peers-synth
#   bash ci/peers.sh ../real-dev-audio/manifest.csv reports/peers-real-dev
#
# Nothing is hard-coded: a tool that is not installed is left out (and said so). Install
# them on Debian 12 with
#   apt-get install aubio-tools bpm-tools soundstretch vamp-examples vamp-plugin-sdk ffmpeg
#   pip install essentia librosa
# Tools that cannot read every format (bpm, soundstretch, the vamp host) get the file
# decoded by ffmpeg first, inside the same command, so its CPU counts against them. The
# Python tools run one process per file: their CPU includes Python's start and imports.
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:?usage: ci/peers.sh DATASET OUT_DIR [ARGS...]}
out=${2:?usage: ci/peers.sh DATASET OUT_DIR [ARGS...]}
shift 2
cli=${EVAL_CLI:-target/debug/eval-cli}
[ -x "$cli" ] || cargo build -p eval-cli --locked

estimators=(--estimator ours)
have() { command -v "$1" >/dev/null 2>&1; }
# add LABEL SPEC: one more estimator, reported under LABEL.
add() { estimators+=(--estimator "$1=$2"); echo "peer $1: $2"; }
skip() { echo "peer not installed, skipped: $1" >&2; }
# Decodes {file} to a temporary 44.1 kHz WAV named $t, runs $1 on it, and cleans up.
via_wav() {
  printf 'cmd:sh -c %q {file}' "t=\$(mktemp --suffix=.wav) && ffmpeg -v quiet -i \"\$0\" -ac 1 -ar 44100 -y \"\$t\" && $1; s=\$?; rm -f \"\$t\"; exit \$s"
}

if have aubio; then add aubio 'cmd:aubio tempo {file}'; else skip aubio; fi
if have bpm && have ffmpeg; then
  add bpm-tools "$(printf 'cmd:sh -c %q {file}' 'ffmpeg -v quiet -i "$0" -f f32le -ac 1 -ar 44100 - | bpm')"
else skip 'bpm (bpm-tools) with ffmpeg'; fi
if have soundstretch && have ffmpeg; then
  add soundstretch "$(via_wav 'soundstretch "$t" -bpm 2>&1 | grep "Detected BPM"')"
else skip 'soundstretch with ffmpeg'; fi
vamp=/usr/lib/x86_64-linux-gnu/vamp
if have vamp-simple-host && [ -f "$vamp/vamp-example-plugins.so" ] && have ffmpeg; then
  add vamp-fixedtempo "$(via_wav "VAMP_PATH=$vamp vamp-simple-host vamp-example-plugins:fixedtempo \"\$t\" 2>/dev/null | tail -n 1")"
else skip 'vamp-simple-host with vamp-examples and ffmpeg'; fi
if python3 -c 'import essentia' 2>/dev/null; then
  add essentia-rhythm2013 'cmd:python3 ci/peers/essentia_tempo.py {file} rhythm'
  add essentia-percival 'cmd:python3 ci/peers/essentia_tempo.py {file} percival'
else skip 'essentia (pip)'; fi
if python3 -c 'import librosa' 2>/dev/null; then
  # numba compiles librosa's kernels on first use; warm its cache outside the measurement.
  python3 -c 'import librosa, numpy; librosa.feature.tempo(y=numpy.random.default_rng(0).standard_normal(22050 * 4), sr=22050)' >/dev/null 2>&1 || true
  add librosa 'cmd:python3 ci/peers/librosa_tempo.py {file}'
else skip 'librosa (pip)'; fi

"$cli" evaluate --dataset "$dataset" --out-dir "$out" --progress off --timeout 300 \
  "${estimators[@]}" "$@"
