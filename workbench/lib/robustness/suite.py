"""Train several training recipes with the same budget and seed, then evaluate them on the same benchmark.

Shared by the ``nfm``, ``noisymix`` and ``robustness_compare`` experiments (each owns its claims; this module
knows none of them). A *recipe* is a :class:`~workbench.lib.robustness.training.Recipe` (or a plain
``loss_fn(model, x, y, generator) -> (loss, logits)``); every recipe gets the same initial weights (seeded),
the same batch order and crop/flip draws, optimiser (SGD + Nesterov momentum + weight decay, cosine or step
learning rate) and number of steps. Inputs are standardised inside the model (``normalise``, the papers'
protocol; :mod:`~workbench.lib.robustness.inputs`). All training phases run first (so a resumed run restores every
model), then one evaluation pass:

- during training, ``<recipe>/test_subset/accuracy``: clean accuracy on a fixed subset of ``curve_images``
  test images every ``eval_every`` steps — a training curve, not the result;
- at the end, ``<recipe>/clean_accuracy``: THE clean accuracy, on the full test set, with its ECE (15 bins) and
  reliability table; on the first ``eval_limit`` test images: accuracy per corruption × severity on the cached
  DATASET-C, mean corruption accuracy (15 standard ones), mCE normalised to the ``baseline`` recipe, NFM's
  noise curves (white noise in the normalised space, salt and pepper) and flip probabilities;
- two_moons: clean accuracy, ECE, accuracy under additive Gaussian noise, and a decision-boundary grid.

Metrics are logged as ``<recipe>/<name>``; tables are stored as artifacts (``summary``, ``corruption_table``,
``noise_curves``, ``reliability``, ``decision_boundary``, ``corruption_preview``) for the views.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Union

import numpy as np
import torch
from torch import Tensor, nn

from workbench.core.context import RunContext
from workbench.lib.metrics import expected_calibration_error, reliability
from workbench.core.params import Config, ConfigError, Param
from workbench.lib.robustness.benchmark import BENCHMARK, baseline_table, corruption_rows, evaluate_classifier
from workbench.lib.robustness.corruptions import STANDARD, corrupt
from workbench.lib.robustness.inputs import Standardised, channel_stats
from workbench.lib.robustness.metrics import mce, predict
from workbench.lib.robustness.training import AUGMENT, Recipe, RecipeTrainer

__all__ = ["SuiteConfig", "LossFn", "Results", "run_suite", "summarise", "fmt", "clean_within_margin",
           "KEY_METRICS", "SUITE_NOTE", "build_classifier", "lr_factor"]

LossFn = Callable[[nn.Module, Tensor, Tensor, torch.Generator], "tuple[Tensor, Tensor]"]
Results = dict[str, dict[str, Any]]  # recipe -> its summary scalars
MOONS_NOISE = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
KEY_METRICS = ("*/train/loss", "*/test_subset/accuracy")
NORMALISE = ("dataset", "fixed", "none")  # what every suite experiment logs per recipe
SUITE_NOTE = ("the recipes are trained one after another in one process; data-parallel training of the suite is "
              "not implemented")


class SuiteConfig(Config):
    """Parameters shared by the robustness experiments (data, model, budget, evaluation)."""

    dataset: str = Param("digits", choices=("digits", "fashion_mnist", "mnist", "cifar10", "two_moons"),
                         doc="training data (two_moons: 2-D points, decision boundaries instead of corruptions)")
    train_size: int = Param(0, bounds=(0, 10_000_000), unit="images",
                            doc="training examples used: a fixed random subset of this size (0: all)")
    arch: str = Param("auto", choices=("auto", "mlp", "cnn", "resnet"),
                      doc="classifier (auto: cnn for images, mlp for points; resnet: PreActResNet)")
    width: int = Param(0, bounds=(0, 1024), doc="model width (0: the architecture's default)")
    blocks: int = Param(2, bounds=(1, 4), doc="PreActResNet: blocks per stage, 4 stages (2: PreActResNet-18)")
    normalise: str = Param("dataset", choices=NORMALISE,
                           doc="inputs standardised inside the model, (x − mean)/std: per channel with the training "
                               "set's mean and std (NFM), with mean = std = 0.5 (NoisyMix's code), or not at all; input "
                               "mixing and NFM's white noise live in that space")
    augment: str = Param("none", choices=AUGMENT,
                         doc="standard augmentation of every recipe (the papers: random crop + horizontal flip)")
    steps: int = Param(500, bounds=(1, 1_000_000), unit="steps", doc="optimizer steps per recipe (same for all)")
    batch_size: int = Param(128, bounds=(2, 4096), doc="examples per batch")
    lr: float = Param(0.05, bounds=(1e-5, 1.0), log=True, doc="SGD learning rate")
    schedule: str = Param("cosine", choices=("cosine", "step"),
                          doc="learning-rate schedule: cosine to 0 (NoisyMix), or ×0.1 at 50%, 75% and 90% of the "
                              "steps (NFM: epochs 100, 150, 180 of 200)")
    momentum: float = Param(0.9, bounds=(0.0, 0.999), doc="SGD momentum")
    weight_decay: float = Param(5e-4, bounds=(0.0, 0.1), doc="SGD weight decay")
    label_noise: float = Param(0.0, bounds=(0.0, 0.5), doc="fraction of training labels replaced by random ones")
    eval_limit: int = Param(0, bounds=(0, 1_000_000), unit="images",
                            doc="test images for the corruption benchmark and the noise curves (0: all); the clean "
                                "accuracy always uses the full test set")
    corruption_set: str = Param("all", choices=("all", "standard", "noise"),
                                doc="corruptions evaluated: the 15 standard + 4 extra, the 15 standard, or none "
                                    "(NFM's noise curves are always measured)")
    eval_every: int = Param(100, bounds=(1, 1_000_000), unit="steps",
                            doc="clean accuracy on the fixed test subset (a training curve) logged every N steps")
    curve_images: int = Param(1000, bounds=(1, 1_000_000), unit="images",
                              doc="size of the fixed test subset of the training curve")
    prefetch: bool = Param(True, doc="prepare the next batch (crop/flip, AugMix views) in a worker thread while a "
                                     "step trains (same numbers either way)")
    margin: float = Param(0.02, bounds=(0.0, 1.0), doc="clean-accuracy margin of the 'within the baseline' claim")
    baseline_run: str = Param("", doc="a stored robustness run whose 'baseline' corruption table normalises mce_vs_run ('' : none)")

    def check(self) -> None:
        if self.dataset == "two_moons" and self.arch in ("cnn", "resnet"):
            raise ConfigError("arch must be 'mlp' or 'auto' for two_moons (2-D points)", "arch")
        if self.dataset == "two_moons" and self.augment != "none":
            raise ConfigError("parameter 'augment' must be 'none' for two_moons (2-D points)", "augment")


def _data(cfg: SuiteConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    from workbench.lib import data

    x, y = data.tensors(cfg.dataset, "train", seed=cfg.seed)
    xt, yt = data.tensors(cfg.dataset, "test", seed=cfg.seed)
    if cfg.train_size and cfg.train_size < len(x):
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed + 104_729))[: cfg.train_size]
        x, y = x[keep], y[keep]
    y = y.clone()
    k = data.num_classes(cfg.dataset)
    if cfg.label_noise > 0:
        g = torch.Generator().manual_seed(cfg.seed + 7919)
        flip = torch.rand(len(y), generator=g) < cfg.label_noise
        y[flip] = torch.randint(0, k, (int(flip.sum()),), generator=g)
    return x, y, xt, yt, k


def build_classifier(cfg: SuiteConfig, in_shape: tuple[int, ...], k: int, stats: tuple[Tensor, Tensor] | None) -> nn.Module:
    """The configured classifier (initialised from ``cfg.seed``), standardising its inputs when ``stats``."""
    from workbench.lib.nn import build_model

    arch = cfg.arch if cfg.arch != "auto" else ("mlp" if len(in_shape) == 1 else "cnn")
    torch.manual_seed(cfg.seed)
    kwargs: dict[str, Any] = {}
    if arch == "mlp" and len(in_shape) == 1:
        kwargs["depth"] = 3
    if arch == "resnet":
        kwargs["blocks"] = (cfg.blocks,) * min(4, int(math.log2(min(in_shape[-2:]))) + 1)
    model = build_model(arch, in_shape, k, width=cfg.width or (64 if len(in_shape) == 1 else None), **kwargs)
    return Standardised(model, *stats) if stats is not None else model


def _input_stats(cfg: SuiteConfig, x: Tensor) -> tuple[Tensor, Tensor] | None:
    """(mean, std) the model standardises with: the training set's per channel, 0.5 and 0.5, or None."""
    if cfg.normalise == "none":
        return None
    if cfg.normalise == "fixed":
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
        return torch.full(shape, 0.5), torch.full(shape, 0.5)
    return channel_stats(x)


def lr_factor(step: int, cfg: SuiteConfig) -> float:
    """The learning-rate multiplier at ``step``: cosine to 0, or ×0.1 at 50%, 75% and 90% of the steps."""
    t = min(step, cfg.steps) / cfg.steps
    if cfg.schedule == "step":
        return 0.1 ** sum(t >= m for m in (0.5, 0.75, 0.9))
    return 0.5 * (1 + math.cos(math.pi * t))


def _curve_subset(cfg: SuiteConfig, n: int) -> Tensor:
    """The fixed test images of the training curve (a seeded random subset, the same for every recipe)."""
    if cfg.curve_images >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 15_485_863))[: cfg.curve_images]


def run_suite(cfg: SuiteConfig, ctx: RunContext, recipes: dict[str, Union[Recipe, LossFn]], *,
              eval_seed: int = 0) -> Results:
    """Train every recipe (same init, batches, budget), evaluate all; returns {recipe: summary scalars}."""
    x, y, xt, yt, k = _data(cfg)
    in_shape = tuple(x.shape[1:])
    dev = ctx.device
    stats = _input_stats(cfg, x)
    models, opts, scheds, batches = {}, {}, {}, {}
    for name in recipes:
        model = build_classifier(cfg, in_shape, k, stats).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              nesterov=cfg.momentum > 0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
        models[name], opts[name], scheds[name] = model, opt, sched
        # every recipe draws the same batch order ("train"), each from its own resumable stream
        batches[name] = ctx.batches(len(x), min(cfg.batch_size, len(x)), name=f"{name}/batches", order="train")
        ctx.track(**{f"{name}_model": model, f"{name}_opt": opt, f"{name}_sched": sched})
    gens = {name: ctx.generator(f"recipe/{name}") for name in recipes}  # λ, π, k, noise: checkpointed streams
    curve = _curve_subset(cfg, len(xt))
    xc, yc = xt[curve], yt[curve]

    for name, recipe in recipes.items():
        model = models[name]
        model.train()
        trainer = RecipeTrainer(name, recipe, model, opts[name], x, y, batches[name], gens[name], seed=cfg.seed,
                                total=cfg.steps, augment=cfg.augment, scheduler=scheds[name], device=dev,
                                autocast=ctx.autocast, prefetch=cfg.prefetch)
        try:
            for step in ctx.steps(cfg.steps, phase=f"train {name}"):
                loss = trainer.step(step)
                if step % 10 == 0 or step == cfg.steps - 1:
                    ctx.log(step, **{f"{name}/train/loss": loss.item()})
                if (step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1:
                    acc = float((predict(model, xc).argmax(-1) == yc).float().mean())
                    ctx.log(step, **{f"{name}/test_subset/accuracy": acc})
        finally:
            trainer.close()

    if len(in_shape) == 1:
        return _evaluate_points(cfg, ctx, models, x, y, xt, yt)
    return _evaluate_images(cfg, ctx, models, xt, yt, eval_seed)


def _evaluate_images(cfg: SuiteConfig, ctx: RunContext, models: dict[str, nn.Module], xt: Tensor, yt: Tensor,
                     eval_seed: int) -> Results:
    limit = cfg.eval_limit or None
    names = {"all": BENCHMARK, "standard": tuple(STANDARD), "noise": ()}[cfg.corruption_set]
    root = ctx.cache_dir("dataset-c")
    n_eval = min(limit or len(xt), len(xt))
    by_model = corruption_rows(models, cfg.dataset, names, yt[:n_eval], limit, eval_seed, root)
    first = next(iter(models.values()))
    std = first.std.detach().cpu() if isinstance(getattr(first, "std", None), Tensor) else 1.0
    preview(ctx, xt[0], names, std=std)
    table, curves, rel_rows, out, subset_clean = [], [], [], {}, {}
    for name, model in models.items():
        ev = evaluate_classifier(model, cfg.dataset, names, limit, eval_seed, root=root, test=(xt, yt),
                                 rows=by_model[name])
        table += [{"variant": name, **r} for r in ev["rows"]]
        curves += [{"variant": name, "images": n_eval, **r} for r in ev["noise_rows"]]
        rel_rows += [{"variant": name, **r} for r in ev["reliability"]]
        out[name] = ev["summary"]
        subset_clean[name] = ev["subset_clean_error"]
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
    return out


@torch.no_grad()
def _evaluate_points(cfg: SuiteConfig, ctx: RunContext, models: dict[str, nn.Module], x: Tensor, y: Tensor,
                     xt: Tensor, yt: Tensor) -> Results:
    lo, hi = x.min(0).values - 0.5, x.max(0).values + 0.5
    n = 80
    gx, gy = torch.linspace(float(lo[0]), float(hi[0]), n), torch.linspace(float(lo[1]), float(hi[1]), n)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    noise = torch.randn(xt.shape, generator=gen)
    curves, rel_rows, boundary, out = [], [], {"x": gx.tolist(), "y": gy.tolist(), "probs": {}}, {}
    for name, model in models.items():
        probs = predict(model, xt)
        clean = float((probs.argmax(-1) == yt).float().mean())
        accs = []
        for lv in MOONS_NOISE:
            acc = float((predict(model, xt + lv * noise).argmax(-1) == yt).float().mean())
            accs.append(acc)
            curves.append({"variant": name, "kind": "white_noise", "level": lv, "accuracy": acc})
        rel_rows += [{"variant": name, **r} for r in reliability(probs, yt, 15)]
        pg = predict(model, grid)
        boundary["probs"][name] = pg[:, 1].reshape(n, n).tolist() if pg.shape[1] == 2 else pg.argmax(-1).reshape(n, n).tolist()
        out[name] = {"clean_accuracy": clean, "ece": expected_calibration_error(probs, yt, 15),
                     "noise_accuracy": float(np.mean(accs[1:]))}
    boundary["train"] = {"x": x[:400, 0].tolist(), "y": x[:400, 1].tolist(), "label": y[:400].tolist()}
    _record(ctx, cfg, out)
    ctx.artifact("noise_curves", curves, kind="table")
    ctx.artifact("reliability", rel_rows, kind="table")
    ctx.artifact("decision_boundary", boundary, kind="json")
    return out


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
        gen = torch.Generator().manual_seed(0)
        panels.append(white_noise_normalised(img[None], sigma, std, gen)[0].clamp(0, 1).numpy())
        panels.append(salt_and_pepper_extremes(img[None], gamma, gen)[0].numpy())
        labels += [f"white noise σ={sigma}", f"salt+pepper γ={gamma}"]  # σ in the normalised space
    ctx.artifact("corruption_preview", {"severity": severity, "names": labels,
                                        "images": np.stack(panels).astype(np.float32)}, kind="json")


def _record(ctx: RunContext, cfg: SuiteConfig, out: Results) -> None:
    for name, res in out.items():
        ctx.log(cfg.steps, **{f"{name}/{key}": float(v) for key, v in res.items()})
    ctx.artifact("summary", [{"variant": name, **res} for name, res in out.items()], kind="table")


def fmt(res: Results, key: str, names: list[str]) -> str:
    """``"baseline 0.912, nfm 0.934"``: one result of several recipes, for a claim's measured text."""
    return ", ".join(f"{n} {res[n][key]:.3f}" for n in names)


def clean_within_margin(ctx: RunContext, cfg: SuiteConfig, res: Results, recipe: str) -> None:
    """Record the claim every robustness method makes: its clean accuracy stays within ``cfg.margin`` of the
    baseline's (when both were trained)."""
    if recipe not in res or "baseline" not in res:
        return
    base, mine = res["baseline"]["clean_accuracy"], res[recipe]["clean_accuracy"]
    ctx.claim(f"{recipe}: clean accuracy stays within {cfg.margin:.0%} of the baseline",
              f"baseline {base:.3f}; {recipe} {mine:.3f}", mine >= base - cfg.margin, f"margin {cfg.margin}")


def summarise(res: Results, keys: tuple[str, ...]) -> dict[str, float]:
    """The run's returned summary: ``<recipe>/<key>`` for the results named in ``keys``, as floats."""
    return {f"{n}/{k}": float(v) for n, r in res.items() for k, v in r.items() if k in keys}
