"""Prints the key essentia estimates for one file: `python3 essentia_key.py FILE [--profile P]`.

The answer is one line such as `C# minor` (sharps only, as in datasets/key-dev manifests), from
essentia's KeyExtractor with profile type P: bgate (essentia's default), edma, krumhansl,
temperley or shaath. essentia is AGPL, so it runs as this separate process and is never linked.
Used by ci/peers-key.sh; one process per file, so the CPU it measures includes Python's start
and the import of essentia.
"""

import argparse

import essentia.standard as es

PROFILES = ('bgate', 'edma', 'krumhansl', 'temperley', 'shaath')
SHARPS = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B']
PITCH = {'C': 0, 'D': 2, 'E': 4, 'F': 5, 'G': 7, 'A': 9, 'B': 11}


def sharp_name(tonic: str) -> str:
    """essentia writes Bb, Eb, Ab; the manifests write A#, D#, G#."""
    pc = PITCH[tonic[0]] + tonic.count('#') - tonic.count('b')
    return SHARPS[pc % 12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('file')
    ap.add_argument('--profile', choices=PROFILES, default='bgate')
    args = ap.parse_args()
    audio = es.MonoLoader(filename=args.file, sampleRate=44100)()
    tonic, scale, _strength = es.KeyExtractor(profileType=args.profile, sampleRate=44100)(audio)
    print(f'{sharp_name(tonic)} {scale}')


if __name__ == '__main__':
    main()
