"""Diagnostics of RHO-LOSS selection under label noise: why a run does (or does not) avoid corrupted points.

For a corrupted point (x, ỹ) the RHO-LOSS score of Eq. (3) is

    L[ỹ|x; D_t] − L[ỹ|x; D_ho] = log p_IL(ỹ|x) − log p_target(ỹ|x),

so it is low only while the target model puts at least as much mass on the wrong label ỹ as the irreducible-loss
(IL) model does. A target that grows more confident in the clean class than the IL model pushes p_target(ỹ|x)
below p_IL(ỹ|x), and corrupted points climb the ranking. These functions measure the pieces of that argument:

- :func:`il_report`: the IL model on the training part (accuracy against the given and the clean labels,
  expected calibration error with 15 bins as in Guo et al. 2017 §2, its loss on clean and corrupted points);
- :class:`ProbeSet` / :func:`probe_metrics`: on a fixed subset of the training part, the mean reducible loss of
  clean and corrupted points, both models' confidence (max softmax probability) on corrupted points and its gap,
  and the share of corrupted points RHO-LOSS's rule would pick from the subset with the current target model;
- :func:`reducible_histogram`: the reducible-loss distribution of clean and corrupted points on fixed bin edges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from workbench.lib.metrics import expected_calibration_error, reliability
from workbench.lib.nn import inference_rows

from .scores import per_point_loss

#: Fixed bin edges of the reducible-loss histograms (nats), so histograms of different steps compare directly;
#: values outside fall into the first or last bin.
RL_EDGES: tuple[float, ...] = tuple(round(-8.0 + 0.25 * i, 6) for i in range(81))
ECE_BINS = 15


def il_report(probs: Tensor, given: Tensor, true: Tensor, corrupted: Tensor) -> dict[str, float]:
    """The IL model on the training part from its softmax probabilities ``probs`` (N×C).

    accuracy / ece: against the labels the learner sees (``given``, noisy); ``*_clean_labels``: against the clean
    labels; ``loss_clean`` / ``loss_corrupted``: mean irreducible loss −log p_IL(given|x) of clean / corrupted
    points; ``confidence_corrupted``: mean max-probability on corrupted points. ECE: Guo et al. 2017 §2, 15 bins.
    """
    probs = probs.float()
    corrupted = corrupted.bool()
    loss = -probs.clamp_min(1e-12).log().gather(1, given.long().unsqueeze(1)).squeeze(1)
    pred = probs.argmax(1)
    out = {
        "accuracy": float((pred == given).float().mean()),
        "accuracy_clean_labels": float((pred == true).float().mean()),
        "ece": expected_calibration_error(probs, given, ECE_BINS),
        "ece_clean_labels": expected_calibration_error(probs, true, ECE_BINS),
        "loss_clean": float(loss[~corrupted].mean()) if (~corrupted).any() else math.nan,
        "loss_corrupted": float(loss[corrupted].mean()) if corrupted.any() else math.nan,
        "confidence_corrupted": float(probs.max(1).values[corrupted].mean()) if corrupted.any() else math.nan,
    }
    return out


def reliability_rows(probs: Tensor, given: Tensor, true: Tensor) -> list[dict[str, float]]:
    """Reliability table of the IL model (15 equal-width confidence bins): accuracy against the given and the
    clean labels per bin, with the bin's mean confidence and count."""
    noisy = reliability(probs, given, ECE_BINS)
    clean = reliability(probs, true, ECE_BINS)
    return [{"bin_low": a["bin_low"], "bin_high": a["bin_high"], "count": a["count"], "confidence": a["confidence"],
             "accuracy": a["accuracy"], "accuracy_clean_labels": b["accuracy"]} for a, b in zip(noisy, clean)]


def reducible_histogram(rl: Tensor, corrupted: Tensor, edges: tuple[float, ...] = RL_EDGES) -> dict[str, list]:
    """Counts of the reducible losses ``rl`` of clean and of corrupted points in the bins of ``edges`` (values
    below the first edge count in the first bin, above the last in the last)."""
    e = torch.tensor(edges, dtype=torch.float32)
    rl = rl.detach().float().cpu()
    corrupted = corrupted.bool().cpu()
    bins = torch.bucketize(rl, e[1:-1], right=True)  # 0 .. len(edges) - 2
    n = len(edges) - 1
    return {"edges": list(edges),
            "clean": torch.bincount(bins[~corrupted], minlength=n).tolist(),
            "corrupted": torch.bincount(bins[corrupted], minlength=n).tolist()}


def top_share(scores: Tensor, corrupted: Tensor, fraction: float) -> float:
    """Share of corrupted points among the ⌈fraction·N⌉ highest ``scores`` (what a top-k rule would pick)."""
    k = max(1, math.ceil(fraction * scores.numel() - 1e-9))
    top = torch.sort(scores.float(), descending=True, stable=True).indices[:k]
    return float(corrupted.bool()[top.cpu()].float().mean())


@dataclass
class ProbeSet:
    """A fixed subset of the training part on which the diagnostics are measured at each evaluation.

    ``index``: positions in the training part; ``x``, ``y``: inputs (on the device) and given labels;
    ``corrupted``: bool on CPU. The IL model's loss and confidence on it are computed once (:meth:`il_stats`),
    again only for an IL model that keeps training.
    """

    index: Tensor
    x: Tensor
    y: Tensor
    corrupted: Tensor
    _il: tuple[Tensor, Tensor] | None = None

    @classmethod
    def draw(cls, x: Tensor, y: Tensor, corrupted: Tensor, size: int, generator: torch.Generator) -> "ProbeSet":
        """``size`` points of the training part drawn with ``generator`` (the caller's, e.g. ``ctx.rng("probe")``;
        all of them when ``size`` ≥ N or 0)."""
        n = int(y.shape[0])
        if size <= 0 or size >= n:
            index = torch.arange(n)
        else:
            index = torch.randperm(n, generator=generator)[:size].sort().values
        dev_index = index.to(x.device)
        return cls(index, x[dev_index], y[dev_index], corrupted[index].bool())

    def il_stats(self, il_model: nn.Module, cache: bool = True) -> tuple[Tensor, Tensor]:
        """(IL loss, IL max-probability) of every probe point, float32 on CPU."""
        if self._il is None or not cache:
            loss, conf = _loss_and_confidence(il_model, self.x, self.y)
            if not cache:
                return loss, conf
            self._il = (loss, conf)
        return self._il


@torch.no_grad()
def _loss_and_confidence(model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None
                         ) -> tuple[Tensor, Tensor]:
    """Per-point loss and max softmax probability in eval mode (the model's mode restored), on CPU."""
    was = model.training
    model.eval()
    batch_size = batch_size or inference_rows(x.device)
    losses, confs = [], []
    try:
        for s in range(0, int(y.shape[0]), batch_size):
            logits = model(x[s:s + batch_size]).float()
            losses.append(per_point_loss(logits, y[s:s + batch_size]).cpu())
            confs.append(logits.softmax(-1).max(-1).values.cpu())
    finally:
        model.train(was)
    return torch.cat(losses), torch.cat(confs)


def probe_metrics(target: nn.Module, il_model: nn.Module, probe: ProbeSet, fraction: float,
                  il_cache: bool = True) -> tuple[dict[str, float], dict[str, list]]:
    """Diagnostic metrics of one target model on the probe set, and its reducible-loss histogram.

    Metrics (names relative to ``<method>/diag/``): ``reducible_loss_clean`` / ``reducible_loss_corrupted`` (mean
    of Eq. 3 over clean / corrupted points), ``target_confidence_corrupted``, ``il_confidence_corrupted`` and
    ``confidence_gap_corrupted`` (target − IL) on corrupted points, ``rho_pick_corrupted_share``: the share of
    corrupted points among the top ``fraction`` of the probe set by reducible loss (what RHO-LOSS would select
    from it with this target). The target is evaluated in eval mode, so a BatchNorm model's running statistics
    are not touched by the measurement.
    """
    t_loss, t_conf = _loss_and_confidence(target, probe.x, probe.y)
    il_loss, il_conf = probe.il_stats(il_model, cache=il_cache)
    rl = t_loss - il_loss
    cor = probe.corrupted
    nan = math.nan
    has_c, has_k = bool(cor.any()), bool((~cor).any())
    metrics = {
        "reducible_loss_clean": float(rl[~cor].mean()) if has_k else nan,
        "reducible_loss_corrupted": float(rl[cor].mean()) if has_c else nan,
        "target_confidence_corrupted": float(t_conf[cor].mean()) if has_c else nan,
        "il_confidence_corrupted": float(il_conf[cor].mean()) if has_c else nan,
        "rho_pick_corrupted_share": top_share(rl, cor, fraction),
    }
    metrics["confidence_gap_corrupted"] = metrics["target_confidence_corrupted"] - metrics["il_confidence_corrupted"]
    return metrics, reducible_histogram(rl, cor)
