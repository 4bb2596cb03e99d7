"""LS4: deep latent state-space models for time-series generation (Zhou, Poli, Xu, Massaroli, Ermon, ICML 2023).

Public API::

    from workbench.methods.ls4 import s4d_kernel, dplr_kernel, S4Stack, LS4, LatentODE, GRUVAE, marginal_score
    from workbench.methods.ls4 import resample           # re-sample a model from runs.load_model

- ``kernels``: S4D (Vandermonde) and DPLR (Cauchy + Woodbury + FFT) convolution kernels, HiPPO-LegS and S4D-Lin
  initialisations (reusable by other methods).
- ``layers``: S4 layers, blocks and stacks with convolution and recurrent step modes; ``param_groups``.
- ``model``: the LS4 VAE (encoder, prior, decoder with the joint layer); ``build_model`` from a ``spec()``.
  A run's trained models come back with ``workbench.runs.load_model(run_id, "ls4")`` (or ``latent_ode``,
  ``gru_vae``; ``<source>/<method>`` for the further sources of ``score_on``).
- ``playground``: headless re-sampling of a trained model (``resample``, ``sample_series``, ``continue_series``):
  what the sample explorer draws, from plain Python.
- ``baselines``: the Latent ODE (ODE-RNN encoder, torchdiffeq) and the GRU VAE.
- ``losses``: ELBO pieces, the Gaussian KL, masks. ``metrics``: marginal, classification and prediction scores,
  MSE, CRPS, jump statistics. ``claims``: the paper's claims decided from measured arrays. ``data``: synthetic
  sharp-transition series, statsmodels series, Monash ``.tsf``.
- ``experiment``: the registered experiment ``ls4`` (imported by the registry, not here).
"""
from .baselines import GRUVAE, GRUStack, LatentODE, ODEFunc
from .data import SOURCES, MissingSource, TimeSeries, load, read_tsf, split, synthetic
from .kernels import (bilinear, dense_kernel, dplr_dense, dplr_kernel, hippo_legs, nplr_legs, s4d_kernel, s4d_lin,
                      zoh)
from .layers import SSM, S4Block, S4Stack, causal_conv, param_groups, stepping
from .losses import elbo_terms, gaussian_kl, gaussian_nll, prefix_mask, random_mask, span_mask, training_loss
from .metrics import (classification_losses, classification_score, crps, jump_distance, jump_stats, marginal_score,
                      masked_mse, prediction_errors, prediction_score)
from .model import LS4, SequenceVAE, build_model, time_features
from .playground import continue_series, resample, sample_series

__all__ = [
    "GRUVAE", "GRUStack", "LatentODE", "ODEFunc", "SOURCES", "MissingSource", "TimeSeries", "load", "read_tsf",
    "split", "synthetic", "bilinear", "dense_kernel", "dplr_dense", "dplr_kernel", "hippo_legs", "nplr_legs",
    "s4d_kernel", "s4d_lin", "zoh", "SSM", "S4Block", "S4Stack", "causal_conv", "param_groups", "stepping",
    "elbo_terms", "gaussian_kl", "gaussian_nll", "prefix_mask", "random_mask", "span_mask", "training_loss",
    "classification_losses", "classification_score", "crps", "jump_distance", "jump_stats", "marginal_score",
    "masked_mse", "prediction_errors", "prediction_score", "LS4", "SequenceVAE", "build_model", "time_features",
    "continue_series", "resample", "sample_series",
]
