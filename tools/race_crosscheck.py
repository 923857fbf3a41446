"""An independent re-implementation (numpy, scipy) of the race rule and the simulation of
src/eval/race_sim.rs, written from docs/race.md, to check the Rust numbers of
`cargo bench --bench race`. It shares no code and no random stream with them, so the two agree
only in distribution: compare means within their intervals.

Model: k-fold 5 folds x S seeds of the 80 non-test images of 96 (54 positive), 48 configs of the
REALISTIC spread (3 near the top, 6 diverging on odd seeds, 39 mediocre), each answer right with
the config's accuracy independently; a diverged pull answers every image wrong. The rule: first
look after the 5 folds of seed 1, then after each key; the leader is the racing config that can
win (a done pull, a defined precision) first by the Wilson 95% lower bound of its pooled
precision, then precision, then F1, then index; each other racing config is paired with it on
the images both answered where either said yes; dropped when b > c and the two-sided mid-p
McNemar p < alpha/(n(n+1)) at look n (harmonic) or < alpha (constant).

    python3 tools/race_crosscheck.py [--sweeps 1000] [--seed 1]
"""

import argparse
import math

import numpy as np
from scipy.stats import binom

Z = 1.959963984540054
IMAGES, POSITIVES, TEST, FOLDS = 96, 54, 16, 5


def spread():
    top = [0.92, 0.91, 0.90]
    diverging = list(np.linspace(0.80, 0.92, 6))
    mediocre = list(np.linspace(0.70, 0.88, 39))
    acc = np.array(top + diverging + mediocre)
    div = np.array([False] * 3 + [True] * 6 + [False] * 39)
    return acc, div


def true_precision(a, d):
    pi = POSITIVES / IMAGES
    tp = pi * a * (1 - d)
    fp = (1 - pi) * ((1 - a) * (1 - d) + d)
    return tp / (tp + fp)


def wilson_low(k, n):
    if n == 0:
        return None
    p = k / n
    z2 = Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(centre - half, 0.0)


def mid_p(b, c):
    n = b + c
    p = np.ones(len(b))
    some = n > 0
    m = np.minimum(b, c)[some]
    p[some] = np.minimum(1.0, 2 * (binom.cdf(m - 1, n[some], 0.5) + 0.5 * binom.pmf(m, n[some], 0.5)))
    return p


def rank_key(tp, fp, fn):
    """Higher is better: (lower bound, precision, F1); undefined values rank last."""
    low = wilson_low(tp, tp + fp)
    value = tp / (tp + fp) if tp + fp else None
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None
    return tuple(-1.0 if v is None else v for v in (low, value, f1))


def one_sweep(rng, seeds, level):
    acc, div = spread()
    configs = len(acc)
    truth = true_precision(acc, np.where(div, 0.5, 0.0))
    best = int(np.argmax(truth))
    labels = np.arange(IMAGES) < POSITIVES
    pool = rng.permutation(IMAGES)[TEST:]
    folds = [np.sort(pool[f::FOLDS]) for f in range(FOLDS)]
    per_key = len(folds[0])
    keys = [(s, f) for s in range(1, seeds + 1) for f in range(FOLDS)]
    y = np.concatenate([labels[folds[f]] for _, f in keys])  # by answer position
    answered = np.empty((configs, len(y)), bool)
    diverged = np.zeros((configs, len(keys)), bool)
    for k, (s, f) in enumerate(keys):
        sl = slice(k * per_key, (k + 1) * per_key)
        right = rng.random((configs, per_key)) < acc[:, None]
        diverged[:, k] = div & (s % 2 == 1)
        right[diverged[:, k]] = False
        answered[:, sl] = np.where(right, y[sl][None, :], ~y[sl][None, :])
    alive = np.ones(configs, bool)
    dropped_at_keys = np.zeros(configs, int)

    def leader(ids, kk):
        m = kk * per_key
        best_key, best_c = None, None
        for c in ids:
            if diverged[c, :kk].all():
                continue
            a = answered[c, :m]
            tp, fp = int((a & y[:m]).sum()), int((a & ~y[:m]).sum())
            fn = int((~a & y[:m]).sum())
            if tp + fp == 0:
                continue
            key = rank_key(tp, fp, fn)
            if best_key is None or key > best_key:
                best_key, best_c = key, c
        return best_c

    end_keys = len(keys)
    for look, kk in enumerate(range(FOLDS, len(keys) + 1), start=1):
        ids = np.flatnonzero(alive)
        lead = leader(ids, kk)
        if lead is not None and level is not None:
            m = kk * per_key
            others = ids[ids != lead]
            a, o, yy = answered[lead, :m], answered[others, :m], y[:m]
            seen = a[None, :] | o
            right_l, right_o = (a == yy)[None, :], (o == yy)
            b = (seen & right_l & ~right_o).sum(axis=1)
            c = (seen & ~right_l & right_o).sum(axis=1)
            drop = (b > c) & (mid_p(b, c) < level(look))
            alive[others[drop]] = False
            dropped_at_keys[others[drop]] = kk
        if alive.sum() <= 1:
            end_keys = kk
            break
    pulls = sum(dropped_at_keys[c] if not alive[c] else end_keys for c in range(configs))
    chosen = leader(np.flatnonzero(alive), end_keys)
    grid = leader(np.arange(configs), len(keys))
    return pulls / (configs * len(keys)), not alive[best], truth[chosen] - truth[grid]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rules = [
        ("constant 0.05", lambda n: 0.05),
        ("harmonic 0.05", lambda n: 0.05 / (n * (n + 1))),
    ]
    for seeds in (3, 10):
        for name, level in rules:
            rng = np.random.default_rng(args.seed)
            out = np.array([one_sweep(rng, seeds, level) for _ in range(args.sweeps)], float)
            mean = out.mean(axis=0)
            half = Z * out.std(axis=0, ddof=1) / math.sqrt(args.sweeps)
            drops = int(out[:, 1].sum())
            print(
                f"k-fold 5x{seeds} {name}: pulls {100 * mean[0]:.1f}% +- {100 * half[0]:.1f}, "
                f"best dropped {drops}/{args.sweeps} = {100 * mean[1]:.1f}%, "
                f"race - grid {mean[2]:+.4f} +- {half[2]:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
