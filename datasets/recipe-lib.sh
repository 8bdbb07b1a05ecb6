# Shared by the dataset recipes' build.sh (sourced, not run): stopping with an error, keeping
# audio out of the source tree, installing the Debian packages and checking the tools.

# die MESSAGE...: prints "ERROR: MESSAGE" and stops the recipe with exit status 1.
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# refuse_inside_tree HERE OUT WORK: the tree that holds a recipe folder (HERE, under datasets/)
# must stay free of audio, so neither the output OUT nor the scratch folder WORK may lie in it.
refuse_inside_tree() {
  local here=$1 out=$2 work=$3 tree
  case "$out/" in "$here"/*) die "refusing to write audio into the recipe folder $here; pass an output folder outside it" ;; esac
  if [ "$(basename "$(dirname "$here")")" = datasets ]; then
    tree="$(dirname "$(dirname "$here")")"
    case "$out/" in "$tree"/*) die "refusing to write audio inside $tree (the tree that holds this recipe); pass an output folder outside it" ;; esac
    case "$work/" in "$tree"/*) die "refusing to use a scratch folder inside $tree; set WORK outside it" ;; esac
  fi
}

# install_packages PACKAGE...: apt-get install as root, unless SKIP_APT=1; as another user it
# only says that the packages must already be there.
install_packages() {
  [ "${SKIP_APT:-0}" = 1 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages"
    apt-get update
    apt-get install -y --no-install-recommends "$@"
  else
    echo "== not root: skipping apt-get, the packages must already be installed"
  fi
}

# need_tools TOOL...: stops at the first tool that is not on PATH.
need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "missing tool: $t (install the packages listed in this script)"
  done
}

# renderers_as_nobody WORK: the renderers (mma, abc2midi, fluidsynth) run as user "nobody"
# when the recipe runs as root, with HOME in WORK/home, so that nothing is written into
# /usr/share or /root. Exports HOME and XDG_RUNTIME_DIR.
renderers_as_nobody() {
  local work=$1
  mkdir -p "$work/home/xdg"
  chmod 700 "$work/home/xdg"
  export HOME="$work/home" XDG_RUNTIME_DIR="$work/home/xdg"
  if [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup "$work/home"
    chmod 755 "$work"
    setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$work" \
      || die "user nobody cannot reach $work (choose a WORK folder under /tmp)"
  fi
}

# music21_wheel WORK [WHEEL]: prints the path of the music21 10.5.0 wheel (whose corpus holds
# the ABC collections), checked by its sha256: WHEEL when given (it must be that wheel), else
# WORK/wheel/, downloaded from the Python Package Index when missing.
music21_wheel() {
  local work=$1 given=${2:-}
  local wheel="${given:-$work/wheel/music21-10.5.0-py3-none-any.whl}"
  local sha=9924eff5fbf58490e67cbf3b78a58ba53040e77c281930d354af32a747e94606
  if ! echo "$sha  $wheel" | sha256sum -c --status 2>/dev/null; then
    [ -z "$given" ] || die "$wheel is not the music21 10.5.0 wheel (sha256 $sha)"
    echo "== downloading music21 10.5.0 from the Python Package Index" >&2
    mkdir -p "$work/wheel"
    rm -f "$wheel"
    python3 -m pip download --quiet --no-cache-dir --no-deps --only-binary=:all: --dest "$work/wheel" music21==10.5.0 >&2 \
      || die "pip could not download music21==10.5.0"
    echo "$sha  $wheel" | sha256sum -c --status || die "$wheel does not have the expected sha256 $sha"
  fi
  printf '%s\n' "$wheel"
}
