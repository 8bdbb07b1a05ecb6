#!/usr/bin/env bash
# The arrows of eval-cli point one way: core -> record -> (cache, evaluation, reports) ->
# front ends (commands) -> main. Checked over the `crate::` and `super::` paths of
# eval-cli/src, as text:
#   1. no module imports a command module (a command is reached from lib.rs alone);
#   2. no cycle between top-level modules;
#   3. no cycle between the files of one module folder (serve/, report/, runner/, ...).
# Exits 1 naming each offending import or cycle. Run by .ci/run; needs grep, sed and tsort.
set -u
cd "$(dirname "$0")/../eval-cli/src"
commands=" analyze check compare consume dataset dist evaluate merge serve tag watch "
status=0

# targets crate|super FILE: the first segment of every `crate::`/`super::` path in FILE,
# inside a group too, over several lines (`use super::{api, events};` names both).
targets() {
  tr '\n' ' ' <"$2" | grep -oE "$1::(\{[^}]*\}|[a-z_]+)" | sed -E "s/^$1:://; s/^\{//; s/\}\$//" |
    tr ',' '\n' | sed -E 's/^[[:space:]]*//; s/[^a-z_].*//' | grep -v '^self$' | grep . | sort -u
}

# The edges: "FROM TO FILE" for each `crate::TO` in each file, FROM its top-level module.
top_of() { local f=${1#./}; f=${f%%/*}; echo "${f%.rs}"; }
edges=$(
  for file in $(find . -name '*.rs' ! -path ./lib.rs ! -path ./main.rs | sort); do
    from=$(top_of "$file")
    targets crate "$file" | while read -r to; do
      [ "$to" = "$from" ] || echo "$from $to $file"
    done
  done
)

while read -r from to file; do
  [ -n "$from" ] || continue
  if [[ $commands == *" $to "* ]]; then
    echo "arrows: ${file#./} imports the command module \`$to\`"
    status=1
  fi
done <<<"$edges"

# tsort prints the members of each loop it finds on stderr.
cycles() { tsort 2>&1 >/dev/null | grep -v 'input contains a loop' | sed 's/^tsort: //' || true; }
loop=$(cut -d' ' -f1,2 <<<"$edges" | cycles)
if [ -n "$loop" ]; then
  echo "arrows: a cycle between top-level modules:" $loop
  status=1
fi

for folder in $(find . -mindepth 1 -maxdepth 1 -type d | sort); do
  inner=$(
    for file in "$folder"/*.rs; do
      from=$(basename "$file" .rs)
      targets super "$file" | while read -r to; do
        [ -f "$folder/$to.rs" ] && [ "$to" != "$from" ] && echo "$from $to"
      done
    done
  )
  loop=$(cycles <<<"$inner")
  if [ -n "$loop" ]; then
    echo "arrows: a cycle between the files of ${folder#./}/:" $loop
    status=1
  fi
done

[ "$status" -eq 0 ] && echo "arrows: no module imports a command, no cycles"
exit "$status"
