"""The shared protocol of the robustness experiments: train several recipes on one budget, evaluate them alike.

Used by ``nfm``, ``noisymix`` and ``robustness_compare`` (each owns its config, its recipes and its claims; this
module knows none of them). A *recipe* is a :class:`~workbench.lib.robustness.training.Recipe`; every recipe gets
the same initial weights (``ctx.seeded("robustness/model")``), the same batch order and crop/flip draws, optimiser
(SGD + Nesterov momentum + weight decay, cosine or step learning rate) and number of steps. Inputs are
standardised inside the model (``normalise``, the papers' protocol; :mod:`~workbench.lib.robustness.inputs`).
All training phases run first (so a resumed run restores every model), each trained model is saved
(``ctx.save_model(recipe, ...)``: ``workbench.runs.load_model(run_id, recipe)`` rebuilds it), then one evaluation:

- during training, ``<recipe>/test_subset/accuracy``: clean accuracy on a fixed subset of ``curve_images``
  test images every ``eval_every`` steps — a training curve, not the result;
- at the end, ``<recipe>/clean_accuracy``: THE clean accuracy, on the full test set, with its ECE (15 bins),
  confidence gap and reliability table; on the first ``eval_limit`` test images: accuracy (and ECE) per
  corruption × severity on the cached DATASET-C, mean corruption accuracy (15 standard ones), mCE normalised to
  the ``baseline`` recipe, NFM's noise curves (white noise in the normalised space, salt and pepper) and flip
  probabilities;
- two_moons: clean accuracy, ECE, accuracy under additive Gaussian noise, and a decision-boundary grid.

Under torchrun every recipe trains data-parallel on the global batch (``batch_size``, split across the ranks): each
rank prepares and trains its rows, every random draw is the global batch's sliced (:mod:`.training`), mixing
partners come from every rank, gradients are averaged after each backward pass (one flat all-reduce: the recipes run
the model stage by stage, which DistributedDataParallel's forward hook would not see), batch norm is synchronised on
CUDA and per rank on CPU (running statistics averaged before every evaluation), and every evaluation forward pass is
sharded over the ranks and gathered; the claims are computed on every rank alike and recorded once (rank 0).

Metrics are logged as ``<recipe>/<name>``; tables are stored as artifacts (``summary``, ``corruption_table``,
``noise_curves``, ``reliability``, ``decision_boundary``, ``corruption_preview``) for the views. :func:`run_suite`
returns the scalars and, per recipe, the per-image :class:`Evidence` the claims' bootstraps resample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.context import RunContext
from workbench.lib.metrics import expected_calibration_error, reliability
from workbench.lib.robustness.benchmark import BENCHMARK, baseline_table, corruption_table, evaluate_classifier
from workbench.lib.robustness.corruptions import STANDARD, corrupt
from workbench.lib.robustness.inputs import Standardised, channel_stats
from workbench.lib.robustness.metrics import mce, predict
from workbench.lib.robustness.params import SuiteParams
from workbench.lib.robustness.training import Recipe, RecipeTrainer

__all__ = ["Results", "Evidence", "SuiteResult", "run_suite", "summarise", "robust_classifier", "classifier_spec",
           "lr_factor", "KEY_METRICS", "SUITE_NOTE", "MOONS_NOISE"]

Results = dict[str, dict[str, Any]]  # recipe -> its summary scalars
MOONS_NOISE = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
KEY_METRICS = ("*/train/loss", "*/test_subset/accuracy")
SUITE_NOTE = ("data-parallel: the global batch is split across the ranks with the global batch's random draws, "
              "mixing partners gathered from every rank, gradients averaged; batch_size must divide by the ranks")


@dataclass(frozen=True)
class Evidence:
    """One recipe's per-image results, on the same images for every recipe (so differences are paired).

    labels, correct, probs: the full clean test set. noise_hits: per image of the evaluation subset, the fraction
    of NFM's six table noise levels it gets right (two_moons: of the Gaussian noise levels above 0).
    corrupted_conf, corrupted_correct: (N, M) max probability and correctness under the M standard corruption ×
    severity pairs evaluated (M = 0 when none were).
    """

    labels: Tensor
    correct: Tensor
    probs: Tensor
    noise_hits: Tensor | None = None
    corrupted_conf: Tensor | None = None
    corrupted_correct: Tensor | None = None

    @property
    def corruption_hits(self) -> Tensor | None:
        """Per image, the fraction of the standard corruption × severity pairs it gets right (None: not run)."""
        c = self.corrupted_correct
        return None if c is None or c.shape[1] == 0 else c.double().mean(1)


@dataclass(frozen=True)
class SuiteResult:
    """What :func:`run_suite` measured: ``summary`` {recipe: scalars} and ``evidence`` {recipe: per image}."""

    summary: Results
    evidence: dict[str, Evidence]


def robust_classifier(arch: str, in_shape: Sequence[int], num_classes: int, width: int | None = None,
                      options: dict[str, Any] | None = None, standardise: bool = False) -> nn.Module:
    """The suite's classifier from its saved spec (``ctx.save_model``'s ``build``): ``build_model(arch, ...)``,
    wrapped in :class:`Standardised` (statistics as buffers, restored with the weights) when ``standardise``."""
    from workbench.lib.nn import build_model

    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()}
    model = build_model(arch, tuple(in_shape), num_classes, width=width, **opts)
    if not standardise:
        return model
    shape = (1, in_shape[0], 1, 1) if len(in_shape) == 3 else (1, in_shape[0])
    return Standardised(model, torch.zeros(shape), torch.ones(shape))


def classifier_spec(cfg: SuiteParams, in_shape: tuple[int, ...], k: int, standardise: bool) -> dict[str, Any]:
    """The plain-values spec of the configured classifier (what :func:`robust_classifier` takes)."""
    arch = cfg.arch if cfg.arch != "auto" else ("mlp" if len(in_shape) == 1 else "cnn")
    options: dict[str, Any] = {}
    if arch == "mlp" and len(in_shape) == 1:
        options["depth"] = 3
    if arch == "resnet":
        options["blocks"] = [cfg.blocks] * min(4, int(math.log2(min(in_shape[-2:]))) + 1)
    width = cfg.width or (64 if len(in_shape) == 1 else None)
    return {"arch": arch, "in_shape": list(in_shape), "num_classes": k, "width": width, "options": options,
            "standardise": standardise}


def _data(cfg: SuiteParams, ctx: RunContext) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    from workbench.lib import data

    x, y = data.tensors(cfg.dataset, "train", seed=cfg.seed)
    xt, yt = data.tensors(cfg.dataset, "test", seed=cfg.seed)
    if cfg.train_size and cfg.train_size < len(x):
        keep = torch.randperm(len(x), generator=ctx.rng("robustness/train_subset"))[: cfg.train_size]
        x, y = x[keep], y[keep]
    y = y.clone()
    k = data.num_classes(cfg.dataset)
    if cfg.label_noise > 0:
        g = ctx.rng("robustness/label_noise")
        flip = torch.rand(len(y), generator=g) < cfg.label_noise
        y[flip] = torch.randint(0, k, (int(flip.sum()),), generator=g)
    return x, y, xt, yt, k


def _input_stats(cfg: SuiteParams, x: Tensor) -> tuple[Tensor, Tensor] | None:
    """(mean, std) the model standardises with: the training set's per channel, 0.5 and 0.5, or None."""
    if cfg.normalise == "none":
        return None
    if cfg.normalise == "fixed":
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
        return torch.full(shape, 0.5), torch.full(shape, 0.5)
    return channel_stats(x)


class ShardedEval(nn.Module):
    """A model for evaluation under torchrun: each rank runs ``inner`` on its rows of every batch and the outputs
    are gathered in order, so every rank gets the whole batch's outputs for a share of the work. Exposes the
    inner model's ``std`` (the space NFM's white noise is added in)."""

    def __init__(self, inner: nn.Module, ctx: RunContext):
        super().__init__()
        self.inner = inner
        self._shard = ctx.shard
        self.train(inner.training)
        std = getattr(inner, "std", None)
        if isinstance(std, Tensor):
            object.__setattr__(self, "std", std)

    def forward(self, x: Tensor) -> Tensor:
        shard = self._shard(len(x))
        return shard.gather(self.inner(shard.take(x)))


def _evaluator(ctx: RunContext, model: nn.Module) -> nn.Module:
    """The model itself in one process; under torchrun its buffers averaged over the ranks, sharded."""
    if ctx.world_size == 1:
        return model
    ctx.average_buffers(model)
    return ShardedEval(model, ctx)


def lr_factor(step: int, cfg: SuiteParams) -> float:
    """The learning-rate multiplier at ``step``: cosine to 0, or ×0.1 at 50%, 75% and 90% of the steps."""
    t = min(step, cfg.steps) / cfg.steps
    if cfg.schedule == "step":
        return 0.1 ** sum(t >= m for m in (0.5, 0.75, 0.9))
    return 0.5 * (1 + math.cos(math.pi * t))


def run_suite(cfg: SuiteParams, ctx: RunContext, recipes: dict[str, Recipe]) -> SuiteResult:
    """Train every recipe (same init, batches, budget), save each model, evaluate all."""
    x, y, xt, yt, k = _data(cfg, ctx)
    in_shape = tuple(x.shape[1:])
    dev = ctx.device
    global_batch = min(cfg.batch_size, len(x))
    shard = sync = None
    if ctx.world_size > 1:
        if global_batch % ctx.world_size:
            from workbench.core.params import ConfigError

            raise ConfigError(f"parameter 'batch_size' = {global_batch} must divide evenly across {ctx.world_size} "
                              "processes", "batch_size")
        shard, sync = ctx.shard(global_batch), ctx.average_gradients
    stats = _input_stats(cfg, x)
    spec = classifier_spec(cfg, in_shape, k, stats is not None)
    models, opts, scheds, batches = {}, {}, {}, {}
    for name in recipes:
        with ctx.seeded("robustness/model"):  # the same initial weights for every recipe
            model = robust_classifier(**spec)
        if stats is not None:
            model.mean.copy_(stats[0])
            model.std.copy_(stats[1])
        model = model.to(dev)
        if ctx.world_size > 1 and dev.type == "cuda":  # global batch statistics (SyncBatchNorm is CUDA-only)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              nesterov=cfg.momentum > 0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
        models[name], opts[name], scheds[name] = model, opt, sched
        # every recipe draws the same batch order ("train"), each from its own resumable stream
        batches[name] = ctx.batches(len(x), global_batch, name=f"{name}/batches", order="train")
        ctx.track(**{f"{name}_model": model, f"{name}_opt": opt, f"{name}_sched": sched})
    gens = {name: ctx.generator(f"recipe/{name}") for name in recipes}  # λ, π, k, noise: checkpointed streams
    curve = torch.randperm(len(xt), generator=ctx.rng("robustness/curve_subset"))[: min(cfg.curve_images, len(xt))]
    xc, yc = xt[curve], yt[curve]

    for name, recipe in recipes.items():
        model = models[name]
        model.train()
        trainer = RecipeTrainer(name, recipe, model, opts[name], x, y, batches[name], gens[name], rng=ctx.rng,
                                total=cfg.steps, augment=cfg.augment, scheduler=scheds[name], device=dev,
                                autocast=ctx.autocast, prefetch=cfg.prefetch, shard=shard, sync=sync)
        try:
            for step in ctx.steps(cfg.steps, phase=f"train {name}"):
                loss = trainer.step(step)
                if step % 10 == 0 or step == cfg.steps - 1:
                    ctx.log(step, **{f"{name}/train/loss": float(ctx.all_reduce_mean(loss))})
                if (step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1:
                    acc = float((predict(_evaluator(ctx, model), xc).argmax(-1) == yc).float().mean())
                    ctx.log(step, **{f"{name}/test_subset/accuracy": acc})
        finally:
            trainer.close()
    evaluators = {name: _evaluator(ctx, model) for name, model in models.items()}
    for name, model in models.items():
        ctx.save_model(name, model, spec, build=robust_classifier)

    if len(in_shape) == 1:
        return _evaluate_points(cfg, ctx, evaluators, x, y, xt, yt)
    return _evaluate_images(cfg, ctx, evaluators, xt, yt)


def _evaluate_images(cfg: SuiteParams, ctx: RunContext, models: dict[str, nn.Module], xt: Tensor,
                     yt: Tensor) -> SuiteResult:
    limit = cfg.eval_limit or None
    names = {"all": BENCHMARK, "standard": tuple(STANDARD), "noise": ()}[cfg.corruption_set]
    root = ctx.cache_dir("dataset-c")
    n_eval = min(limit or len(xt), len(xt))
    if ctx.world_size > 1 and names:  # one rank writes the shared DATASET-C cache, the others then read it
        if ctx.is_main:
            from workbench.lib.robustness.dataset_c import build_c

            build_c(cfg.dataset, "test", names, 0, limit, root)
        ctx.barrier()
    by_model, corrupted = corruption_table(models, cfg.dataset, names, yt[:n_eval], limit, 0, root)
    first = next(iter(models.values()))
    std = first.std.detach().cpu() if isinstance(getattr(first, "std", None), Tensor) else 1.0
    preview(ctx, xt[0], names, std=std)
    table, curves, rel_rows, out, subset_clean, evidence = [], [], [], {}, {}, {}

    def rng(name: str) -> torch.Generator:  # the same noisy images for every recipe
        return ctx.rng(f"robustness/eval/{name}")

    for name, model in models.items():
        ev = evaluate_classifier(model, cfg.dataset, names, limit, 0, root=root, test=(xt, yt), rows=by_model[name],
                                 rng=rng)
        table += [{"variant": name, **r} for r in ev["rows"]]
        curves += [{"variant": name, "images": n_eval, **r} for r in ev["noise_rows"]]
        rel_rows += [{"variant": name, **r} for r in ev["reliability"]]
        out[name] = ev["summary"]
        subset_clean[name] = ev["subset_clean_error"]
        evidence[name] = Evidence(yt, ev["correct"], ev["probs"], ev["noise_hits"], *corrupted[name])
    if names:
        base_rows = {"baseline": ([r for r in table if r["variant"] == "baseline"], subset_clean.get("baseline"))}
        if cfg.baseline_run:
            base_rows["run"] = baseline_table(ctx.read_run(cfg.baseline_run))
        for tag, (base, base_clean) in base_rows.items():
            if not base:
                continue
            suffix = "" if tag == "baseline" else "_vs_run"
            for name in out:
                mine = [r for r in table if r["variant"] == name]
                out[name]["mce" + suffix] = mce(mine, base, STANDARD)[0]
                if base_clean is not None:  # errors minus the clean error on the same images
                    out[name]["relative_mce" + suffix] = mce(mine, base, STANDARD, subset_clean[name], base_clean)[0]
    _record(ctx, cfg, out)
    ctx.artifact("corruption_table", table, kind="table")
    ctx.artifact("noise_curves", curves, kind="table")
    ctx.artifact("reliability", rel_rows, kind="table")
    return SuiteResult(out, evidence)


@torch.no_grad()
def _evaluate_points(cfg: SuiteParams, ctx: RunContext, models: dict[str, nn.Module], x: Tensor, y: Tensor,
                     xt: Tensor, yt: Tensor) -> SuiteResult:
    lo, hi = x.min(0).values - 0.5, x.max(0).values + 0.5
    n = 80
    gx, gy = torch.linspace(float(lo[0]), float(hi[0]), n), torch.linspace(float(lo[1]), float(hi[1]), n)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
    noise = torch.randn(xt.shape, generator=ctx.rng("robustness/eval/moons_noise"))
    curves, rel_rows, boundary, out, evidence = [], [], {"x": gx.tolist(), "y": gy.tolist(), "probs": {}}, {}, {}
    for name, model in models.items():
        probs = predict(model, xt)
        correct = probs.argmax(-1) == yt
        accs, hits = [], torch.zeros(len(yt), dtype=torch.float64)
        for lv in MOONS_NOISE:
            right = predict(model, xt + lv * noise).argmax(-1) == yt
            accs.append(float(right.float().mean()))
            hits += right.double() if lv > 0 else 0.0
            curves.append({"variant": name, "kind": "white_noise", "level": lv, "accuracy": accs[-1]})
        rel_rows += [{"variant": name, **r} for r in reliability(probs, yt, 15)]
        pg = predict(model, grid)
        boundary["probs"][name] = pg[:, 1].reshape(n, n).tolist() if pg.shape[1] == 2 else pg.argmax(-1).reshape(n, n).tolist()
        clean = float(correct.float().mean())
        out[name] = {"clean_accuracy": clean, "ece": expected_calibration_error(probs, yt, 15),
                     "confidence_gap": float(probs.max(-1).values.mean()) - clean,
                     "noise_accuracy": float(np.mean(accs[1:]))}
        evidence[name] = Evidence(yt, correct, probs, hits / (len(MOONS_NOISE) - 1))
    boundary["train"] = {"x": x[:400, 0].tolist(), "y": x[:400, 1].tolist(), "label": y[:400].tolist()}
    _record(ctx, cfg, out)
    ctx.artifact("noise_curves", curves, kind="table")
    ctx.artifact("reliability", rel_rows, kind="table")
    ctx.artifact("decision_boundary", boundary, kind="json")
    return SuiteResult(out, evidence)


def preview(ctx: RunContext, image: Tensor, names: tuple[str, ...], severity: int = 3,
            std: Tensor | float | None = None) -> None:
    """Store one test image under every evaluated corruption and NFM's strongest table noises
    (``corruption_preview``) for the views."""
    from workbench.lib.robustness.noise import TABLE_LEVELS, salt_and_pepper_extremes, white_noise_normalised

    img = image.detach().float().cpu()
    panels = [img.numpy()] + [corrupt(img.numpy()[None], n, severity, seed=0)[0] for n in names]
    labels = ["clean", *names]
    if std is not None:
        sigma, gamma = TABLE_LEVELS["white_noise"][-1], TABLE_LEVELS["salt_and_pepper"][-1]
        gen = ctx.rng("robustness/preview")
        panels.append(white_noise_normalised(img[None], sigma, std, gen)[0].clamp(0, 1).numpy())
        panels.append(salt_and_pepper_extremes(img[None], gamma, gen)[0].numpy())
        labels += [f"white noise σ={sigma}", f"salt+pepper γ={gamma}"]  # σ in the normalised space
    ctx.artifact("corruption_preview", {"severity": severity, "names": labels,
                                        "images": np.stack(panels).astype(np.float32)}, kind="json")


def _record(ctx: RunContext, cfg: SuiteParams, out: Results) -> None:
    for name, res in out.items():
        ctx.log(cfg.steps, **{f"{name}/{key}": float(v) for key, v in res.items()})
    ctx.artifact("summary", [{"variant": name, **res} for name, res in out.items()], kind="table")


def summarise(res: Results, keys: tuple[str, ...]) -> dict[str, float]:
    """The run's returned summary: ``<recipe>/<key>`` for the results named in ``keys``, as floats."""
    return {f"{n}/{k}": float(v) for n, r in res.items() for k, v in r.items() if k in keys}
