"""Prints the tempo librosa estimates for one file: `python3 librosa_tempo.py FILE`.

librosa.feature.tempo with its defaults (onset strength autocorrelation, log-normal prior
at 120 BPM) on the file resampled to 22 050 Hz mono. Used by ci/peers.sh as
`cmd:python3 ci/peers/librosa_tempo.py {file}`; one process per file, so the CPU recorded
includes Python's start and the import.
"""

import sys

import librosa


def main() -> None:
    y, sr = librosa.load(sys.argv[1], sr=22050, mono=True)
    print(f"{float(librosa.feature.tempo(y=y, sr=sr)[0]):.3f}")


if __name__ == "__main__":
    main()
