"""Goldilocks selection / RHO-LOSS (Mindermann et al., ICML 2022): train on points that are learnable,
worth learning and not yet learnt.

Public API::

    from workbench.methods.goldilocks import reducible_loss_select, make_selector, Candidates, IrreducibleLossTable
"""
from .diagnostics import ProbeSet, il_report, probe_metrics, reducible_histogram, reliability_rows, top_share
from .irreducible import (
    IndexedDataset,
    IrreducibleLossTable,
    IrreducibleTrainer,
    fit_irreducible,
    per_point_losses,
    predict_points,
    split_holdout,
)
from .noise import (
    NOISE_KINDS,
    NoisyData,
    apply_noise,
    duplicate_points,
    make_ambiguous,
    structured_label_noise,
    uniform_label_noise,
)
from .scores import (
    bald,
    entropy,
    grad_norm_bound,
    gumbel_top_k,
    per_point_loss,
    predictive_entropy,
    reducible_loss,
    reducible_loss_select,
    top_k_positions,
)
from .selection import SELECTORS, Candidates, Selection, Selector, make_selector
from .speedup import speedup, speedup_table, steps_to_target

__all__ = [
    "ProbeSet", "il_report", "probe_metrics", "reducible_histogram", "reliability_rows", "top_share",
    "predict_points", "IndexedDataset", "IrreducibleLossTable", "IrreducibleTrainer", "fit_irreducible", "per_point_losses",
    "split_holdout", "NOISE_KINDS", "NoisyData", "apply_noise", "duplicate_points", "make_ambiguous",
    "structured_label_noise", "uniform_label_noise", "bald", "entropy", "grad_norm_bound", "gumbel_top_k",
    "per_point_loss", "predictive_entropy", "reducible_loss", "reducible_loss_select", "top_k_positions",
    "SELECTORS", "Candidates", "Selection", "Selector", "make_selector", "speedup", "speedup_table", "steps_to_target",
]
