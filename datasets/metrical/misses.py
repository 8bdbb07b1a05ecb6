#!/usr/bin/env python3
"""Which songs the leave-one-source-out misses come from.

A source's excerpts of one song share its tempo and its style, so a handful of songs can
make most of a feel's misses: a figure by length reads the same songs at every length.
This groups each miss (Acc1, or with --acc2 only the misses Accuracy2 does not forgive)
by source and song (the file name before `__`, which `eval-cli dataset excerpts` appends),
with the relation of the estimate to the truth, most misses first.

    python3 datasets/metrical/misses.py WORK/features WORK/loso-quarter [--feel swung] [--acc2]

WORK is the folder `build.sh` was given: `features/NAME.csv` holds each file's truth, source
and feel (a row per hypothesis; the first is enough), `loso-BEAT/NAME.loso.csv` each file's
estimate by the model that did not see its source.
"""

import argparse
import collections
import csv
import glob
import os

RELATIONS = [("x2", 2.0), ("x1/2", 0.5), ("x3", 3.0), ("x1/3", 1 / 3), ("3:2", 1.5),
             ("2:3", 2 / 3), ("4:3", 4 / 3), ("3:4", 0.75)]
OCTAVE = {"x2", "x1/2", "x3", "x1/3"}


def relation(truth, bpm):
    """The estimate's relation to the truth within 4 %: ok, a metrical one, or other."""
    ratio = bpm / truth
    if abs(ratio - 1) <= 0.04:
        return "ok"
    for name, factor in RELATIONS:
        if abs(ratio / factor - 1) <= 0.04:
            return name
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("features", help="the features folder build.sh writes")
    parser.add_argument("loso", help="a loso-BEAT folder of train.py --predictions")
    parser.add_argument("--feel", help="only files of this feel (straight, swung, compound)")
    parser.add_argument("--acc2", action="store_true",
                        help="only misses Accuracy2 counts (not x2, x1/2, x3, x1/3)")
    args = parser.parse_args()

    truth = {}
    for path in glob.glob(os.path.join(args.features, "*.csv")):
        name = os.path.basename(path)[: -len(".csv")]
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                truth.setdefault((name, row["file"]),
                                 (float(row["truth"]), row["source"], row["feel"]))

    songs = collections.defaultdict(lambda: [0, collections.Counter()])
    for path in glob.glob(os.path.join(args.loso, "*.loso.csv")):
        name = os.path.basename(path)[: -len(".loso.csv")]
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                known = truth.get((name, row["file"]))
                if known is None:
                    continue
                tempo, source, feel = known
                if args.feel and feel != args.feel:
                    continue
                song = (source, os.path.splitext(row["file"])[0].split("__")[0])
                songs[song][0] += 1
                how = relation(tempo, float(row["bpm"]))
                if how != "ok" and not (args.acc2 and how in OCTAVE):
                    songs[song][1][how] += 1

    missed = sorted(((sum(c.values()), s, n, c) for s, (n, c) in songs.items() if c),
                    key=lambda m: (-m[0], m[1]))
    files = sum(n for n, _ in songs.values())
    total = sum(m[0] for m in missed)
    print(f"{total} misses in {files} files of {len(songs)} songs; "
          f"{len(missed)} songs have a miss")
    for count, (source, song), n, how in missed:
        kinds = ", ".join(f"{k} {v}" for k, v in how.most_common())
        print(f"{count:4d} of {n:3d}  {source:15s} {song}  ({kinds})")


if __name__ == "__main__":
    main()
