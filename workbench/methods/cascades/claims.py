"""The claims the ``cascades`` experiment checks, as functions of per-problem results (so each decision can be
tested on constructed inputs).

Every claim compares a method with a named arm on the same held-out problems, so its effect is the mean
per-problem difference of accuracies with a paired percentile bootstrap over the problems (``generator``:
``ctx.rng("claims/<name>")``), decided by :func:`workbench.core.claims.superior`. Two preconditions make a claim
inconclusive whatever its effect: both arms at zero (a comparison at the floor says nothing) and an arm that
already solves every problem (no room to improve).

Claims (Dohan et al. 2022, from the works the paper formalises as cascades):

- self-consistency@K (a majority over K scratchpads) beats one sample (Wang et al. 2022);
- verifier-guided SMC@K beats self-consistency@K on the same K (Cobbe et al. 2021, as an observation);
- tool use (a calculator) beats the best unaided cascade on operands longer than any in training, written as they
  are (length generalisation, not a rarer length inside the training width);
- STaR (Zelikman et al. 2022) beats a control fine-tuned for the same steps, at the same learning rate, on the
  same ground-truth batches without the model's own rationales (the causal effect of the rationales).
"""
from __future__ import annotations

from typing import Sequence

import torch

from workbench.core.claims import Claim, Effect, superior

PAPER = "Dohan et al. 2022, Language Model Cascades"


def _mean_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).mean())


def _best_unaided_gap(tool: torch.Tensor, *unaided: torch.Tensor) -> float:
    return float(tool.double().mean() - max(float(u.double().mean()) for u in unaided))


def _room(method: Sequence[float], arm: Sequence[float], arm_name: str) -> tuple[bool, str]:
    """Whether the comparison can say anything: some arm above zero, and the arm below every problem solved."""
    m, a = _mean(method), _mean(arm)
    if m == 0 and a == 0:
        return False, "both arms solve no problem (at the floor): the comparison says nothing"
    if a >= 1:
        return False, f"the arm ({arm_name}) already solves every problem: no room to improve"
    return True, ""


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if len(values) else float("nan")


def _paired(method: Sequence[float], arm: Sequence[float], generator: torch.Generator) -> Effect:
    return Effect.bootstrap(_mean_difference, torch.tensor(method, dtype=torch.float64),
                            torch.tensor(arm, dtype=torch.float64), generator=generator)


def self_consistency(sc: Sequence[float], single: Sequence[float], *, k: int, generator: torch.Generator,
                     detail: str = "") -> Claim:
    """Self-consistency@K against one sample. ``sc[i]``: 1 when the majority of problem i's K scratchpads is right;
    ``single[i]``: the fraction of those K scratchpads that are right (one sample's accuracy on problem i)."""
    arm = "one sample (forward sampling)"
    return superior("Self-consistency (a majority over K sampled scratchpads) raises accuracy over a single sample",
                    f"self-consistency@{k}", arm, _paired(sc, single, generator),
                    precondition=_room(sc, single, arm),
                    detail=f"self-consistency@{k} {_mean(sc):.3f} vs one sample {_mean(single):.3f}"
                           + (f"; {detail}" if detail else ""), paper=PAPER + " §3; Wang et al. 2022")


def verifier(smc: Sequence[float], sc: Sequence[float], *, k: int, generator: torch.Generator,
             detail: str = "") -> Claim:
    """Verifier-guided SMC with K particles against self-consistency over K samples (per-problem 0/1)."""
    arm = f"self-consistency@{k}"
    return superior("Verifier-guided inference raises accuracy further (over self-consistency on as many samples)",
                    f"verifier-guided SMC@{k}", arm, _paired(smc, sc, generator),
                    precondition=_room(smc, sc, arm),
                    detail=f"verifier-guided SMC@{k} {_mean(smc):.3f} vs self-consistency@{k} {_mean(sc):.3f}"
                           + (f"; {detail}" if detail else ""), paper=PAPER + " §3 (verifiers); Cobbe et al. 2021")


def tool_use(tool: Sequence[float], unaided: dict[str, Sequence[float]], *, digits: int, trained_digits: int,
             generator: torch.Generator, detail: str = "") -> Claim:
    """Tool use against the best unaided cascade (``unaided``: format → per-problem 0/1) on ``digits``-digit
    operands, longer than any in training (``trained_digits``), unpadded. The effect is tool − max over the
    unaided formats, the maximum re-taken in every bootstrap resample (so choosing the best arm is accounted for)."""
    if not unaided:
        raise ValueError("tool_use: no unaided cascade to compare with")
    names = list(unaided)
    best = max(names, key=lambda n: _mean(unaided[n]))
    arm = f"best unaided cascade ({' / '.join(names)}; here {best})"
    effect = Effect.bootstrap(_best_unaided_gap, torch.tensor(tool, dtype=torch.float64),
                              *(torch.tensor(unaided[n], dtype=torch.float64) for n in names), generator=generator)
    figures = "; ".join(f"{n} {_mean(unaided[n]):.3f}" for n in names)
    return superior(f"Tool use beats unaided arithmetic on longer numbers ({digits}-digit operands, longer than any "
                    f"in training (≤ {trained_digits}), written as they are)",
                    "tool use (calculator), one sample", arm, effect, precondition=_room(tool, unaided[best], best),
                    detail=f"calculator {_mean(tool):.3f} vs {figures}" + (f"; {detail}" if detail else ""),
                    paper=PAPER + " §3 (tool use)")


def star(star_acc: Sequence[float], control_acc: Sequence[float], *, rationales: int, generator: torch.Generator,
         detail: str = "") -> Claim:
    """STaR after its last round against the control arm after as many steps (per-problem accuracy: the fraction
    of sampled scratchpads that are right). Without a single rationale found the two arms are trained alike."""
    arm = "control: same steps, learning rate and ground-truth batches, without the model's own rationales"
    ok, reason = _room(star_acc, control_acc, "control")
    if rationales <= 0:
        ok, reason = False, "no rationale was found, so STaR's fine-tuning is the control's"
    return superior("STaR (fine-tuning on its own rationales, found given the known answers) raises accuracy",
                    "STaR", arm, _paired(star_acc, control_acc, generator), precondition=(ok, reason),
                    detail=f"STaR {_mean(star_acc):.3f} vs control {_mean(control_acc):.3f} after the last round"
                           + (f"; {detail}" if detail else ""), paper=PAPER + " §3 (STaR); Zelikman et al. 2022")
