"""Prints the tempo essentia estimates for one file: `python3 essentia_tempo.py FILE [ALGO]`.

ALGO is `rhythm` (RhythmExtractor2013, multifeature; the default) or `percival`
(PercivalBpmEstimator). Used by ci/peers.sh as `cmd:python3 ci/peers/essentia_tempo.py {file}`.
One process per file, so the CPU the harness records includes Python's start and the import.
"""

import sys

import essentia.standard as es


def main() -> None:
    path = sys.argv[1]
    algo = sys.argv[2] if len(sys.argv) > 2 else "rhythm"
    audio = es.MonoLoader(filename=path, sampleRate=44100)()
    if algo == "percival":
        # A fresh instance per file: a reused one repeats its previous answer unless reset.
        bpm = es.PercivalBpmEstimator(sampleRate=44100)(audio)
    else:
        bpm = es.RhythmExtractor2013(method="multifeature")(audio)[0]
    print(f"{bpm:.3f}")


if __name__ == "__main__":
    main()
