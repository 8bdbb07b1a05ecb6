#!/usr/bin/env bash
# Do RustFFT's run-time code paths (AVX, SSE4.1, scalar) change our rows? Runs the FFT bit
# hash (analyzer-core example fft_bits) and `eval-cli analyze` on each set natively and
# under qemu-user CPU models without AVX (Nehalem: SSE4.2) and without SSE4.1 (Conroe),
# and counts the rows that differ from the native run.
# usage: bash ci/fft-paths.sh OUT_DIR SET_DIR...   (needs qemu-user: apt-get install qemu-user)
set -euo pipefail
out=$1; shift
mkdir -p "$out"
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 missing: apt-get install -y qemu-user" >&2; exit 2; }
# Both come from the README's test build (`cargo test` builds the examples too).
bits=target/debug/examples/fft_bits
cli=target/debug/eval-cli
[ -x "$cli" ] && [ -x "$bits" ] || { echo "build first: cargo test --workspace --no-run" >&2; exit 2; }
run() { if [ "$1" = native ]; then shift; "$@"; else cpu=$1; shift; qemu-x86_64 -cpu "$cpu" "$@"; fi; }
for cpu in native Nehalem Conroe; do printf '%-8s ' "$cpu"; run "$cpu" "$bits"; done | tee "$out/fft-bits.txt"
echo "set cpu rows differing" | tee "$out/rows.txt"
for dir in "$@"; do
  name=$(basename "$dir")
  for cpu in native Nehalem Conroe; do
    run "$cpu" "$cli" analyze "$dir" --workers 2 --progress off --out "$out/$name-$cpu.csv" 2>/dev/null || true
  done
  for cpu in Nehalem Conroe; do
    rows=$(tail -n +2 "$out/$name-native.csv" | wc -l)
    differing=$(diff <(tail -n +2 "$out/$name-native.csv") <(tail -n +2 "$out/$name-$cpu.csv") | grep -c '^<' || true)
    echo "$name $cpu $rows $differing" | tee -a "$out/rows.txt"
  done
done
