"""Classification metrics: accuracy, expected calibration error, reliability tables, per-class accuracy.

ECE follows Naeini et al. 2015 and Guo et al. 2017 (§2, "Expected Calibration Error"): predictions are
grouped into M equal-width confidence bins B_m = ((m-1)/M, m/M], and

    ECE = Σ_m |B_m| / N · |acc(B_m) − conf(B_m)|,

with acc(B_m) the fraction of correct predictions in B_m and conf(B_m) their mean confidence (max probability).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.lib.nn import inference_rows


def _as_tensor(x: object) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label (logits, probabilities or N×K scores)."""
    logits, labels = _as_tensor(logits), _as_tensor(labels)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"accuracy needs N×K scores and N labels; got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0:
        return float("nan")
    return (logits.argmax(dim=1) == labels.to(logits.device)).float().mean().item()


def _bin_stats(probs: torch.Tensor, labels: torch.Tensor, n_bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per bin: count, summed correctness, summed confidence (float64)."""
    probs, labels = _as_tensor(probs).detach().double().cpu(), _as_tensor(labels).cpu()
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins = {n_bins!r} is out of range; allowed integers >= 1")
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"need N×K probabilities and N labels; got {tuple(probs.shape)} and {tuple(labels.shape)}")
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).double()
    # bin m (0-based) holds conf in (m/M, (m+1)/M]; conf = 0 goes to bin 0
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, torch.ones_like(conf))
    hits = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, correct)
    confs = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, conf)
    return count, hits, confs


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins (module docstring; Guo et al. 2017 §2)."""
    count, hits, confs = _bin_stats(probs, labels, n_bins)
    n = count.sum()
    if n == 0:
        return float("nan")
    return ((hits - confs).abs().sum() / n).item()  # Σ_m |B_m|/N · |acc − conf| = Σ_m |Σ correct − Σ conf| / N


def reliability(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> list[dict[str, float]]:
    """The reliability diagram as a table: one row per bin with its edges, count, accuracy, mean confidence
    and gap (accuracy − confidence); empty bins have NaN accuracy/confidence."""
    count, hits, confs = _bin_stats(probs, labels, n_bins)
    rows = []
    for m in range(n_bins):
        c = count[m].item()
        acc = hits[m].item() / c if c else float("nan")
        conf = confs[m].item() / c if c else float("nan")
        rows.append({"bin_low": m / n_bins, "bin_high": (m + 1) / n_bins, "count": int(c),
                     "accuracy": acc, "confidence": conf, "gap": acc - conf})
    return rows


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Accuracy of each true class (recall), float64 tensor of length K; NaN for classes without examples."""
    logits, labels = _as_tensor(logits).cpu(), _as_tensor(labels).cpu().long()
    k = num_classes if num_classes is not None else logits.shape[1]
    correct = (logits.argmax(dim=1) == labels).double()
    total = torch.bincount(labels, minlength=k).double()
    hits = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, correct)
    return torch.where(total > 0, hits / total.clamp_min(1), torch.full_like(total, float("nan")))


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood (cross-entropy) of the labels."""
    return torch.nn.functional.cross_entropy(_as_tensor(logits).float(), _as_tensor(labels).long()).item()


@dataclass
class Evaluation:
    """Outputs of a model on a data set: logits, softmax probabilities and labels (all on CPU)."""

    logits: torch.Tensor
    probs: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        return accuracy(self.logits, self.labels)

    @property
    def ece(self) -> float:
        return expected_calibration_error(self.probs, self.labels)

    @property
    def nll(self) -> float:
        return nll(self.logits, self.labels)

    def per_class(self) -> torch.Tensor:
        return per_class_accuracy(self.logits, self.labels, self.logits.shape[1])


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor, batch_size: int | None = None, device: torch.device | str | None = None
            ) -> torch.Tensor:
    """Logits of ``model`` on X in eval mode (the model's train/eval mode is restored), float32 on CPU, in batches of
    ``batch_size`` rows (default :func:`~workbench.lib.nn.inference_rows`)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size = {batch_size!r} is out of range; allowed >= 1")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch_size = batch_size or inference_rows(device)
    was_training = model.training
    model.eval()
    try:
        out = [model(X[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int | None = None,
    device: torch.device | str | None = None
) -> Evaluation:
    """Run ``model`` over (X, y) in eval mode; returns an :class:`Evaluation` (logits, probs, labels, .accuracy, .ece)."""
    logits = predict(model, X, batch_size, device)
    return Evaluation(logits=logits, probs=logits.softmax(dim=1), labels=_as_tensor(y).cpu().long())
