"""Prints the key essentia estimates for one file: `python3 essentia_key.py FILE [PROFILE]`.

PROFILE is one of KeyExtractor's key profiles (`bgate`, the default, `edma`, `krumhansl`,
`temperley`, `shaath`, ...). The line printed, `key: Eb minor`, is what `eval-cli`'s `cmd:`
estimators read a key from. Used by ci/peers-key.sh as
`cmd:python3 ci/peers/essentia_key.py {file} edma`. essentia is AGPL: it runs here as a
separate process, one per file, so the CPU the harness records includes Python's start and
the import; nothing of it is linked into the project.
"""

import sys

import essentia.standard as es


def main() -> None:
    path = sys.argv[1]
    profile = sys.argv[2] if len(sys.argv) > 2 else "bgate"
    audio = es.MonoLoader(filename=path, sampleRate=44100)()
    key, scale, _strength = es.KeyExtractor(profileType=profile, sampleRate=44100)(audio)
    print(f"key: {key} {scale}")


if __name__ == "__main__":
    main()
