"""Online batch selection methods, each one small class behind one interface.

Every training step draws a large candidate batch of n_B points; a :class:`Selector` scores them without
gradients and keeps n_b of them (Algorithm 1 of Mindermann et al. 2022). ``selector.select(model,
candidates, k, step=..., generator=...)`` returns a :class:`Selection` with the chosen global indices, their
positions in the candidate batch and the per-candidate scores (for histograms, galleries and scatters).

Methods (``SELECTORS``): uniform, rho_loss (reducible holdout loss, Eq. 3), train_loss, grad_norm
(‖softmax − onehot‖₂), irreducible (lowest irreducible loss first), entropy and bald (MC dropout),
boltzmann (Gumbel-top-k sampling of the reducible loss with a temperature), replay (a recorded sequence).

Under torchrun the candidate batch is the *global* one, as Algorithm 1 needs: each rank scores its rows
(``Candidates.shard``), the scores (and indices) are gathered in the global batch's order, and every rank ranks
the same n_B scores with the same deterministic rule (stable sort: ties to the earlier position), so the n_b points
chosen are identical on every rank and equal to a one-process run's. Random draws of a selector (MC-dropout masks,
Gumbel noise) are made for the global batch from the same stream on every rank.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import Shard

from .scores import (
    bald,
    grad_norm_bound,
    gumbel_top_k,
    per_point_loss,
    predictive_entropy,
    reducible_loss,
    top_k_positions,
    _check_k,
)


@dataclass
class Candidates:
    """A candidate (large) batch: global indices into the training part, inputs, given labels and the
    irreducible loss of each point (looked up in the precomputed table, or computed live)."""

    index: Tensor
    x: Tensor
    y: Tensor
    irreducible_loss: Tensor | None = None
    shard: Shard | None = None  # under torchrun: these are this rank's rows of the global candidate batch

    def __len__(self) -> int:
        return int(self.index.numel())

    @property
    def total(self) -> int:
        """Candidates in the global batch (n_B)."""
        return len(self) if self.shard is None else self.shard.size

    def gather(self, tensor: Tensor) -> Tensor:
        """A per-candidate tensor of this rank's rows as the global batch's (itself in one process)."""
        return tensor if self.shard is None else self.shard.gather(tensor)


@dataclass
class Selection:
    """What a selector chose. ``position`` indexes the candidate batch (None for replay, which ignores it);
    ``scores`` and ``train_loss`` hold one value per candidate when the method computed them."""

    index: Tensor
    position: Tensor | None
    scores: Tensor | None = None
    train_loss: Tensor | None = None
    # under torchrun ``position``, ``scores`` and ``train_loss`` refer to the global candidate batch


class Selector:
    """Base class. Subclasses set ``name`` and override :meth:`score` (and :meth:`choose` to sample).

    eval_mode: score with ``model.eval()`` (the paper scores in train mode, the default here); the model's
    previous mode is restored afterwards.
    """

    name: ClassVar[str] = ""
    uses_model: ClassVar[bool] = True  # needs forward passes of the target model to score
    uses_irreducible: ClassVar[bool] = False  # needs candidates.irreducible_loss
    draws: ClassVar[bool] = True  # makes random draws (needs ``generator``); the deterministic ones say False

    def __init__(self, eval_mode: bool = False) -> None:
        self.eval_mode = eval_mode

    def score(self, model: nn.Module, cand: Candidates, generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        """Return (score per candidate, training loss per candidate or None); higher score = selected first."""
        raise NotImplementedError

    def choose(self, scores: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
        """Positions of the selected candidates (default: deterministic top-k, ties to the earlier position).

        No separate NaN check on this path (it costs kernels and a host sync per step): a NaN score comes from a
        NaN output of the model, whose training loss the run refuses when it is logged."""
        return top_k_positions(scores, k, check_nan=False)

    def select(
        self,
        model: nn.Module,
        cand: Candidates,
        k: int,
        *,
        step: int = 0,
        generator: torch.Generator | None = None,
    ) -> Selection:
        _check_k(k, cand.total)
        if self.uses_irreducible and cand.irreducible_loss is None:
            raise ValueError(f"selection method '{self.name}' needs the irreducible loss of every candidate")
        # The model's mode is switched only when it has to be (``Module.train`` walks every submodule); scoring,
        # ranking and the gather of the chosen indices run as one block without autograd bookkeeping.
        switch = self.eval_mode and model.training
        if switch:
            model.eval()
        try:
            with torch.inference_mode():
                scores, train_loss = self.score(model, cand, generator)
                index = cand.index
                if cand.shard is not None:  # the global candidate batch's scores, on every rank
                    scores, index = cand.gather(scores), cand.gather(index)
                    train_loss = None if train_loss is None else cand.gather(train_loss)
                position = self.choose(scores, k, generator)
                index = index[position]
        finally:
            if switch:
                model.train()
        return Selection(index, position, scores, train_loss)


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).float()


class Uniform(Selector):
    """Uniform sampling: the candidates are already a uniformly random draw, so keep the first k."""

    name = "uniform"
    uses_model = False
    draws = False

    def select(self, model, cand, k, *, step=0, generator=None):  # type: ignore[override]
        _check_k(k, cand.total)
        index = cand.index if cand.shard is None else cand.gather(cand.index)
        return Selection(index[:k], torch.arange(k, device=index.device), None, None)


class ReducibleLoss(Selector):
    """RHO-LOSS, Eq. (3): training loss − irreducible (holdout-model) loss, top n_b."""

    name = "rho_loss"
    uses_irreducible = True
    draws = False

    def score(self, model, cand, generator):
        train_loss = per_point_loss(model(cand.x), cand.y)
        il = cand.irreducible_loss
        return reducible_loss(train_loss, il if il.device == train_loss.device else il.to(train_loss.device)), train_loss

    def select(self, model, cand, k, *, step=0, generator=None):  # type: ignore[override]
        """The scoring forward, Eq. (3) and the top-n_b in one block on the device: the same result as the generic
        ``score`` → ``choose`` path (a subclass that samples, Boltzmann, takes that path), with the fewest Python
        calls and tensor operations between the forward and the gather of the chosen indices, and no value brought
        to the host (nothing waits for the device). Past the forward: the cross-entropy, one subtraction, one
        stable sort, one gather."""
        if type(self).choose is not Selector.choose or self.eval_mode:
            return super().select(model, cand, k, step=step, generator=generator)
        _check_k(k, cand.total)
        il = cand.irreducible_loss
        if il is None:
            raise ValueError(f"selection method '{self.name}' needs the irreducible loss of every candidate")
        with torch.inference_mode():
            train_loss = F.cross_entropy(model(cand.x).float(), cand.y, reduction="none")
            if il.shape != train_loss.shape:
                raise ValueError(f"irreducible_loss {tuple(il.shape)} must have the shape of the candidates' "
                                 f"losses {tuple(train_loss.shape)}")
            scores = train_loss - (il if il.device == train_loss.device else il.to(train_loss.device))
            index = cand.index
            if cand.shard is not None:  # each rank scored its rows: rank the global batch (Algorithm 1)
                scores, train_loss, index = cand.gather(scores), cand.gather(train_loss), cand.gather(index)
            position = torch.argsort(scores, descending=True, stable=True)[:k]
            index = index.index_select(0, position)
        return Selection(index, position, scores, train_loss)


class TrainLoss(Selector):
    """Highest training loss first (Loshchilov & Hutter 2015; Kawaguchi & Lu 2020): favours noisy labels."""

    name = "train_loss"
    draws = False

    def score(self, model, cand, generator):
        train_loss = per_point_loss(_logits(model, cand.x), cand.y)
        return train_loss, train_loss


class GradNorm(Selector):
    """Highest gradient-norm bound ‖softmax(z) − onehot(y)‖₂ first (Katharopoulos & Fleuret 2018)."""

    name = "grad_norm"
    draws = False

    def score(self, model, cand, generator):
        logits = _logits(model, cand.x)
        return grad_norm_bound(logits, cand.y), per_point_loss(logits, cand.y)


class IrreducibleOnly(Selector):
    """Lowest irreducible loss first (the "worth learning / learnable" term alone; ignores the target model)."""

    name = "irreducible"
    uses_model = False
    uses_irreducible = True
    draws = False

    def score(self, model, cand, generator):
        return -cand.irreducible_loss.float(), None


class _MCDropout(Selector):
    """Shared MC-dropout machinery for the uncertainty methods.

    When the model follows the workbench contract (``model.stages`` then ``model.head``), the features are
    computed once and dropout with rate ``dropout`` is applied to them before the head in ``mc_samples``
    stochastic passes (last-layer MC dropout: cheap, one full forward). Otherwise the whole model is run
    ``mc_samples`` times in train mode, which only varies if the model has dropout layers.
    """

    def __init__(self, eval_mode: bool = False, mc_samples: int = 10, dropout: float = 0.5) -> None:
        super().__init__(eval_mode)
        if not (isinstance(mc_samples, int) and mc_samples >= 1):
            raise ValueError(f"parameter 'mc_samples' = {mc_samples!r} must be an int >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"parameter 'dropout' = {dropout!r} is out of range; allowed range [0, 1)")
        self.mc_samples = mc_samples
        self.dropout = dropout

    def mc_probs(self, model: nn.Module, x: Tensor, generator: torch.Generator | None,
                 shard: Shard | None = None) -> tuple[Tensor, Tensor]:
        """Return (probs of shape (T, n, C), deterministic logits (n, C)); ``shard``: ``x`` is this rank's rows of
        the global candidate batch (the dropout masks are drawn for the global batch and sliced)."""
        stages = getattr(model, "stages", None)
        head = getattr(model, "head", None)
        if stages is not None and head is not None:
            h = x
            for stage in stages:
                h = stage(h)
            logits = head(h).float()
            samples = []
            for _ in range(self.mc_samples):
                shape = h.shape if shard is None else (shard.size, *h.shape[1:])
                keep = torch.rand(shape, generator=generator, device="cpu") >= self.dropout
                keep = keep if shard is None else shard.take(keep)
                mask = keep.to(device=h.device, dtype=h.dtype) / (1.0 - self.dropout)
                samples.append(head(h * mask).float().softmax(-1))
            return torch.stack(samples), logits
        was_training = model.training
        model.train()
        try:
            samples = torch.stack([_logits(model, x).softmax(-1) for _ in range(self.mc_samples)])
        finally:
            model.train(was_training)
        return samples, _logits(model, x)


class Entropy(_MCDropout):
    """Highest predictive entropy H[(1/T) Σ_t p_t] first (MC dropout)."""

    name = "entropy"

    def score(self, model, cand, generator):
        probs, logits = self.mc_probs(model, cand.x, generator, cand.shard)
        return predictive_entropy(probs), per_point_loss(logits, cand.y)


class BALD(_MCDropout):
    """Highest BALD mutual information first (MC dropout; Houlsby et al. 2011, Gal et al. 2017)."""

    name = "bald"

    def score(self, model, cand, generator):
        probs, logits = self.mc_probs(model, cand.x, generator, cand.shard)
        return bald(probs), per_point_loss(logits, cand.y)


class Boltzmann(ReducibleLoss):
    """Sample n_b candidates without replacement with probability ∝ exp(reducible loss / temperature)."""

    name = "boltzmann"
    draws = True  # Gumbel noise

    def __init__(self, eval_mode: bool = False, temperature: float = 1.0) -> None:
        super().__init__(eval_mode)
        if not temperature > 0:
            raise ValueError(f"parameter 'temperature' = {temperature!r} must be > 0")
        self.temperature = float(temperature)

    def choose(self, scores, k, generator):
        return gumbel_top_k(scores, k, self.temperature, generator)


class Replay(Selector):
    """Train on a recorded sequence of selected indices (shape (steps, n_b)), ignoring the candidates.

    The paper proposes computing a selection once with a small proxy model and reusing it for other
    architectures; this replays such a sequence in its recorded order. ``cycle`` wraps around when training
    runs longer than the recording (otherwise that is an error).
    """

    name = "replay"
    uses_model = False
    draws = False

    def __init__(self, sequence: Tensor | Callable[[], Tensor], cycle: bool = False) -> None:
        super().__init__(False)
        self._source = sequence if callable(sequence) else None
        self._sequence = None if callable(sequence) else self._checked(sequence)
        self.cycle = cycle

    @staticmethod
    def _checked(sequence: Tensor) -> Tensor:
        sequence = torch.as_tensor(sequence, dtype=torch.long)
        if sequence.dim() != 2 or sequence.shape[0] == 0:
            raise ValueError(f"replay sequence must have shape (steps, n_b) with steps >= 1, got {tuple(sequence.shape)}")
        return sequence

    @property
    def sequence(self) -> Tensor:
        """The recorded indices; a callable source is read at first use (in a resumed run the recording it reads
        is restored only when the replaying phase starts)."""
        if self._sequence is None:
            assert self._source is not None
            self._sequence = self._checked(self._source())
        return self._sequence

    def select(self, model, cand, k, *, step=0, generator=None):  # type: ignore[override]
        steps = self.sequence.shape[0]
        if step >= steps and not self.cycle:
            raise ValueError(f"replay sequence has {steps} steps; step {step} is past its end (set cycle=True to wrap)")
        row = self.sequence[step % steps]
        if k > row.numel():
            raise ValueError(f"parameter 'k' = {k} is out of range; the recorded sequence has {row.numel()} points per step")
        device = cand.index.device if cand is not None else row.device
        return Selection(row[:k].to(device), None, None, None)


SELECTORS: dict[str, type[Selector]] = {
    cls.name: cls
    for cls in (Uniform, ReducibleLoss, TrainLoss, GradNorm, IrreducibleOnly, Entropy, BALD, Boltzmann, Replay)
}


def make_selector(name: str, **options) -> Selector:
    """Build a selector by name; options not used by that method are ignored (one call site for all)."""
    if name not in SELECTORS:
        raise ValueError(f"parameter 'selection' = {name!r} is not a known method; allowed: {', '.join(SELECTORS)}")
    cls = SELECTORS[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})
