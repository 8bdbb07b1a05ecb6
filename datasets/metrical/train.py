#!/usr/bin/env python3
"""Trains the metrical model of analyzer-core (src/metrical_weights.rs).

Input: CSV files written by `cargo run -p analyzer-core --example metrical_features --
MANIFEST...`: one row per tempo hypothesis of a file (`group`), its features (`f`, joined
by ';') and `label` = 1 when it lies within 4 % of the true tempo.

The model scores each hypothesis; one file's hypotheses compete in a softmax, and training
maximises the log-probability of the true one (a conditional logit). Two forms:
- `linear`: score = w . x (L2-penalised Newton steps);
- `mlp` (the default, what the analyzer ships): score = v . tanh(W x + b) + u . x over
  standardised features, an ensemble of a few small nets trained by Adam from fixed seeds
  and merged into one wider net (averaging K nets' scores is one net with K times the
  hidden units).
Every source weighs the same in total, so that a large synthetic set does not outvote a
small real one. Validation is leave-one-source-out: each source is scored by a model
fitted on the others, so the figures say how the model does on music like none it was
fitted on. Files whose true tempo is not among the hypotheses count as misses.

Besides each source's figures (by length, and by feel where the source has a `feel` column),
it prints the pooled figures per feel (straight / swung / compound / unlabelled) and what
the misses are: the shares of 3:2 and 2:3, 4:3 and 3:4, octave (x2, x1/2), x3 and x1/3, and
other relations among them.

Files can be scored without being fitted on: `--no-fit-feel compound` leaves every compound
file out of every fit (they are still scored, by the model that never saw them), and
`--no-fit-source NAME` does the same for a source; `--seed-offset K` starts the nets from
other seeds, which measures how much of a difference between two variants is training
noise.

Usage: train.py FEATURES.csv... [--model mlp|linear] [--no-fit-feel FEEL]... [--no-fit-source NAME]...
                [--seed-offset K] [--write analyzer-core/src/metrical_weights.rs]
       train.py --self-test
Needs numpy. Deterministic on one machine (fixed seeds, fixed iteration counts).
"""
import argparse
import csv
import sys
from collections import defaultdict

import numpy as np

HIDDEN = 16
NETS = 3
ITERATIONS = 1500
LEARNING_RATE = 0.02
MLP_L2 = 0.03
LINEAR_L2 = 3.0


def load(paths, features=None):
    """One tuple per file: (source, seconds, X, y, bpms, truth, (features file, file), feel);
    feel is the manifest's (straight / swung / compound) or "unlabelled". With `features`,
    only the first that many features of each row are read."""
    groups = []
    for k, path in enumerate(paths):
        rows = defaultdict(list)
        meta = {}
        with open(path) as fh:
            for r in csv.DictReader(fh):
                key = (k, int(r["group"]))
                rows[key].append(r)
                meta[key] = (r["source"] or path, r["seconds"] or "full", float(r["truth"]), r["file"],
                             r.get("feel") or "unlabelled")
        for key, rs in rows.items():
            X = np.array([[float(v) for v in r["f"].split(";")[:features]] for r in rs])
            y = np.array([int(r["label"]) for r in rs])
            b = np.array([float(r["bpm"]) for r in rs])
            src, secs, truth, name, feel = meta[key]
            groups.append((src, secs, X, y, b, truth, (path, name), feel))
    return groups


def source_weights(groups):
    """Per-file weights that give every source the same total."""
    per_source = defaultdict(int)
    for g in groups:
        per_source[g[0]] += 1
    scale = len(groups) / len(per_source)
    return [scale / per_source[g[0]] for g in groups]


class Linear:
    def __init__(self, groups, l2=LINEAR_L2, iters=50, seed_offset=0):
        d = groups[0][2].shape[1]
        w = np.zeros(d)
        train = [(g[2], g[3], wt) for g, wt in zip(groups, source_weights(groups)) if g[3].sum() > 0]
        for _ in range(iters):
            g = -l2 * w
            H = -l2 * np.eye(d)
            for X, y, weight in train:
                s = X @ w
                p = np.exp(s - s.max())
                p /= p.sum()
                mu = p @ X
                g += weight * ((y / y.sum()) @ X - mu)
                H -= weight * ((X * p[:, None]).T @ X - np.outer(mu, mu))
            step = np.linalg.solve(H, g)
            w = w - step
            if np.abs(step).max() < 1e-9:
                break
        self.w = w

    def scores(self, X):
        return X @ self.w


class Mlp:
    def __init__(self, groups, hidden=HIDDEN, nets=NETS, l2=MLP_L2, iters=ITERATIONS, seed_offset=0):
        weights = source_weights(groups)
        kept = [(g, wt) for g, wt in zip(groups, weights) if g[3].sum() > 0]
        X = np.vstack([g[2] for g, _ in kept])
        gid = np.concatenate([[k] * len(g[2]) for k, (g, _) in enumerate(kept)])
        y = np.concatenate([g[3] / g[3].sum() for g, _ in kept])
        w = np.array([wt for _, wt in kept])
        self.mean = X.mean(0)
        self.scale = X.std(0) + 1e-6
        Xn = (X - self.mean) / self.scale
        seeds = range(seed_offset, seed_offset + nets)
        parts = [self._fit(Xn, gid, y, w, hidden, l2, iters, seed) for seed in seeds]
        # Averaging the nets' scores is one net with all their hidden units.
        self.W = np.hstack([p["W"] for p in parts])
        self.b = np.concatenate([p["b"] for p in parts])
        self.v = np.concatenate([p["v"] for p in parts]) / nets
        self.u = np.mean([p["u"] for p in parts], axis=0)

    @staticmethod
    def _fit(Xn, gid, y, w, hidden, l2, iters, seed):
        rng = np.random.default_rng(seed)
        d = Xn.shape[1]
        n_groups = len(w)
        P = {"W": rng.normal(0, 0.3, (d, hidden)), "b": np.zeros(hidden),
             "v": rng.normal(0, 0.3, hidden), "u": np.zeros(d)}
        m = {k: np.zeros_like(v) for k, v in P.items()}
        s2 = {k: np.zeros_like(v) for k, v in P.items()}
        for it in range(iters):
            h = np.tanh(Xn @ P["W"] + P["b"])
            sc = h @ P["v"] + Xn @ P["u"]
            top = np.full(n_groups, -np.inf)
            np.maximum.at(top, gid, sc)
            e = np.exp(sc - top[gid])
            Z = np.zeros(n_groups)
            np.add.at(Z, gid, e)
            p = e / Z[gid]
            gs = w[gid] * (p - y) / n_groups
            gh = np.outer(gs, P["v"]) * (1 - h * h)
            grads = {"v": h.T @ gs + l2 * P["v"], "u": Xn.T @ gs + l2 * P["u"],
                     "W": Xn.T @ gh + l2 * P["W"], "b": gh.sum(0)}
            for k in P:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                s2[k] = 0.999 * s2[k] + 0.001 * grads[k] ** 2
                mh = m[k] / (1 - 0.9 ** (it + 1))
                vh = s2[k] / (1 - 0.999 ** (it + 1))
                P[k] -= LEARNING_RATE * mh / (np.sqrt(vh) + 1e-8)
        return P

    def scores(self, X):
        Xn = (X - self.mean) / self.scale
        return np.tanh(Xn @ self.W + self.b) @ self.v + Xn @ self.u


# How a wrong estimate relates to the truth (estimate / truth within 4 %), in the order tried.
RELATIONS = [("x2", 2.0), ("x1/2", 0.5), ("x3", 3.0), ("x1/3", 1 / 3),
             ("3:2", 1.5), ("2:3", 2 / 3), ("4:3", 4 / 3), ("3:4", 0.75)]


def relation(est, truth):
    """"right", a name of RELATIONS, or "other".

    >>> relation(100, 100), relation(150, 100), relation(66, 100), relation(76, 100), relation(90, 100)
    ('right', '3:2', '2:3', '3:4', 'other')
    """
    if abs(est - truth) <= 0.04 * truth:
        return "right"
    for name, f in RELATIONS:
        if abs(est - f * truth) <= 0.04 * f * truth:
            return name
    return "other"


def estimate(g, model):
    return g[4][int(np.argmax(model.scores(g[2])))]


def shares(g, model):
    """Each hypothesis of a file with its softmax share, `bpm:share` joined by `;`."""
    sc = model.scores(g[2])
    p = np.exp(sc - sc.max())
    p /= p.sum()
    return ";".join(f"{b:.4f}:{s:.5f}" for b, s in zip(g[4], p))


def accuracy(groups, model):
    hits1 = hits2 = 0
    for g in groups:
        rel = relation(estimate(g, model), g[5])
        hits1 += rel == "right"
        hits2 += rel in ("right", "x2", "x1/2", "x3", "x1/3")
    n = len(groups)
    return n, hits1 / max(n, 1), hits2 / max(n, 1)


def miss_shares(scored):
    """The misses among (relation, ...) rows and the share of each relation among them:
    3:2 and 2:3, 4:3 and 3:4 (the ternary/binary confusions), octave (x2, x1/2), x3 and
    x1/3, other."""
    misses = [r for r in scored if r != "right"]
    kinds = {"3:2/2:3": ("3:2", "2:3"), "4:3/3:4": ("4:3", "3:4"), "x2/x1/2": ("x2", "x1/2"),
             "x3/x1/3": ("x3", "x1/3"), "other": ("other",)}
    n = max(len(misses), 1)
    return len(misses), {k: sum(r in v for r in misses) / n for k, v in kinds.items()}


def length_key(secs):
    return (secs == "full", float(secs) if secs != "full" else 0.0)


def report(groups, model, indent):
    by = defaultdict(list)
    for g in groups:
        by[g[1]].append(g)
    for secs in sorted(by, key=length_key):
        n, a1, a2 = accuracy(by[secs], model)
        print(f"{indent}{secs:>5} s: n {n:4d} acc1 {a1:.3f} acc2 {a2:.3f}")
    feels = defaultdict(list)
    for g in groups:
        feels[g[7]].append(g)
    if len(feels) > 1 or "unlabelled" not in feels:
        for feel in sorted(feels):
            n, a1, a2 = accuracy(feels[feel], model)
            print(f"{indent}{feel:>9}: n {n:4d} acc1 {a1:.3f} acc2 {a2:.3f}")


def print_feels_and_misses(held_out):
    """Pooled leave-one-source-out figures per feel, and what the misses are, from
    (group, relation of its held-out estimate) pairs."""
    feels = defaultdict(list)
    for g, rel in held_out:
        feels[g[7]].append(rel)
    print("by feel, pooled (leave one source out):")
    for feel in sorted(feels) + ["all"]:
        rels = [r for _, r in held_out] if feel == "all" else feels[feel]
        n = len(rels)
        a1 = sum(r == "right" for r in rels) / n
        a2 = sum(r in ("right", "x2", "x1/2", "x3", "x1/3") for r in rels) / n
        misses, shares = miss_shares(rels)
        share_text = " ".join(f"{k} {v:.2f}" for k, v in shares.items())
        print(f"  {feel:12s} n {n:4d} acc1 {a1:.3f} acc2 {a2:.3f}  misses {misses:4d}: {share_text}")


def rust_array(name, values, doc):
    body = ", ".join(f"{v:.9e}" for v in values)
    return f"/// {doc}\nconst {name}: [f64; {len(values)}] = [{body}];\n"


def write_weights(path, model, sources, n):
    with open(path, "w") as fh:
        fh.write("// Generated by datasets/metrical/train.py: do not edit by hand.\n")
        fh.write(f"// Trained on {n} files from the sources: {', '.join(sources)}.\n")
        fh.write(f"/// Hidden units of the net.\nconst HIDDEN: usize = {model.W.shape[1]};\n")
        fh.write(rust_array("MEAN", model.mean, "Feature means (standardisation)."))
        fh.write(rust_array("SCALE", model.scale, "Feature standard deviations."))
        fh.write(rust_array("INPUT", model.W.T.flatten(), "Hidden-unit input weights, one row of FEATURES per unit."))
        fh.write(rust_array("BIAS", model.b, "Hidden-unit biases."))
        fh.write(rust_array("OUTPUT", model.v, "Output weight of each hidden unit."))
        fh.write(rust_array("DIRECT", model.u, "Direct (linear) weight of each standardised feature."))


def main():
    if sys.argv[1:] == ["--self-test"]:
        import doctest
        result = doctest.testmod()
        print(f"self-test: {result.attempted} examples, {result.failed} failed")
        return 1 if result.failed or not result.attempted else 0
    ap = argparse.ArgumentParser()
    ap.add_argument("features", nargs="+")
    ap.add_argument("--model", choices=["mlp", "linear"], default="mlp")
    ap.add_argument("--write")
    ap.add_argument("--no-fit-feel", action="append", default=[], metavar="FEEL",
                    help="score the files of this feel but fit on none of them")
    ap.add_argument("--no-fit-source", action="append", default=[], metavar="NAME",
                    help="score this source but fit on none of its files")
    ap.add_argument("--features", type=int, metavar="N", dest="features_count",
                    help="fit on the first N features of each row (the analyzer's list "
                         "grows at its end; a weight set reads as many as it was fitted on)")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="start the nets from seeds K.. instead of 0.. (training noise)")
    ap.add_argument("--predictions", help="folder for FEATURES.loso.csv files (file, bpm, hypotheses as bpm:share;...): "
                    "each file's estimate by the model that did not see its source, for "
                    "eval-cli evaluate --estimator loso=csv:FILE")
    args = ap.parse_args()
    model_class = Mlp if args.model == "mlp" else Linear

    def fitted(candidates):
        return [g for g in candidates if g[7] not in args.no_fit_feel and g[0] not in args.no_fit_source]

    def make(fit_on):
        return model_class(fitted(fit_on), seed_offset=args.seed_offset)

    groups = load(args.features, args.features_count)
    sources = sorted({g[0] for g in groups})
    print(f"{len(groups)} files from {len(sources)} sources: {', '.join(sources)}; model {args.model}")
    if args.no_fit_feel or args.no_fit_source or args.seed_offset:
        print(f"not fitted on: feels {args.no_fit_feel or '-'}, sources {args.no_fit_source or '-'}; "
              f"seed offset {args.seed_offset}")
    print("leave one source out (each source scored by a model fitted on the others):")
    total = [0, 0.0, 0.0]
    predictions = defaultdict(list)
    held_out = []
    for src in sources:
        held = [g for g in groups if g[0] == src]
        model = make([g for g in groups if g[0] != src])
        for g in held:
            est = estimate(g, model)
            predictions[g[6][0]].append((g[6][1], est, shares(g, model)))
            held_out.append((g, relation(est, g[5])))
        n, a1, a2 = accuracy(held, model)
        total[0] += n
        total[1] += a1 * n
        total[2] += a2 * n
        print(f"  {src:12s} n {n:4d} acc1 {a1:.3f} acc2 {a2:.3f}", flush=True)
        report(held, model, "      ")
    print(f"  {'pooled':12s} n {total[0]:4d} acc1 {total[1] / total[0]:.3f} acc2 {total[2] / total[0]:.3f}")
    print_feels_and_misses(held_out)
    if args.predictions:
        import os
        os.makedirs(args.predictions, exist_ok=True)
        for path, rows in predictions.items():
            out = os.path.join(args.predictions, os.path.basename(path).replace(".csv", ".loso.csv"))
            with open(out, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["file", "bpm", "hypotheses"])
                w.writerows((name, f"{bpm:.4f}", hyp) for name, bpm, hyp in rows)
        print("wrote leave-one-source-out predictions to", args.predictions)
    model = make(groups)
    print("fit on everything (scored on the files it was fitted on):")
    for src in sources:
        n, a1, a2 = accuracy([g for g in groups if g[0] == src], model)
        print(f"  {src:12s} n {n:4d} acc1 {a1:.3f} acc2 {a2:.3f}")
    if args.write:
        if args.model != "mlp":
            sys.exit("--write needs --model mlp: the analyzer runs the net")
        fit = fitted(groups)
        write_weights(args.write, model, sorted({g[0] for g in fit}), len(fit))
        print("wrote", args.write)


if __name__ == "__main__":
    sys.exit(main())
