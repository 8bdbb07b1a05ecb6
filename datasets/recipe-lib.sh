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
