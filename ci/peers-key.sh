#!/usr/bin/env bash
# Runs essentia's KeyExtractor, once per profile, over every file of a key manifest, and scores it.
#
#   bash ci/peers-key.sh MANIFEST OUT_DIR
#   bash ci/peers-key.sh /work/key-dev-audio/manifest.csv reports/peers-key-dev
#
# Writes OUT_DIR/essentia-key.csv (`file,profile,key,cpu_s`) and OUT_DIR/README.md (MIREX and
# mir_eval weighted scores, exact accuracy and CPU per file, per profile, per excerpt length and
# per source; scored by ci/peers/score_key.py). MANIFEST is a key-dev manifest.csv
# (`file,key,source,tune,length_s,...`, files relative to its folder).
# essentia (AGPL) runs as a separate process per file (ci/peers/essentia_key.py), so cpu_s
# (user + system, from /usr/bin/time) includes Python's start and the import of essentia.
# Install it outside the tree:  python3 -m venv /work/peers-venv && /work/peers-venv/bin/pip install essentia
# Environment:
#   PEERS_PYTHON=PATH  the Python that has essentia (default /work/peers-venv/bin/python, else python3)
#   PROFILES="..."     profile types to run (default: bgate edma krumhansl temperley shaath)
#   JOBS=N             files analysed at once (default 2)
#   EVERY=N            only every Nth tune of the manifest (all of its excerpts), default 1: all
# Resumable: each answer is kept under OUT_DIR/.runs/ and not computed again; delete OUT_DIR to
# start over. A file essentia cannot read gets an empty key (scored 0) and its error is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=${1:?usage: ci/peers-key.sh MANIFEST OUT_DIR}
out=${2:?usage: ci/peers-key.sh MANIFEST OUT_DIR}
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

py=${PEERS_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x /work/peers-venv/bin/python ]; then py=/work/peers-venv/bin/python; else py=python3; fi
fi
"$py" -c 'import essentia' 2>/dev/null || die "$py cannot import essentia (pip install essentia into a venv; set PEERS_PYTHON)"
python3 ci/peers/score_key.py --self-test >/dev/null || die "ci/peers/score_key.py --self-test fails"
[ -x /usr/bin/time ] || die "missing /usr/bin/time (package time)"
[ -f "$manifest" ] || die "no such manifest: $manifest"
head -n 1 "$manifest" | grep -q '^file,key,source,tune,length_s,' \
  || die "$manifest: expected a key manifest with columns file,key,source,tune,length_s,..."
profiles=${PROFILES:-bgate edma krumhansl temperley shaath}
jobs=${JOBS:-2}
every=${EVERY:-1}
audio_dir=$(cd "$(dirname "$manifest")" && pwd -P)
mkdir -p "$out/.runs"
out=$(cd "$out" && pwd -P)

# The files to analyse, in manifest order; with EVERY=N only every Nth tune (by its first row).
files=$(python3 - "$manifest" "$every" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
tunes = list(dict.fromkeys(r['tune'] for r in rows))
keep = set(tunes[::int(sys.argv[2])])
print('\n'.join(r['file'] for r in rows if r['tune'] in keep))
PY
)
n=$(wc -l <<<"$files")
echo "== $n files x profiles ($profiles), $jobs at once, essentia from $py"

# one_run PROFILE FILE: writes .runs/PROFILE/FILE.row once (`file,profile,key,cpu_s`).
one_run() {
  local profile=$1 file=$2 row="$out/.runs/$1/$2.row" t key
  [ -s "$row" ] && return 0
  t=$(mktemp)
  if key=$(/usr/bin/time -f '%U %S' -o "$t" "$py" ci/peers/essentia_key.py "$audio_dir/$file" --profile "$profile" 2>"$t.err"); then :; else
    printf 'essentia failed on %s (%s): %s\n' "$file" "$profile" "$(grep -v INFO "$t.err" | tail -n 1)" >&2
    key=''
  fi
  printf '%s,%s,%s,%s\n' "$file" "$profile" "$key" "$(awk 'END { printf "%.2f", $1 + $2 }' "$t")" > "$row.tmp"
  mv "$row.tmp" "$row"
  rm -f "$t" "$t.err"
}
export -f one_run
export out py audio_dir

t0=$SECONDS
for p in $profiles; do
  mkdir -p "$out/.runs/$p"
  printf '%s\n' "$files" | sed "s|^|$p\t|" | tr '\n' '\0' \
    | xargs -0 -P "$jobs" -I{} bash -c 'IFS=$'"'\t'"' read -r p f <<<"$1"; one_run "$p" "$f"' _ {}
  echo "   $p done ($((SECONDS - t0)) s)"
done

{
  echo 'file,profile,key,cpu_s'
  for p in $profiles; do
    while IFS= read -r f; do cat "$out/.runs/$p/$f.row"; done <<<"$files"
  done
} > "$out/essentia-key.csv.tmp"
mv "$out/essentia-key.csv.tmp" "$out/essentia-key.csv"

version=$("$py" -c 'import essentia; print(essentia.__version__)' 2>/dev/null)
settings=''
[ "$every" != 1 ] && settings+="EVERY=$every "
[ -n "${PROFILES:-}" ] && settings+="PROFILES=\"$profiles\" "
{
  echo "# essentia KeyExtractor on $(basename "$(dirname "$manifest")")/$(basename "$manifest")"
  echo
  echo "essentia $version, KeyExtractor with its default settings but the profile type; one process per"
  echo "file, so the CPU includes Python's start and the import of essentia (about 0.7 s of the figure)."
  echo "$n files$([ "$every" != 1 ] && echo ": 1 tune in $every (in manifest order) with all its excerpts"); profiles: $profiles."
  echo 'Made by `'"$settings"'bash ci/peers-key.sh '"$manifest $2"'`; the answers are in essentia-key.csv.'
  echo
  echo 'MIREX: same key 1, perfect fifth above or below (same mode) 0.5, relative 0.3, parallel 0.2.'
  echo 'mir_eval: as mir_eval 0.8.2 `weighted_score` (only a fifth above earns 0.5). exact: same key.'
  echo '"no answer": essentia failed on the file (scored 0).'
  python3 ci/peers/score_key.py "$manifest" "$out/essentia-key.csv"
  echo
  echo '## Run'
  echo
  echo "$(nproc) CPU cores, $jobs files at once. The answers took $(awk -F, 'NR > 1 { s += $4 } END { printf "%.0f", s }' "$out/essentia-key.csv") CPU s in all (the sum of cpu_s);"
  echo "this pass took $((SECONDS - t0)) s wall (answers kept in .runs/ from an earlier pass are not"
  echo "computed again), load average $(cut -d' ' -f1-3 /proc/loadavg) at its end."
} > "$out/README.md"
echo "== wrote $out/essentia-key.csv and $out/README.md in $((SECONDS - t0)) s"
