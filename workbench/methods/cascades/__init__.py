"""Language Model Cascades (Dohan et al. 2022): probabilistic programs over strings, with inference.

A cascade is a generator function that yields effects (``sample``, ``observe``, ``factor``,
``reject``, ``log``) over distributions (``Categorical``, ``Constant``, ``String`` backed by a
language model) and receives their results. Handlers (``trace``, ``seed``, ``replay``,
``condition``, ``stop_on_reject``) change how effects are interpreted and compose; ``run`` executes
once and returns a :class:`Trace`; ``infer(cascade, method, n)`` returns a :class:`Posterior` from
forward sampling, rejection, importance sampling, SMC, beam search or self-consistency.
:mod:`~workbench.methods.cascades.playground` samples and scores a trained model (``runs.load_model(run_id, "lm")``)
headlessly; :mod:`~workbench.methods.cascades.arithmetic` is the addition world it was trained on.
"""
from .backends import (Backend, BackendError, BackendUnavailable, Completion, HFBackend, LocalBackend, OpenAIBackend,
                       ScoringUnavailable, as_backend)
from .distributions import Bernoulli, Categorical, Constant, Distribution, String
from .effects import Msg, factor, log, observe, reject, sample, scope
from .handlers import Rejected, condition, replay, seed, stop_on_reject, trace
from . import arithmetic, playground
from .kvcache import CachedTinyLM
from .infer import METHODS, Posterior, effective_sample_size, infer, infer_many
from .runtime import Engine, Particle, run
from .traces import RETURN, Site, Trace

__all__ = [
    "Backend", "BackendError", "BackendUnavailable", "Bernoulli", "CachedTinyLM", "Categorical", "Completion",
    "Constant",
    "Distribution", "Engine", "HFBackend", "LocalBackend", "METHODS", "Msg", "OpenAIBackend", "Particle",
    "Posterior", "RETURN", "Rejected", "ScoringUnavailable", "Site", "String", "Trace", "as_backend", "condition",
    "arithmetic", "effective_sample_size", "factor", "infer", "infer_many", "log", "observe", "playground", "reject",
    "replay", "run",
    "sample", "scope",
    "seed", "stop_on_reject", "trace",
]
