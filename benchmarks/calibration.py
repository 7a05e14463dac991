"""Fitting the time model's coefficients on published timings, and checking how well a fit
generalises: leave one GPU out, leave one source out, anchoring.

Deterministic and plain Python. The loss is the sum over rows of ``sqrt(r**2 + 0.02**2)``, with
``r = ln(predicted / measured)`` (a smooth absolute error of the log ratio: medians, not means,
are what it fits), plus a weak prior that pulls the Fermi and Kepler factors towards 1, so that a
fit whose rows hold no such GPU leaves them at 1. It is minimised by Levenberg-Marquardt on
iteratively reweighted least squares, over the logarithms of the coefficients, from `START`.
"""

from __future__ import annotations

import math
import statistics

import published  # noqa: F401  (puts the checkout on sys.path)

from alexcost.hardware.model import expected_ms
from alexcost.hardware.timemodel import COEFFICIENTS, Coefficients

START = {"conv": 0.7, "winograd": 1.5, "tensor_side": 5.0, "bandwidth": 0.7, "backward": 0.8,
         "eager_kernel_us": 20.0, "fermi": 1.0, "kepler": 1.0}
"""Where every fit starts: round, physically plausible values."""
PRIOR = {"fermi": 1.0, "kepler": 1.0}
"""Coefficients with a prior: the standard deviation of their logarithm around 0 (a factor of 1)."""
EPS = 0.02


def coefficients(x: list[float], provenance: dict | None = None) -> Coefficients:
    return Coefficients(**{n: math.exp(v) for n, v in zip(COEFFICIENTS, x)}, provenance=provenance or {})


def predictions(plans, x) -> list[float]:
    c = coefficients(x)
    return [expected_ms(p, c) for p in plans]


def _residuals(plans, measured, x) -> list[float]:
    r = [math.log(p / m) for p, m in zip(predictions(plans, x), measured)]
    return r + [x[COEFFICIENTS.index(n)] / s for n, s in PRIOR.items()]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """``a x = b`` by Gaussian elimination with partial pivoting (``a`` is small and positive definite)."""
    n = len(b)
    m = [row[:] + [v] for row, v in zip(a, b)]
    for col in range(n):
        piv = max(range(col, n), key=lambda i: abs(m[i][col]))
        m[col], m[piv] = m[piv], m[col]
        for i in range(col + 1, n):
            f = m[i][col] / m[col][col]
            for j in range(col, n + 1):
                m[i][j] -= f * m[col][j]
    x = [0.0] * n
    for i in range(n - 1, -1, -1):
        x[i] = (m[i][n] - sum(m[i][j] * x[j] for j in range(i + 1, n))) / m[i][i]
    return x


def fit(plans, measured, start: dict | None = None, iterations: int = 60) -> tuple[list[float], float]:
    """The coefficients (logarithms, in `COEFFICIENTS` order) that minimise the loss on ``plans``
    against ``measured`` (milliseconds), and the loss."""
    x = [math.log((start or START)[n]) for n in COEFFICIENTS]
    n_rows = len(measured)

    def loss(r):
        return sum(math.sqrt(v * v + EPS * EPS) for v in r[:n_rows]) + sum(v * v for v in r[n_rows:]) / 2

    r = _residuals(plans, measured, x)
    best, lam, h = loss(r), 1e-2, 1e-4
    for _ in range(iterations):
        jac = []
        for j in range(len(x)):
            xp = x[:]
            xp[j] += h
            rp = _residuals(plans, measured, xp)
            jac.append([(a - b) / h for a, b in zip(rp, r)])
        w = [1 / math.sqrt(v * v + EPS * EPS) for v in r[:n_rows]] + [1.0] * (len(r) - n_rows)
        a = [[sum(w[k] * jac[i][k] * jac[j][k] for k in range(len(r))) for j in range(len(x))] for i in range(len(x))]
        g = [sum(w[k] * jac[i][k] * r[k] for k in range(len(r))) for i in range(len(x))]
        for _ in range(12):
            damped = [[a[i][j] + (lam * (a[i][i] + 1e-9) if i == j else 0.0) for j in range(len(x))]
                      for i in range(len(x))]
            step = _solve(damped, [-v for v in g])
            xn = [v + d for v, d in zip(x, step)]
            try:
                rn = _residuals(plans, measured, xn)
            except (OverflowError, ZeroDivisionError, ValueError):
                lam *= 4
                continue
            ln = loss(rn)
            if ln < best:
                x, r, best, lam = xn, rn, ln, max(lam / 3, 1e-7)
                break
            lam *= 4
        else:
            break
        if max(abs(d) for d in step) < 1e-6:
            break
    return x, best


def errors(predicted, measured) -> list[float]:
    return [abs(p / m - 1) for p, m in zip(predicted, measured)]


def summary(predicted, measured) -> dict:
    """Median error, median predicted/measured, rows within 10% and 25%."""
    e = errors(predicted, measured)
    return {"rows": len(e), "median_error": statistics.median(e),
            "median_ratio": statistics.median(p / m for p, m in zip(predicted, measured)),
            "within_10": sum(v <= 0.10 for v in e), "within_25": sum(v <= 0.25 for v in e)}


def held_out(plans, measured, groups, table=None) -> tuple[list[float], list[float]]:
    """Each row predicted by a fit on the rows of the other groups (``groups``: one key per row), and
    the same prediction anchored (`anchored`) to those other rows (given ``table``, the rows)."""
    plain, anchor = [0.0] * len(plans), [0.0] * len(plans)
    for key in sorted(set(groups)):
        train = [i for i, g in enumerate(groups) if g != key]
        x, _ = fit([plans[i] for i in train], [measured[i] for i in train])
        every = predictions(plans, x)
        for i, g in enumerate(groups):
            if g == key:
                plain[i] = every[i]
                anchor[i] = anchored(i, every, measured, table, train) if table is not None else every[i]
    return plain, anchor


def similarity(a, b) -> int:
    """How alike two published rows are, for anchoring: same GPU 4, same dtype 2, same phase 2 (a step
    beside an iteration 1), same batch 1."""
    phase = 2 if a.phase == b.phase else 1 if {a.phase, b.phase} == {"train_step", "train_iteration"} else 0
    return 4 * (a.gpu == b.gpu) + 2 * (a.dtype == b.dtype) + phase + (a.batch == b.batch)


def anchored(i: int, predicted, measured, table, anchors, least: int = 0) -> float:
    """Row ``i``'s prediction scaled to the most similar published rows of the same network among
    ``anchors`` (their measured over predicted time, geometric mean), if any is at least ``least``
    alike; else the prediction itself."""
    same = [j for j in anchors if j != i and table[j].network == table[i].network]
    if not same:
        return predicted[i]
    best = max(similarity(table[i], table[j]) for j in same)
    if best < least:
        return predicted[i]
    chosen = [j for j in same if similarity(table[i], table[j]) == best]
    return predicted[i] * math.exp(statistics.fmean(math.log(measured[j] / predicted[j]) for j in chosen))


def half_splits(plans, measured, table, repeats: int = 10) -> dict:
    """Fits on half the published groups (a source's one network on one GPU), each tested on the other
    half without and with anchoring; medians of the held-out median errors over ``repeats`` splits."""
    import random

    keys = sorted({(r.source_key, r.network, r.gpu) for r in table})
    plain, anchor = [], []
    rng = random.Random(0)
    for _ in range(repeats):
        chosen = set(rng.sample(keys, len(keys) // 2))
        train = [i for i, r in enumerate(table) if (r.source_key, r.network, r.gpu) in chosen]
        test = [i for i in range(len(table)) if i not in set(train)]
        x, _ = fit([plans[i] for i in train], [measured[i] for i in train])
        every = predictions(plans, x)
        plain.append(statistics.median(abs(every[i] / measured[i] - 1) for i in test))
        anchor.append(statistics.median(abs(anchored(i, every, measured, table, train) / measured[i] - 1)
                                        for i in test))
    return {"splits": repeats, "median_error": statistics.median(plain),
            "median_error_anchored": statistics.median(anchor)}
