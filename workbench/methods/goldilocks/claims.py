"""The paper's claims, decided by the rules of :mod:`workbench.core.claims` from the rows of the speedup table
(one row per method and replicate, :func:`.speedup.speedup_table` plus ``seed``, ``corrupted_share``, ...).

- :func:`speed_claim`: "``method`` reaches ``arm``'s best accuracy in fewer steps" (Section 4, Table 2): the
  speedup (arm's steps to its best accuracy / the method's) averaged over the replicates, with a Student-t
  interval over them; it holds when the whole interval is above 1. A replicate where the method never reaches
  the target counts as speedup 0 (not left out). One replicate gives no interval: inconclusive.
- :func:`corrupted_share_claims`: RHO-LOSS selects fewer corrupted points than uniform selection, and training-loss
  selection more (Section 4.1, Fig. 3): the paired difference of the shares over the replicates.

The functions are pure (rows in, :class:`~workbench.core.claims.Claim` out), so their decisions are tested on
constructed rows.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from workbench.core.claims import Claim, Effect, exceeds, superior

PAPER = "Mindermann et al. 2022"


def _speed(row: dict) -> float:
    """A row's step speedup; nan (neither reached the target) counts as 0, like "never"."""
    s = float(row["speedup_steps"])
    return 0.0 if math.isnan(s) else s


def _steps(row: dict) -> str:
    v = float(row["steps_to_target"])
    return "never" if math.isinf(v) or math.isnan(v) else f"{v:.0f}"


def per_seed(rows: Sequence[dict], base_rows: Sequence[dict]) -> str:
    """``seed 0: 1.50× (300 vs 450 steps to 0.845), ...``: each replicate's speedup and steps to the target."""
    out = []
    for r, b in zip(rows, base_rows):
        s = _speed(r)
        speed = "never" if s == 0.0 else f"{s:.2f}×"
        out.append(f"seed {r['seed']}: {speed} ({_steps(r)} vs {_steps(b)} steps to {float(b['target_accuracy']):.3f})")
    return ", ".join(out)


def speedup_effect(rows: Sequence[dict]) -> Effect:
    """Mean step speedup over the replicates with a t interval (kind ``ratio``: arm's steps / the method's)."""
    speeds = [_speed(r) for r in rows]
    effect = Effect.paired(speeds)
    how = effect.how + " (a seed where the method never reaches the target counts as 0)"
    return replace(effect, kind="ratio", how=how)


def speed_claim(statement: str, method: str, arm: str, rows: Sequence[dict], base_rows: Sequence[dict], *,
                setting: str = "", noise_rate: float | None = None, conclusion: str = "", paper: str = PAPER) -> Claim:
    """Holds when the t interval of the mean speedup over the replicates lies above 1; ``noise_rate`` given and 0:
    inconclusive (the claim is about label noise)."""
    if len(rows) != len(base_rows) or not rows:
        raise ValueError(f"speed_claim: {len(rows)} rows of {method} against {len(base_rows)} of {arm}")
    effect = speedup_effect(rows)
    wall = [0.0 if math.isnan(float(r["speedup_wallclock"])) else float(r["speedup_wallclock"]) for r in rows]
    detail = (f"mean speedup, {effect.how}; per seed: {per_seed(rows, base_rows)}; mean wall-clock speedup "
              f"{sum(wall) / len(wall):.2f}×"
              + (f"; {conclusion}" if conclusion else "") + (f"; setting: {setting}" if setting else ""))
    pre = None if noise_rate is None else (noise_rate > 0, "no label noise in this setting (noise_rate 0)")
    return exceeds(statement, effect, 1.0, method=method, arm=arm, precondition=pre, detail=detail, paper=paper)


def corrupted_share_claims(by: dict[str, list[dict]], noise_rate: float, *, setting: str = "",
                           paper: str = f"{PAPER}, Section 4.1 and Fig. 3") -> list[Claim]:
    """RHO-LOSS below uniform selection in the share of corrupted points it trains on (and training-loss selection
    above it, when it ran): paired differences over the replicates (``corrupted_share``: over all steps)."""
    uniform = [float(r["corrupted_share"]) for r in by["uniform"]]
    pre = (noise_rate > 0, "no label noise in this setting (noise_rate 0): there are no corrupted points to avoid")
    claims = []
    arms = [("rho_loss", "RHO-LOSS", "lower", "RHO-LOSS selects a smaller share of corrupted (noisy-label) points than "
             "uniform selection (whose share is the noise rate)"),
            ("train_loss", "training-loss selection", "higher", "Training-loss selection selects a larger share of "
             "corrupted points than uniform selection")]
    for key, name, better, statement in arms:
        if key not in by:
            continue
        shares = [float(r["corrupted_share"]) for r in by[key]]
        effect = Effect.paired(shares, uniform)
        mean = sum(shares) / len(shares)
        detail = (f"{effect.how}: {name} {mean:.1%} vs uniform {sum(uniform) / len(uniform):.1%} of the selected points corrupted "
                  f"(share over all steps, mean over {len(shares)} seed(s); per interval: metric "
                  f"'<method>/select/corrupted_share_recent'); noise rate {noise_rate:.1%}"
                  + (f"; setting: {setting}" if setting else ""))
        claims.append(superior(statement, name, "uniform", effect, better=better, precondition=pre, detail=detail,
                               paper=paper))
    return claims
