"""The data sets of the ``nft`` experiment, built once and cached: a model zoo and a set of fitted SIRENs.

Both are pure functions of the config (their random streams are named generators of the run, seeded from
``seed``), so a resumed run rebuilds or reloads exactly the zoo and the SIRENs of the original run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import torch
from torch import Tensor

from workbench.core.context import RunContext
from workbench.core.params import ConfigError
from workbench.lib.weightspace import (
    WeightSpace,
    Zoo,
    ZooArch,
    fit_sirens,
    load_small_cnn_zoo,
    psnr,
    siren_init,
    siren_spec,
    train_zoo,
)

if TYPE_CHECKING:
    from .experiment import NFTConfig

T = TypeVar("T")
_MEMORY: dict[str, Any] = {}  # the latest few builds of this process (cache_dir keeps them across processes)


def cached(ctx: RunContext, name: str, key: dict[str, Any], build: Callable[[], T], save: Callable[[T, Path], None],
           load: Callable[[Path], T]) -> T:
    """``build()`` once per ``key``: kept in memory for this process and in ``ctx.cache_dir(name)``."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    mem = f"{name}/{digest}"
    if mem in _MEMORY:
        return _MEMORY[mem]
    path = None
    if hasattr(ctx, "cache_dir"):
        path = ctx.cache_dir(name) / f"{digest}.pt"
        if path.exists():
            try:
                value = load(path)
                _remember(mem, value)
                return value
            except Exception:  # noqa: BLE001 - a broken cache file is rebuilt
                path.unlink(missing_ok=True)
    value = build()
    if path is not None:
        tmp = path.with_suffix(f".tmp{torch.randint(0, 10**9, (1,)).item()}")
        save(value, tmp)
        tmp.replace(path)
    _remember(mem, value)
    return value


def _remember(key: str, value: Any) -> None:
    _MEMORY[key] = value
    while len(_MEMORY) > 6:
        _MEMORY.pop(next(iter(_MEMORY)))


# -- the zoo ------------------------------------------------------------------------------------------------
def zoo_key(cfg: "NFTConfig") -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in ("seed", "zoo_dataset", "zoo_arch", "zoo_width", "zoo_depth", "zoo_size",
                                         "zoo_steps", "zoo_batch", "zoo_images", "zoo_path")}


def build_zoo(cfg: "NFTConfig", ctx: RunContext) -> Zoo:
    """The zoo of task (a): a local Small CNN Zoo (``zoo_path``) or ``zoo_size`` networks trained together."""
    if cfg.zoo_path:
        if not Path(cfg.zoo_path).is_dir():
            raise ConfigError(f"parameter 'zoo_path' = {cfg.zoo_path!r} is not a directory (a local copy of one "
                              "Small CNN Zoo data set: weights.npy, layout.csv, metrics.csv)", "zoo_path")
        return cached(ctx, "nft-zoo", zoo_key(cfg), lambda: load_small_cnn_zoo(cfg.zoo_path, limit=cfg.zoo_size),
                      Zoo.save, Zoo.load)

    def build() -> Zoo:
        from workbench.lib import data

        x, y = data.tensors(cfg.zoo_dataset, "train", seed=cfg.seed)
        xt, yt = data.tensors(cfg.zoo_dataset, "test", seed=cfg.seed)
        x, y = x[: cfg.zoo_images], y[: cfg.zoo_images]
        xt, yt = xt[: max(cfg.zoo_images // 2, 500)], yt[: max(cfg.zoo_images // 2, 500)]
        k = data.num_classes(cfg.zoo_dataset)
        hidden = (cfg.zoo_width,) * cfg.zoo_depth
        dims = (x[0].numel(),) + hidden + (k,) if cfg.zoo_arch == "mlp" else (x.shape[1],) + hidden + (k,)
        arch = ZooArch(cfg.zoo_arch, dims, tuple(x.shape[1:]))
        return train_zoo(arch, x, y, xt, yt, n=cfg.zoo_size, steps=cfg.zoo_steps, batch_size=cfg.zoo_batch,
                         generator=ctx.generator("zoo"))

    return cached(ctx, "nft-zoo", zoo_key(cfg), build, Zoo.save, Zoo.load)


# -- the SIRENs ---------------------------------------------------------------------------------------------
@dataclass
class InrData:
    """Fitted SIRENs (hidden neurons permuted per network when asked) with their images and labels."""

    train: WeightSpace
    train_labels: Tensor
    test: WeightSpace
    test_labels: Tensor
    test_images: Tensor
    init: WeightSpace
    mse_train: Tensor
    mse_test: Tensor
    image_shape: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {k: ((v.weights, v.biases) if isinstance(v, WeightSpace) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InrData":
        return cls(**{k: (WeightSpace(*v) if k in ("train", "test", "init") else v) for k, v in d.items()})


def inr_key(cfg: "NFTConfig") -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in ("seed", "inr_dataset", "inr_train", "inr_test", "siren_hidden",
                                         "siren_steps", "siren_lr", "permute_inrs")}


def build_inrs(cfg: "NFTConfig", ctx: RunContext) -> InrData:
    """Fit one SIREN (2 → h → h → channels, ω₀ = 30) per image from one shared initialisation; then, with
    ``permute_inrs``, permute every SIREN's hidden neurons at random (the same functions, other weights)."""

    def build() -> InrData:
        from workbench.lib import data

        x, y = data.tensors(cfg.inr_dataset, "train", seed=cfg.seed)
        xt, yt = data.tensors(cfg.inr_dataset, "test", seed=cfg.seed)
        x, y, xt, yt = x[: cfg.inr_train], y[: cfg.inr_train], xt[: cfg.inr_test], yt[: cfg.inr_test]
        spec = siren_spec(x.shape[1], hidden=cfg.siren_hidden)
        init = siren_init(spec, ctx.generator("siren_init"))
        train, mse_tr = fit_sirens(x, init, cfg.siren_steps, cfg.siren_lr)
        test, mse_te = fit_sirens(xt, init, cfg.siren_steps, cfg.siren_lr)
        if cfg.permute_inrs:
            gen = ctx.generator("siren_permutations")
            train = train.permute_all(train.random_permutations(gen))
            test = test.permute_all(test.random_permutations(gen))
        return InrData(train, y, test, yt, xt, init, mse_tr, mse_te, tuple(x.shape[1:]))

    return cached(ctx, "nft-sirens", inr_key(cfg), build, lambda v, p: torch.save(v.to_dict(), p),
                  lambda p: InrData.from_dict(torch.load(p, weights_only=False)))


def mean_psnr(mse: Tensor) -> float:
    return float(psnr(mse).mean())
