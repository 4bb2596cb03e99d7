"""SDE-BNN: infinitely deep Bayesian neural networks whose weights follow an SDE (Xu, Chen, Li & Duvenaud 2022).

Public names: the weight SDE (:class:`WeightSDE`, :func:`sample_weights`, :func:`euler_maruyama`), the model
(:class:`SDEBNN`, :class:`WeightLayout`), the objective (``losses``), the baselines (ODE-net, Bayes-by-backprop,
residual network) and the ``playground`` that re-samples a trained model (``runs.load_model(run_id, "regression")``).
"""
from . import playground
from .baselines import BayesByBackprop, MeanFieldLinear, ResidualNet, odenet
from .losses import (classification_nll, elbo_loss, gaussian_kl, gaussian_nll, predictive_log_probs,
                     predictive_moments)
from .model import ESTIMATORS, Backbone, ConvDynamics, MLPDynamics, SDEBNN, WeightLayout
from .sde import (METHODS, ConcatSquashLinear, ConcatSquashMLP, WeightSDE, brownian, euler_maruyama,
                  sample_weights)

__all__ = [
    "playground",
    "BayesByBackprop", "MeanFieldLinear", "ResidualNet", "odenet",
    "classification_nll", "elbo_loss", "gaussian_kl", "gaussian_nll", "predictive_log_probs", "predictive_moments",
    "ESTIMATORS", "Backbone", "ConvDynamics", "MLPDynamics", "SDEBNN", "WeightLayout",
    "METHODS", "ConcatSquashLinear", "ConcatSquashMLP", "WeightSDE", "brownian", "euler_maruyama", "sample_weights",
]
