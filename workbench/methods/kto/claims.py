"""The paper's claims as decisions on measured evaluations, by the rules of :mod:`workbench.core.claims`.

An evaluation is a dict ``{"step", "kl", "rate", "desirable": [...], "log_ratio": [...]}``: per sampled prompt
(the same prompts, in the same order, for every evaluation and method) the verdict and log πθ(y|x) − log πref(y|x),
whose mean is the sampled KL̂. Comparisons of two methods follow their reward-versus-KL frontiers (the paper's
Fig. 3 compares methods at matched KL):

- **measured KL ranges overlap**: the effect is the mean, over the matched KL values in the common range (each
  method's own evaluations inside it), of method − arm desirable rate, each interpolated between its own
  neighbouring evaluations (never from the reference point); its interval is a bootstrap over the sampled
  prompts that recomputes both methods' KL̂ and rates, so the KL's own noise is in it;
- **no overlap**: the method with the lower KL range (L) at its best evaluation is compared with the other (H) at
  its lowest-KL evaluation (a Newcombe interval of two rates). L at least as good there reaches H's reward at a
  fraction of H's KL: a dominance, which extends to matched KL when H's path rises from the reference (it starts
  at the reference's rate at KL 0). L worse there is a trade-off, not a matched-KL result: inconclusive, said so.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from workbench.core.claims import Claim, Effect, decide, exceeds, not_worse, superior

PAPER = "Ethayarajh et al. 2024, KTO: Model Alignment as Prospect Theoretic Optimization"


# -- frontier comparison ---------------------------------------------------------------------------------------
def _stack(evals: Sequence[dict[str, Any]], key: str) -> torch.Tensor:
    return torch.tensor([[float(x) for x in e[key]] for e in evals], dtype=torch.float64).T  # (samples, evals)


def _curve(rates: np.ndarray, kls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(kls, kind="stable")
    return kls[order], rates[order]


def matched_gap(d_a: torch.Tensor, l_a: torch.Tensor, d_b: torch.Tensor, l_b: torch.Tensor) -> float:
    """Mean over matched KL values of rate_a − rate_b (``d_*``: per-sample verdicts, ``l_*``: per-sample log-ratios,
    one column per evaluation); NaN when the two measured KL ranges do not overlap."""
    (ka, ra), (kb, rb) = (_curve(d.mean(0).numpy(), l_.mean(0).numpy()) for d, l_ in ((d_a, l_a), (d_b, l_b)))
    lo, hi = max(ka[0], kb[0]), min(ka[-1], kb[-1])
    if lo > hi:
        return float("nan")
    grid = np.unique(np.concatenate([ka[(ka >= lo) & (ka <= hi)], kb[(kb >= lo) & (kb <= hi)]]))
    return float(np.mean(np.interp(grid, ka, ra) - np.interp(grid, kb, rb)))


def frontier_claim(statement: str, method: str, arm: str, evals_m: Sequence[dict[str, Any]],
                   evals_a: Sequence[dict[str, Any]], *, generator: torch.Generator, rule: str = "superior",
                   margin: float = 0.0, resamples: int = 2000, detail: str = "", paper: str = PAPER) -> Claim:
    """``method`` against ``arm`` on the reward-versus-KL frontier (see the module docstring).

    rule: ``"superior"`` (method beats arm by more than ``margin``) or ``"not_worse"`` (method is not worse by
    more than ``margin``: non-inferiority, a separately named claim)."""
    if rule not in ("superior", "not_worse"):
        raise ValueError(f"rule = {rule!r}; one of superior, not_worse")
    decide_with = superior if rule == "superior" else not_worse
    bound = margin if rule == "superior" else -margin
    if not evals_m or not evals_a:
        return Claim(statement, method, arm, None, f"{rule} on the reward-vs-KL frontier", "inconclusive",
                     f"no evaluation of {method if not evals_m else arm}", detail, paper)
    km = np.array([e["kl"] for e in evals_m], dtype=float)
    ka = np.array([e["kl"] for e in evals_a], dtype=float)
    rm = np.array([e["rate"] for e in evals_m], dtype=float)
    ra = np.array([e["rate"] for e in evals_a], dtype=float)
    ranges = (f"{method} measured at KL {km.min():.3g}–{km.max():.3g} nats (rate {rm.min():.2f}–{rm.max():.2f}, "
              f"{len(km)} evaluations), {arm} at KL {ka.min():.3g}–{ka.max():.3g} (rate {ra.min():.2f}–{ra.max():.2f}, "
              f"{len(ka)})")
    lo, hi = max(km.min(), ka.min()), min(km.max(), ka.max())
    if lo <= hi:  # matched KL: bootstrap over the sampled prompts
        samples = [_stack(evals_m, "desirable"), _stack(evals_m, "log_ratio"),
                   _stack(evals_a, "desirable"), _stack(evals_a, "log_ratio")]
        effect = Effect.bootstrap(matched_gap, *samples, generator=generator, resamples=resamples)
        text = (f"matched KL in [{lo:.3g}, {hi:.3g}] nats: mean {method} − {arm} desirable rate "
                f"{effect.value:+.3f} [{effect.low:+.3f}, {effect.high:+.3f}]; {ranges}")
        return decide_with(statement, method, arm, effect, margin=margin, detail=_join(text, detail), paper=paper)
    # disjoint KL ranges: the lower-KL method's best evaluation against the other's lowest-KL one
    method_low = km.max() < ka.min()
    low_evals, high_evals = (evals_m, evals_a) if method_low else (evals_a, evals_m)
    low_name, high_name = (method, arm) if method_low else (arm, method)
    best = max(range(len(low_evals)), key=lambda i: (low_evals[i]["rate"], -low_evals[i]["kl"]))
    first = min(range(len(high_evals)), key=lambda i: high_evals[i]["kl"])
    lb, hf = low_evals[best], high_evals[first]
    n_l, n_h = len(lb["desirable"]), len(hf["desirable"])
    k_l, k_h = int(round(sum(map(float, lb["desirable"])))), int(round(sum(map(float, hf["desirable"]))))
    effect = Effect.proportions(k_l, n_l, k_h, n_h) if method_low else Effect.proportions(k_h, n_h, k_l, n_l)
    outcome = decide(effect, bound)
    reaching = [e for e in low_evals if e["rate"] >= hf["rate"]]
    if reaching:
        cheapest = min(reaching, key=lambda e: e["kl"])
        frac = (f"{cheapest['kl'] / hf['kl']:.0%} of" if hf["kl"] > 0 and cheapest["kl"] > 0 else "less than")
        dominance = (f"{low_name} reaches {high_name}'s lowest-KL desirable rate ({hf['rate']:.2f} at KL "
                     f"{hf['kl']:.3g}) with {cheapest['rate']:.2f} at KL {cheapest['kl']:.3g}: {frac} its KL")
    else:
        dominance = (f"{low_name}'s best rate {lb['rate']:.2f} (KL {lb['kl']:.3g}) stays below {high_name}'s "
                     f"lowest-KL rate {hf['rate']:.2f} (KL {hf['kl']:.3g}): no dominance, a trade-off")
    text = (f"KL ranges do not overlap; {low_name} best vs {high_name} lowest-KL: {method} − {arm} "
            f"{effect.value:+.3f} [{effect.low:+.3f}, {effect.high:+.3f}]; {dominance}; {ranges}")
    # a dominance of the lower-KL method speaks for matched KL; the other direction is a trade-off
    valid = outcome == "inconclusive" or (outcome == "holds") == method_low
    reason = (f"KL ranges do not overlap and the lower-KL {low_name} is {'worse' if outcome == 'holds' else 'not better'}"
              f" than {high_name} at more KL: a trade-off, not a matched-KL comparison; more evaluations "
              "(smaller eval_every) or a smaller lr would give a common KL range")
    return decide_with(statement, method, arm, effect, margin=margin, precondition=(valid, reason),
                       detail=_join(text, detail), paper=paper)


# -- other claims ----------------------------------------------------------------------------------------------
def rate_gain_claim(statement: str, method: str, evaluation: dict[str, Any], reference: dict[str, Any], *,
                    margin: float, detail: str = "", paper: str = PAPER) -> Claim:
    """``method``'s final desirable rate against the reference's, on the same prompts (Newcombe interval of two
    independent rates): holds when the whole interval lies above ``margin``."""
    k_m, n_m = int(round(sum(map(float, evaluation["desirable"])))), len(evaluation["desirable"])
    k_r, n_r = int(round(sum(map(float, reference["desirable"])))), len(reference["desirable"])
    effect = Effect.proportions(k_m, n_m, k_r, n_r)
    text = f"reference {k_r}/{n_r} = {k_r / n_r:.2f} → {method} {k_m}/{n_m} = {k_m / n_m:.2f}"
    return superior(statement, method, "reference", effect, margin=margin, detail=_join(text, detail), paper=paper)


def start_identity_claim(deviations: dict[str, float], tolerance: float, paper: str = PAPER) -> Claim:
    """At πθ = πref every KTO per-example loss is λ·(1 − σ(0)) = 0.5·λ (Eq. 8 with r = z₀ = 0): the largest deviation
    over the first batch of each KTO run, computed exactly (no sampling), below a numerical ``tolerance``."""
    worst = max(deviations.values())
    effect = Effect(worst, worst, worst, kind="value", samples=len(deviations), how="computed exactly (no sampling)")
    return exceeds("At the start (πθ = πref) every KTO loss equals 0.5·λ exactly", effect, tolerance, better="lower",
                   method="KTO", arm="0.5·λ", paper=paper,
                   detail=(f"max |loss − 0.5·λ| = {worst:.2g} over the first batch of {', '.join(deviations)}; "
                           f"tolerance {tolerance:g} is float rounding, not a margin"))


def heldout_accuracy_claim(reward: Sequence[float], desirable: Sequence[bool], groups: Sequence[int], *,
                           generator: torch.Generator, resamples: int = 2000, detail: str = "",
                           paper: str = PAPER) -> Claim:
    """The implied reward β·log πθ/πref ranks held-out desirable completions above undesirable ones of the same
    prompt more often than chance (0.5): a bootstrap over the held-out rows."""
    from workbench.methods.kto.train import ranking_accuracy

    effect = Effect.bootstrap(lambda r, d, g: ranking_accuracy(r, d, g), torch.as_tensor(reward, dtype=torch.float64),
                              torch.as_tensor(desirable, dtype=torch.bool), torch.as_tensor(groups, dtype=torch.long),
                              generator=generator, resamples=resamples, kind="value")
    return exceeds("After KTO, the implied reward ranks held-out desirable completions above undesirable ones",
                   effect, 0.5, method="KTO", arm="chance (0.5)", paper=paper,
                   detail=_join(f"{len(reward)} held-out rows never trained on; accuracy = share of (desirable, "
                                "undesirable) pairs of a prompt ranked right by β·log πθ/πref", detail))


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
