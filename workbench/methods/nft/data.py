"""The data sets of the ``nft`` experiment, built once and cached: a model zoo and a set of fitted SIRENs.

Both are pure functions of the config (their random streams are named generators of the run, seeded from
``seed``), so a resumed run rebuilds or reloads exactly the zoo and the SIRENs of the original run.

Under torchrun both are built data-parallel over networks: each rank trains its share of the zoo's networks
(every random draw still made for the whole zoo and sliced) and fits its share of the SIRENs, and the results
are gathered, so every rank holds the set one process builds. The ranks agree on using the cache (all hit, or
all build) because the build has collectives.
"""
from __future__ import annotations

import hashlib
import json
import os
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
    path, value, hit = None, None, mem in _MEMORY
    if hit:
        value = _MEMORY[mem]
    elif hasattr(ctx, "cache_dir"):
        path = ctx.cache_dir(name) / f"{digest}.pt"
        if path.exists():
            try:
                value, hit = load(path), True
            except Exception:  # noqa: BLE001 - a broken cache file is rebuilt
                path.unlink(missing_ok=True)
    if _all_ranks(ctx, hit):
        _remember(mem, value)
        return value  # type: ignore[return-value]
    value = build()
    if path is None and hasattr(ctx, "cache_dir"):
        path = ctx.cache_dir(name) / f"{digest}.pt"
    if path is not None and getattr(ctx, "is_main", True):  # one writer
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save(value, tmp)
        tmp.replace(path)
    _remember(mem, value)
    return value


def _all_ranks(ctx: RunContext, flag: bool) -> bool:
    """``flag`` on every rank (itself in a one-process run)."""
    if getattr(ctx, "world_size", 1) == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor(int(flag))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t)


def _shard(ctx: RunContext, n: int) -> Any:
    """This rank's share of ``n`` networks under torchrun, else None."""
    return ctx.shard(n) if getattr(ctx, "world_size", 1) > 1 else None


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

    return cached(ctx, "nft-zoo", zoo_key(cfg), lambda: train_config_zoo(cfg, ctx), Zoo.save, Zoo.load)


def train_config_zoo(cfg: "NFTConfig", ctx: RunContext) -> Zoo:
    """Train the zoo ``cfg`` describes, without the cache (under torchrun: data-parallel over networks)."""
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
                     generator=ctx.generator("zoo"), shard=_shard(ctx, cfg.zoo_size))


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
        train, mse_tr = _fit(ctx, x, init, cfg)
        test, mse_te = _fit(ctx, xt, init, cfg)
        if cfg.permute_inrs:
            gen = ctx.generator("siren_permutations")
            train = train.permute_all(train.random_permutations(gen))
            test = test.permute_all(test.random_permutations(gen))
        return InrData(train, y, test, yt, xt, init, mse_tr, mse_te, tuple(x.shape[1:]))

    return cached(ctx, "nft-sirens", inr_key(cfg), build, lambda v, p: torch.save(v.to_dict(), p),
                  lambda p: InrData.from_dict(torch.load(p, weights_only=False)))


def _fit(ctx: RunContext, images: Tensor, init: WeightSpace, cfg: "NFTConfig") -> tuple[WeightSpace, Tensor]:
    """:func:`fit_sirens` on every image; under torchrun each rank fits its share and the SIRENs are gathered
    (each SIREN's fit depends on its image and the shared initialisation only)."""
    shard = _shard(ctx, images.shape[0])
    if shard is None:
        return fit_sirens(images, init, cfg.siren_steps, cfg.siren_lr)
    ws, mse = fit_sirens(shard.take(images), init, cfg.siren_steps, cfg.siren_lr)
    return ws.map(shard.gather), shard.gather(mse)


def mean_psnr(mse: Tensor) -> float:
    return float(psnr(mse).mean())
