"""The three tasks of the ``nft`` experiment, each model trained in its own resumable phase.

(a) accuracy prediction from weights (NFT paper §5.1): every model regresses a network's standardised test
    accuracy from its weights; scored by Kendall's τ and R² on held-out networks.
(b) INR classification (§5.2): every model classifies an image from the weights of the SIREN fitted to it.
(c) Inr2Array (§4): an NFT autoencoder learns an array latent by reconstruction; a classifier reads the latent.

A phase records its results in ``ctx.state`` only when it actually ran: on resume, phases finished before the
checkpoint yield no steps and their results come back from the checkpoint instead.

Under torchrun every model trains data-parallel: each rank takes its shard of the same global batch of networks
(``ctx.batches``), the gradients are averaged before clipping, and the feature standardisers of the invariant
heads normalise with the global batch's statistics (all-reduced, differentiable), so a step is the one-process
step of the global batch. Evaluations are sharded by network and gathered (:func:`predict`).
"""
from __future__ import annotations

import contextlib

import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.core.context import RunContext
from workbench.lib.weightspace import NetworkSpec, WeightSpace, Zoo, render_images

from .data import InrData
from .inr2array import Inr2Array, LatentClassifier, build_inr2array
from .layers import FeatureStandardizer
from .metrics import kendall_tau, r2_score
from .model import NFTInvariant, build_model, build_saved, count_parameters, token_labels

if TYPE_CHECKING:
    from .experiment import NFTConfig


def model_spec(cfg: "NFTConfig", kind: str, spec: NetworkSpec, out_dim: int,
               fourier_scale: float | None = None) -> dict[str, Any]:
    """The plain-valued spec of a compared model: ``build_saved(**model_spec(...))`` builds it (saved models)."""
    return {"kind": kind, "dims": list(spec.dims), "filters": [list(f) for f in spec.filters], "out_dim": out_dim,
            "d_model": cfg.d_model, "heads": cfg.heads, "depth": cfg.depth, "num_queries": cfg.num_queries,
            "channels": cfg.channels, "hidden": cfg.hidden, "fourier_features": cfg.fourier_features,
            "fourier_scale": fourier_scale or cfg.fourier_scale}


def make_model(cfg: "NFTConfig", ctx: RunContext, kind: str, spec: NetworkSpec, out_dim: int, key: str,
               fourier_scale: float | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A compared model, initialised from the run's seed and ``key``, with its saved-model spec."""
    plain = model_spec(cfg, kind, spec, out_dim, fourier_scale)
    with ctx.seeded(key):
        return build_saved(**plain), plain


def eval_shard(ctx: RunContext, n: int) -> Any:
    """The shard of an evaluation over ``n`` networks under torchrun (None: one process, or fewer networks
    than ranks, evaluated whole on every rank)."""
    return ctx.shard(n) if 1 < ctx.world_size <= n else None


@torch.no_grad()
def predict(model: Callable[[WeightSpace], Tensor], ws: WeightSpace, chunk: int = 128, shard: Any = None) -> Tensor:
    """``model`` on every network of ``ws`` in evaluation mode, ``chunk`` at a time; with ``shard`` (see
    :func:`eval_shard`) this rank's networks only, gathered in order."""
    if shard is not None:
        return shard.gather(predict(model, ws[shard.rows()], chunk))
    was = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    try:
        return torch.cat([model(ws[s:s + chunk]) for s in range(0, ws.batch_size, chunk)])
    finally:
        if isinstance(model, nn.Module):
            model.train(was)


def _cosine(total: int) -> Callable[[int], float]:
    warm = max(1, total // 20)
    return lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient: each rank's loss depends on every rank's input."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        out = x.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


def sum_over_ranks(x: Tensor) -> Tensor:
    """The sum of ``x`` over the ranks, differentiable (a candidate for the run context)."""
    return _SumOverRanks.apply(x)


def global_batch(ctx: RunContext, cfg: "NFTConfig", n: int) -> int:
    """The global batch of networks drawn from ``n``; under torchrun it must split evenly among the ranks (each
    rank's mean loss then weighs its rows as the global mean does)."""
    size = min(cfg.batch_size, n)
    if size % ctx.world_size:
        from workbench.core.params import ConfigError

        raise ConfigError(f"parameter 'batch_size' = {cfg.batch_size}: a global batch of {size} networks does not "
                          f"split evenly among {ctx.world_size} processes; allowed: a multiple of {ctx.world_size} "
                          f"(and at most {n - n % ctx.world_size}, the training networks)", "batch_size")
    return size


@contextlib.contextmanager
def data_parallel(ctx: RunContext, model: nn.Module) -> Iterator[None]:
    """Under torchrun, the feature standardisers of ``model`` use the global batch's statistics while training."""
    norms = [m for m in model.modules() if isinstance(m, FeatureStandardizer)]
    if ctx.world_size > 1:
        for m in norms:
            m.reduce = sum_over_ranks
    try:
        yield
    finally:
        for m in norms:
            m.reduce = None


def train_phase(ctx: RunContext, cfg: "NFTConfig", key: str, model: nn.Module, ws: WeightSpace,
                loss_fn: Callable[[nn.Module, WeightSpace, Tensor], Tensor], idx_targets: Tensor | None,
                steps: int, evaluate: Callable[[int], dict[str, float]], lr: float | None = None) -> bool:
    """Train ``model`` for ``steps`` AdamW steps (cosine schedule, gradient clipping) on mini-batches of ``ws``;
    log ``<key>/train/loss`` and, every ``eval_every`` steps and at the end, ``evaluate(step)``.
    Returns whether any step ran (False when a resumed run skips a finished phase)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr or cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(steps))
    batches = ctx.batches(ws.batch_size, global_batch(ctx, cfg, ws.batch_size), name=f"batches/{key}")
    ctx.track(**{f"model/{key}": model, f"opt/{key}": opt, f"sched/{key}": sched})
    ran = False
    with data_parallel(ctx, model):
        for step in ctx.steps(steps, phase=key):
            ran = True
            model.train()
            idx = next(batches)  # this rank's shard of the global batch
            target = idx_targets[idx] if idx_targets is not None else None
            loss = loss_fn(model, ws[idx], target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ctx.average_gradients(model)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            ctx.log(step + 1, **{f"{key}/train/loss": float(ctx.all_reduce_mean(loss))})
            if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
                ctx.log(step + 1, **evaluate(step + 1))
    return ran


# -- (a) accuracy prediction ---------------------------------------------------------------------------------
def split_zoo(zoo: Zoo, test_fraction: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    order = torch.randperm(len(zoo), generator=gen)
    n_test = max(1, int(round(test_fraction * len(zoo))))
    return order[n_test:].sort().values, order[:n_test].sort().values


def accuracy_task(cfg: "NFTConfig", ctx: RunContext, zoo: Zoo, results: dict) -> dict[str, nn.Module]:
    """Train each model of ``cfg.models`` to predict test accuracy; returns the trained models (this run's)."""
    tr, te = split_zoo(zoo, cfg.test_fraction, ctx.generator("zoo_split"))
    ws_tr, ws_te = zoo.weights[tr], zoo.weights[te]
    y_tr, y_te = zoo.test_accuracy[tr].float(), zoo.test_accuracy[te].float()
    mu, sd = float(y_tr.mean()), float(y_tr.std().clamp_min(1e-6))
    z_tr = (y_tr - mu) / sd
    spec = zoo.weights.spec
    test_shard = eval_shard(ctx, len(te))
    _zoo_artifacts(ctx, zoo, tr, te)
    out: dict[str, nn.Module] = {}
    for kind in cfg.models:
        key = f"acc/{kind}"
        model, plain = make_model(cfg, ctx, kind, spec, 1, key)
        model.fit(ws_tr)

        def loss_fn(m: nn.Module, ws: WeightSpace, target: Tensor) -> Tensor:
            return F.mse_loss(m(ws)[:, 0], target)

        def evaluate(step: int, model: nn.Module = model, key: str = key) -> dict[str, float]:
            pred = predict(model, ws_te, shard=test_shard)[:, 0] * sd + mu
            return {f"{key}/test/kendall_tau": kendall_tau(y_te, pred), f"{key}/test/r2": r2_score(y_te, pred)}

        t0 = time.perf_counter()
        if train_phase(ctx, cfg, key, model, ws_tr, loss_fn, z_tr, cfg.steps, evaluate):
            pred = predict(model, ws_te, shard=test_shard)[:, 0] * sd + mu
            results["acc"][kind] = {"kendall_tau": kendall_tau(y_te, pred), "r2": r2_score(y_te, pred),
                                    "parameters": count_parameters(model), "seconds": time.perf_counter() - t0,
                                    "network": te.tolist(), "true": y_te.tolist(), "predicted": pred.tolist()}
            ctx.artifact("predictions", prediction_rows(results["acc"]), kind="table")
            if kind == "nft":
                ctx.artifact("attention", attention_artifact(model, ws_te, y_te, te, "zoo"))
        ctx.save_model(key, model, plain, build_saved)
        out[kind] = model
    results["acc_split"] = {"train": tr.tolist(), "test": te.tolist(), "mean": mu, "std": sd}
    return out


def prediction_rows(acc: dict[str, dict]) -> list[dict[str, Any]]:
    rows = []
    for kind, r in acc.items():
        for n, t, p in zip(r["network"], r["true"], r["predicted"]):
            rows.append({"model": kind, "network": int(n), "true_accuracy": float(t), "predicted_accuracy": float(p)})
    return rows


def _zoo_artifacts(ctx: RunContext, zoo: Zoo, tr: Tensor, te: Tensor) -> None:
    """The zoo table (hyperparameters, accuracy, split), all networks' weights and the spec (for the views)."""
    df = zoo.frame()
    split = np.array(["train"] * len(zoo), dtype=object)
    split[te.numpy()] = "test"
    df["split"] = split
    ctx.artifact("zoo", df, kind="table")
    ctx.artifact("zoo/weights", zoo.weights.flatten().float().numpy(), kind="array")
    spec = zoo.weights.spec
    ctx.artifact("zoo/spec", {"dims": list(spec.dims), "filters": [list(f) for f in spec.filters],
                              "arch": zoo.arch.kind if zoo.arch else "cnn"}, kind="json")


def _pick(values: Tensor) -> int:
    """The index of the median value."""
    return int(torch.argsort(values)[len(values) // 2])


def attention_artifact(model: NFTInvariant, ws: WeightSpace, values: Tensor, index: Tensor, source: str) -> dict:
    j = _pick(values.float())
    maps = model.attention_maps(ws[j:j + 1])
    spec = ws.spec
    layers = [{"neuron_layer": h, "labels": token_labels(spec, h), "attention": maps[h][0].tolist()}
              for h in range(spec.num_layers + 1)]
    L = spec.num_layers
    return {"source": source, "network": int(index[j]), "value": float(values[j]), "dims": list(spec.dims),
            "layers": layers, "global": {"labels": [f"W{i}" for i in range(L)] + [f"b{i}" for i in range(L)],
                                         "attention": maps["global"][0].tolist()}}


# -- (b) INR classification ----------------------------------------------------------------------------------
def inr_task(cfg: "NFTConfig", ctx: RunContext, inr: InrData, results: dict) -> dict[str, nn.Module]:
    spec, k = inr.train.spec, int(max(inr.train_labels.max(), inr.test_labels.max())) + 1
    on_test, on_train = eval_shard(ctx, inr.test.batch_size), eval_shard(ctx, inr.train.batch_size)
    out: dict[str, nn.Module] = {}
    for kind in cfg.models:
        key = f"inr/{kind}"
        model, plain = make_model(cfg, ctx, kind, spec, k, key, cfg.inr_fourier_scale)
        model.fit(inr.train)

        def loss_fn(m: nn.Module, ws: WeightSpace, target: Tensor) -> Tensor:
            return F.cross_entropy(m(ws), target)

        def evaluate(step: int, model: nn.Module = model, key: str = key) -> dict[str, float]:
            acc = (predict(model, inr.test, shard=on_test).argmax(1) == inr.test_labels).float().mean()
            return {f"{key}/test/accuracy": float(acc)}

        t0 = time.perf_counter()
        if train_phase(ctx, cfg, key, model, inr.train, loss_fn, inr.train_labels, cfg.inr_steps, evaluate):
            pred = predict(model, inr.test, shard=on_test).argmax(1)
            results["inr"][kind] = {"accuracy": float((pred == inr.test_labels).float().mean()),
                                    "train_accuracy": float((predict(model, inr.train, shard=on_train).argmax(1)
                                                             == inr.train_labels).float().mean()),
                                    "parameters": count_parameters(model), "seconds": time.perf_counter() - t0,
                                    "n_test": int(inr.test_labels.numel()),
                                    "correct": (pred == inr.test_labels).tolist()}
            if kind == "nft":
                ctx.artifact("inr/attention", attention_artifact(model, inr.test, inr.test_labels.float(),
                                                                  torch.arange(inr.test.batch_size), "inr"))
        ctx.save_model(key, model, plain, build_saved)
        out[kind] = model
    return out


def gallery_artifact(inr: InrData, n: int, reconstruction: Tensor | list | None = None) -> dict[str, Any]:
    """Original images, their SIRENs' renders (and Inr2Array reconstructions) of the first ``n`` test images."""
    c, h, w = inr.image_shape
    n = min(n, inr.test.batch_size)
    renders = render_images(inr.test[:n], h, w)
    out = {"labels": inr.test_labels[:n].tolist(), "channels": c,
           "original": inr.test_images[:n].permute(0, 2, 3, 1).tolist(),
           "siren": renders.permute(0, 2, 3, 1).tolist(),
           "siren_psnr": (10 * torch.log10(4 / inr.mse_test[:n].clamp_min(1e-12))).tolist()}
    if reconstruction is not None:
        out["reconstruction"] = torch.as_tensor(reconstruction)[:n].permute(0, 2, 3, 1).tolist()
    return out


# -- (c) Inr2Array -------------------------------------------------------------------------------------------
def inr2array_task(cfg: "NFTConfig", ctx: RunContext, inr: InrData, results: dict) -> Inr2Array:
    c, h, w = inr.image_shape
    spec, k = inr.train.spec, int(max(inr.train_labels.max(), inr.test_labels.max())) + 1
    ae_spec = {"dims": list(spec.dims), "filters": [list(f) for f in spec.filters], "image_size": [h, w],
               "d_model": cfg.d_model, "heads": cfg.heads, "depth": cfg.depth, "grid": cfg.latent_grid,
               "hyper_hidden": cfg.hidden, "fourier_features": cfg.fourier_features,
               "fourier_scale": cfg.inr_fourier_scale}
    with ctx.seeded("inr2array/autoencoder"):
        ae = Inr2Array(spec, (h, w), cfg.d_model, cfg.heads, cfg.depth, cfg.latent_grid, cfg.hidden, inr.init,
                       cfg.fourier_features, cfg.inr_fourier_scale).fit(inr.train)

    def recon_loss(m: nn.Module, ws: WeightSpace, _: Any) -> Tensor:
        return m.loss(ws)

    on_test = eval_shard(ctx, inr.test.batch_size)

    @torch.no_grad()
    def test_loss(model: Inr2Array = ae) -> float:
        """Mean reconstruction loss over the test SIRENs (each rank sums its shard's; the sums are reduced)."""
        was = model.training
        model.eval()
        mine = inr.test if on_test is None else inr.test[on_test.rows()]
        total = sum(float(model.loss(mine[s:s + 128])) * min(128, mine.batch_size - s)
                    for s in range(0, mine.batch_size, 128))
        model.train(was)
        if on_test is not None:
            total = float(ctx.all_reduce_mean(total)) * ctx.world_size
        return total / inr.test.batch_size

    t0 = time.perf_counter()
    if train_phase(ctx, cfg, "inr2array/recon", ae, inr.train, recon_loss, None, cfg.ae_steps,
                   lambda step: {"inr2array/recon/test/loss": test_loss()}):
        mse = test_loss()
        results["inr2array"].update(recon_mse=mse, recon_psnr=10 * math.log10(4 / max(mse, 1e-12)),
                                    ae_seconds=time.perf_counter() - t0, ae_parameters=count_parameters(ae))
        with torch.no_grad():
            ae.eval()
            n = min(cfg.gallery_size, inr.test.batch_size)
            recon = ((ae(inr.test[:n]) + 1) / 2).clamp(0, 1).permute(0, 2, 1).reshape(n, c, h, w)
        results["inr2array"]["reconstruction"] = recon.tolist()
        ctx.artifact("inr/gallery", gallery_artifact(inr, cfg.gallery_size, recon))

    ctx.save_model("inr2array/autoencoder", ae, ae_spec, build_inr2array)

    # the latent classifier: the latents are computed inside the phase (after a resume restored the encoder)
    clf_spec = {"num_latents": ae.num_latents, "d_latent": cfg.d_model, "classes": k, "hidden": cfg.hidden}
    with ctx.seeded("inr2array/classifier"):
        clf = LatentClassifier(**clf_spec)
    latents: dict[str, Tensor] = {}

    def encode_all() -> None:
        if not latents:
            ae.eval()
            latents["train"] = predict(ae.encode, inr.train, shard=eval_shard(ctx, inr.train.batch_size))
            latents["test"] = predict(ae.encode, inr.test, shard=on_test)

    opt = torch.optim.AdamW(clf.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(cfg.latent_steps))
    batches = ctx.batches(inr.train.batch_size, global_batch(ctx, cfg, inr.train.batch_size), name="batches/inr2array")
    ctx.track(**{"model/inr2array/classifier": clf, "opt/inr2array/classifier": opt,
                 "sched/inr2array/classifier": sched})
    ran = False
    t0 = time.perf_counter()
    for step in ctx.steps(cfg.latent_steps, phase="inr2array/classifier"):
        encode_all()
        ran = True
        clf.train()
        idx = next(batches)
        loss = F.cross_entropy(clf(latents["train"][idx]), inr.train_labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ctx.average_gradients(clf)
        nn.utils.clip_grad_norm_(clf.parameters(), 1.0)
        opt.step()
        sched.step()
        ctx.log(step + 1, **{"inr2array/classifier/train/loss": float(ctx.all_reduce_mean(loss))})
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.latent_steps:
            ctx.log(step + 1, **{"inr/inr2array/test/accuracy": _latent_accuracy(clf, latents["test"], inr.test_labels)})
    if ran:
        results["inr2array"].update(accuracy=_latent_accuracy(clf, latents["test"], inr.test_labels),
                                    train_accuracy=_latent_accuracy(clf, latents["train"], inr.train_labels),
                                    classifier_seconds=time.perf_counter() - t0,
                                    invariance=_latent_invariance(ae, inr, ctx),
                                    correct=_latent_correct(clf, latents["test"], inr.test_labels))
    ctx.save_model("inr2array/classifier", clf, clf_spec)
    return ae


@torch.no_grad()
def _latent_accuracy(clf: nn.Module, z: Tensor, y: Tensor) -> float:
    clf.eval()
    return float((clf(z).argmax(1) == y).float().mean())


@torch.no_grad()
def _latent_correct(clf: nn.Module, z: Tensor, y: Tensor) -> list[bool]:
    clf.eval()
    return (clf(z).argmax(1) == y).tolist()


@torch.no_grad()
def _latent_invariance(ae: Inr2Array, inr: InrData, ctx: RunContext) -> float:
    """max |latent(σ·W) − latent(W)| over a few test SIRENs and random hidden permutations σ (float64)."""
    import copy

    m = copy.deepcopy(ae).double().eval()
    ws = inr.test[: min(4, inr.test.batch_size)].to(torch.float64)
    perms = ws.random_permutations(ctx.generator("inr2array_invariance"))
    return float((m.encode(ws.permute_all(perms)) - m.encode(ws)).abs().max())


# -- the permutation demo ------------------------------------------------------------------------------------
@torch.no_grad()
def permutation_demo(models: dict[str, nn.Module], ws: WeightSpace, network: Callable[[WeightSpace], Tensor],
                     gen: torch.Generator, n_perms: int = 8, scale: Callable[[Tensor], Tensor] | None = None
                     ) -> dict[str, Any]:
    """Permute one network's hidden neurons ``n_perms`` times: its outputs stay (``network`` renders them), every
    invariant model's prediction stays, the flat MLP's moves. In float64, so "stays" means round-off."""
    import copy

    ws = ws.to(torch.float64)
    perms = [ws.random_permutations(gen) for _ in range(n_perms)]
    permuted = [ws.permute_all(p) for p in perms]
    base_out = network(ws)
    out_change = max(float((network(p) - base_out).abs().max()) for p in permuted)
    weight_change = max(p.max_abs_diff(ws) for p in permuted)
    rows: dict[str, Any] = {}
    for kind, model in models.items():
        m = copy.deepcopy(model).double().eval()
        f = (lambda x, m=m: scale(m(x))) if scale is not None else m
        p0 = f(ws)[0]
        pk = [f(p)[0] for p in permuted]
        rows[kind] = {"original": p0.tolist(), "permuted": [p.tolist() for p in pk],
                      "max_change": max(float((p - p0).abs().max()) for p in pk)}
    return {"output_change": out_change, "weight_change": weight_change, "models": rows, "permutations": n_perms}
