"""The paper's claims (LS4 §5), decided by the rules of :mod:`workbench.core.claims` from measured arrays.

Pure functions of what a run measured, so each decision is tested on constructed inputs:

- :func:`generation_claims`: on one data source, LS4's samples against the Latent ODE's on the marginal score
  (lower is better), the classification score (higher) and the prediction score (lower) (LS4 §5.1, abstract:
  "significantly outperforms previous continuous-time generative models in terms of marginal distribution,
  classification, and prediction scores"). When the classifier separates both arms' samples almost perfectly
  (:data:`CLASSIFIER_FLOOR`), the classification claim is inconclusive (precondition). One run has one seed,
  so each effect is a paired percentile bootstrap over the examples the score averages: generated series
  (marginal), the classifier's held-out series (classification), real test series (prediction).
- :func:`sharp_claim`: on sharp-transition data, the 1-Wasserstein distance of the step-to-step jump distribution
  |x_{t+1} − x_t| to the real one, LS4 against the Latent ODE (LS4 §5, stiff data).
- :func:`timing_claims`: LS4's own log-log slope of time per training step over L against the slope of L log L;
  the Latent ODE / LS4 ratio at the longest L (beside the paper's ×100); the growth of that ratio with L.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from workbench.core.claims import Claim, Effect, exceeds, superior, t_quantile

from . import metrics as M

#: The paper's speed-up of LS4 over ODE-based baselines on long sequences (abstract: "×100 faster").
PAPER_SPEEDUP = 100.0
#: Below this held-out cross-entropy for BOTH arms the real-vs-generated classifier tells every series apart (it
#: puts ~95 % or more on the right class): the classification comparison is then uninformative, so inconclusive.
CLASSIFIER_FLOOR = 0.05
#: score: (title, better, what a bootstrap resamples)
SCORES = {"marginal": ("marginal score", "lower", "generated series"),
          "classification": ("classification score", "higher", "held-out series of the real-vs-generated classifier"),
          "prediction": ("prediction score", "lower", "real series the forecaster is tested on")}


def _diff_of_means(a: Tensor, b: Tensor) -> float:
    d = a - b
    d = d[torch.isfinite(d)]
    return float(d.mean()) if len(d) else float("nan")


def generation_claims(source: str, real: Tensor, real_mask: Tensor | None, arms: dict[str, dict[str, Tensor]],
                      generator: torch.Generator, *, real_series: bool, detail: str = "", resamples: int = 1000,
                      method: str = "LS4", arm: str = "Latent ODE") -> list[Claim]:
    """The three generation claims on ``source``. ``arms`` maps ``"method"`` and ``"arm"`` to their measurements:
    ``generated`` (n, L, C) samples scored for the marginal score against ``real`` (with ``real_mask``),
    ``classification`` (per held-out example losses, the same examples for both) and ``prediction`` (per real
    series errors, the same series for both). Effects are method − arm."""
    a, b = arms["method"], arms["arm"]
    kind = "real series" if real_series else "synthetic sharp-transition series"
    out = []
    for score, (title, better, over) in SCORES.items():
        if score == "marginal":
            def stat(ga: Tensor, gb: Tensor) -> float:
                return (M.marginal_score(real, ga, mask=real_mask) - M.marginal_score(real, gb, mask=real_mask))

            n = min(len(a["generated"]), len(b["generated"]))
            samples: Sequence[Tensor] = (a["generated"][:n], b["generated"][:n])
        else:
            stat = _diff_of_means
            samples = (a[score].double(), b[score].double())
        effect = Effect.bootstrap(stat, *samples, generator=generator, resamples=resamples, unit=over)
        effect = replace(effect, how=f"paired {effect.how}; the score models' own training noise is not resampled")
        precondition = (math.isfinite(effect.value), f"the {title} is not finite for one of the arms")
        if score == "classification" and precondition[0]:
            means = [float(a[score].double().mean()), float(b[score].double().mean())]
            precondition = (max(means) >= CLASSIFIER_FLOOR,
                            f"the classifier separates both arms' samples from real series almost perfectly "
                            f"(held-out cross-entropy {means[0]:.4f} and {means[1]:.4f}, both below "
                            f"{CLASSIFIER_FLOOR}): neither fools it, the difference says nothing")
        word = "lower" if better == "lower" else "higher"
        out.append(superior(
            f"On {source} ({kind}) {method}'s samples reach a {word} {title} than the {arm}'s",
            method, arm, effect, better=better, precondition=precondition,
            detail=detail, paper="LS4 §5.1 (Monash generation: marginal, classification, prediction scores); "
                                 "the abstract: LS4 significantly outperforms continuous-time generative models"))
    return out


def sharp_claim(source: str, real: Tensor, generated_method: Tensor, generated_arm: Tensor,
                generator: torch.Generator, *, sharp_data: bool, detail: str = "", resamples: int = 500,
                method: str = "LS4", arm: str = "Latent ODE") -> Claim:
    """LS4 keeps the sharp transitions the Latent ODE smooths: W1(jumps of LS4's samples, real jumps) −
    W1(Latent ODE's, real), bootstrap over generated series; lower is better. A source without sharp transitions
    makes the claim inconclusive (precondition)."""
    dr = np.sort(np.abs(np.diff(real.double().cpu().numpy(), axis=1)).ravel())

    def w1(g: Tensor) -> float:
        return _w1_sorted(dr, np.abs(np.diff(g.double().cpu().numpy(), axis=1)).ravel())

    n = min(len(generated_method), len(generated_arm))
    effect = Effect.bootstrap(lambda ga, gb: w1(ga) - w1(gb), generated_method[:n], generated_arm[:n],
                              generator=generator, resamples=resamples, unit="generated series")
    return superior(f"On {source}, {method}'s samples keep the sharp transitions the {arm} smooths: their "
                    "step-to-step jumps |x_{t+1} − x_t| are closer (1-Wasserstein) to the real jumps",
                    method, arm, effect, better="lower",
                    precondition=(sharp_data, f"{source} has no sharp transitions by construction (a real series)"),
                    detail=detail, paper="LS4 §5 (data with sharp transitions; ODE-based models smooth them)")


def _w1_sorted(sorted_a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance between two 1-D samples, ``sorted_a`` already sorted (∫|F_a − F_b|)."""
    b = np.sort(b)
    grid = np.concatenate([sorted_a, b])
    grid.sort(kind="mergesort")
    deltas = np.diff(grid)
    fa = np.searchsorted(sorted_a, grid[:-1], side="right") / len(sorted_a)
    fb = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * deltas))


def loglog_slope(lengths: Sequence[float], seconds: Sequence[float], level: float = 0.95) -> Effect:
    """Least-squares slope of log(seconds) on log(L) with its Student-t interval (n − 2 degrees of freedom)."""
    x, y = np.log(np.asarray(lengths, dtype=float)), np.log(np.maximum(np.asarray(seconds, dtype=float), 1e-12))
    n = len(x)
    if n < 3 or len(set(x.tolist())) < 2:
        value = float(np.polyfit(x, y, 1)[0]) if n >= 2 and len(set(x.tolist())) >= 2 else float("nan")
        return Effect(value, -math.inf, math.inf, "value", 1, n, f"{n} timings: too few for an interval", level)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    se = math.sqrt(float(resid @ resid) / (n - 2) / float(((x - x.mean()) ** 2).sum()))
    half = t_quantile(level, n - 2) * se
    return Effect(float(slope), float(slope - half), float(slope + half), "value", 1, n,
                  f"least-squares t interval over {n} timings ({len(set(x.tolist()))} lengths × rounds)", level)


def nlogn_slope(lengths: Sequence[float]) -> float:
    """The log-log least-squares slope of L log L itself over ``lengths`` (1 + about 1/ln L)."""
    L = np.asarray(sorted(set(lengths)), dtype=float)
    if len(L) < 2:
        return float("nan")
    return float(np.polyfit(np.log(L), np.log(L * np.log(L)), 1)[0])


def timing_claims(rows: list[dict[str, Any]], *, detail: str = "", level: float = 0.95) -> list[Claim]:
    """Claims from the timing rows (``method``, ``length``, ``rounds``: seconds of each interleaved round)."""
    def pts(method: str) -> tuple[list[float], list[float], dict[int, list[float]]]:
        by = {int(r["length"]): list(r["rounds"]) for r in rows if r["method"] == method}
        xs = [float(L) for L, v in by.items() for _ in v]
        ys = [t for v in by.values() for t in v]
        return xs, ys, by

    lx, ly, ls4 = pts("ls4")
    _, _, ode = pts("latent_ode")
    lengths = sorted(set(ls4) & set(ode))
    out = []
    ref = nlogn_slope(lx) if lx else float("nan")
    slope = loglog_slope(lx, ly, level)
    out.append(exceeds(
        "LS4's time per training step grows no faster than L log L (convolution by FFT; log-log slope at most "
        f"that of L log L over the same lengths, {ref:.2f})", slope, ref, better="lower", method="LS4",
        arm="slope of L log L", precondition=(len(set(lx)) >= 2, "LS4 was timed at fewer than two lengths"),
        detail=(f"LS4 log-log slope {slope.value:.2f} [{slope.low:.2f}, {slope.high:.2f}] against {ref:.2f} for "
                "L log L; a slope well below 1 means fixed per-step costs still dominate at these lengths. " + detail),
        paper="LS4 §4 (convolutional training, O(L log L))"))
    if not lengths:
        return out
    L = lengths[-1]
    pairs = list(zip(ode[L], ls4[L]))
    logr = Effect.paired([math.log(a) for a, _ in pairs], [math.log(b) for _, b in pairs], level=level)
    ratio = Effect(math.exp(logr.value), math.exp(logr.low) if math.isfinite(logr.low) else 0.0,
                   math.exp(logr.high) if math.isfinite(logr.high) else math.inf, "ratio", 1, len(pairs),
                   f"geometric mean of the per-round ratios, t interval of the log ratio over {len(pairs)} rounds",
                   level)
    per_L = ", ".join(f"{_gm([a / b for a, b in zip(ode[k], ls4[k])]):.1f}× at L={k}" for k in lengths)
    out.append(exceeds(
        f"LS4 trains faster than the Latent ODE on the longest sequences timed (L={L}); the paper reports "
        f"×{PAPER_SPEEDUP:.0f} on long sequences", ratio, 1.0, method="LS4", arm="Latent ODE",
        detail=(f"Latent ODE / LS4 time per step: {per_L} (paper: ~{PAPER_SPEEDUP:.0f}× on long sequences, GPU, "
                "adaptive-step ODE baselines). " + detail),
        paper=f"LS4 abstract and §5 (×{PAPER_SPEEDUP:.0f} faster than other baselines on long sequences)"))
    xs = [float(k) for k in lengths for _ in zip(ode[k], ls4[k])]
    ys = [a / b for k in lengths for a, b in zip(ode[k], ls4[k])]
    growth = loglog_slope(xs, ys, level)
    out.append(exceeds(
        "The Latent ODE's cost grows faster with L than LS4's: the Latent ODE / LS4 ratio rises with L "
        "(log-log slope of the ratio above 0)", growth, 0.0, method="Latent ODE / LS4", arm="constant ratio",
        precondition=(len(lengths) >= 2, "fewer than two lengths timed for both models"),
        detail=f"log-log slope of the ratio {growth.value:.2f} (= Latent ODE slope − LS4 slope). " + detail,
        paper="LS4 §5 (ODE solvers step sequentially through the sequence; LS4 convolves)"))
    return out


def _gm(values: Sequence[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))
