"""Train several training recipes with the same budget and seed, then evaluate them on the same benchmark.

Shared by the ``nfm``, ``noisymix`` and ``robustness_compare`` experiments (each owns its claims; this module
knows none of them). A *recipe* is a loss function
``loss_fn(model, x, y, generator) -> (loss, logits)``; every recipe gets the same initial weights (seeded),
the same batch order, optimiser (SGD + momentum + weight decay, cosine learning rate) and number of steps.
All training phases run first (so a resumed run restores every model), then one evaluation pass:

- image datasets: clean accuracy, ECE (15 bins) + reliability table, accuracy per corruption × severity on the
  cached DATASET-C (:mod:`workbench.robustness.dataset_c`), mean corruption accuracy (15 standard ones),
  mCE normalised to the ``baseline`` recipe, noise curves (white noise / salt-and-pepper levels), flip
  probability over noise and shift sequences;
- two_moons: clean accuracy, ECE, accuracy under additive Gaussian noise, and a decision-boundary grid.

Metrics are logged as ``<recipe>/<name>``; tables are stored as artifacts (``summary``, ``corruption_table``,
``noise_curves``, ``reliability``, ``decision_boundary``, ``corruption_preview``) for the views.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from workbench.context import RunContext
from workbench.metrics import expected_calibration_error, reliability
from workbench.params import Config, ConfigError, Param
from workbench.robustness.benchmark import baseline_table, evaluate_classifier
from workbench.robustness.corruptions import (CORRUPTIONS, NOISE, SALT_PEPPER_LEVELS, STANDARD, WHITE_NOISE_LEVELS,
                                              corrupt)
from workbench.robustness.dataset_c import load_c
from workbench.robustness.metrics import mce, predict

__all__ = ["SuiteConfig", "LossFn", "Results", "run_suite", "summarise", "fmt", "clean_within_margin",
           "KEY_METRICS", "SUITE_NOTE"]

LossFn = Callable[[nn.Module, Tensor, Tensor, torch.Generator], "tuple[Tensor, Tensor]"]
Results = dict[str, dict[str, Any]]  # recipe -> its summary scalars
MOONS_NOISE = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
KEY_METRICS = ("*/train/loss", "*/test/accuracy")  # what every suite experiment logs per recipe
SUITE_NOTE = ("the recipes are trained one after another in one process; data-parallel training of the suite is "
              "not implemented")


class SuiteConfig(Config):
    """Parameters shared by the robustness experiments (data, model, budget, evaluation)."""

    dataset: str = Param("digits", choices=("digits", "fashion_mnist", "mnist", "cifar10", "two_moons"),
                         doc="training data (two_moons: 2-D points, decision boundaries instead of corruptions)")
    arch: str = Param("auto", choices=("auto", "mlp", "cnn", "resnet"), doc="classifier (auto: cnn for images, mlp for points)")
    width: int = Param(0, bounds=(0, 1024), doc="model width (0: the architecture's default)")
    steps: int = Param(500, bounds=(1, 1_000_000), unit="steps", doc="optimizer steps per recipe (same for all)")
    batch_size: int = Param(128, bounds=(2, 4096), doc="examples per batch")
    lr: float = Param(0.05, bounds=(1e-5, 1.0), log=True, doc="SGD learning rate (cosine decay to 0)")
    momentum: float = Param(0.9, bounds=(0.0, 0.999), doc="SGD momentum")
    weight_decay: float = Param(5e-4, bounds=(0.0, 0.1), doc="SGD weight decay")
    label_noise: float = Param(0.0, bounds=(0.0, 0.5), doc="fraction of training labels replaced by random ones")
    eval_limit: int = Param(0, bounds=(0, 1_000_000), unit="images", doc="test images for the corruption benchmark (0: all)")
    corruption_set: str = Param("all", choices=("all", "standard", "noise"),
                                doc="corruptions evaluated: all 21, the 15 standard (+ noise curves), or the noise curves only")
    eval_every: int = Param(100, bounds=(1, 1_000_000), unit="steps", doc="clean test accuracy logged every N steps")
    margin: float = Param(0.02, bounds=(0.0, 1.0), doc="clean-accuracy margin of the 'within the baseline' claim")
    baseline_run: str = Param("", doc="a stored robustness run whose 'baseline' corruption table normalises mce_vs_run ('' : none)")

    def check(self) -> None:
        if self.dataset == "two_moons" and self.arch in ("cnn", "resnet"):
            raise ConfigError("arch must be 'mlp' or 'auto' for two_moons (2-D points)", "arch")


def _data(cfg: SuiteConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    from workbench import data

    x, y = data.tensors(cfg.dataset, "train", seed=cfg.seed)
    xt, yt = data.tensors(cfg.dataset, "test", seed=cfg.seed)
    y = y.clone()
    k = data.num_classes(cfg.dataset)
    if cfg.label_noise > 0:
        g = torch.Generator().manual_seed(cfg.seed + 7919)
        flip = torch.rand(len(y), generator=g) < cfg.label_noise
        y[flip] = torch.randint(0, k, (int(flip.sum()),), generator=g)
    return x, y, xt, yt, k


def _model(cfg: SuiteConfig, in_shape: tuple[int, ...], k: int) -> nn.Module:
    from workbench.nn import build_model

    arch = cfg.arch if cfg.arch != "auto" else ("mlp" if len(in_shape) == 1 else "cnn")
    torch.manual_seed(cfg.seed)
    kwargs: dict[str, Any] = {}
    if arch == "mlp" and len(in_shape) == 1:
        kwargs["depth"] = 3
    return build_model(arch, in_shape, k, width=cfg.width or (64 if len(in_shape) == 1 else None), **kwargs)


def run_suite(cfg: SuiteConfig, ctx: RunContext, recipes: dict[str, LossFn], *, eval_seed: int = 0) -> Results:
    """Train every recipe (same init, batches, budget), evaluate all; returns {recipe: summary scalars}."""
    x, y, xt, yt, k = _data(cfg)
    in_shape = tuple(x.shape[1:])
    dev = ctx.device
    models, opts, scheds, batches = {}, {}, {}, {}
    for name in recipes:
        model = _model(cfg, in_shape, k).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                              nesterov=cfg.momentum > 0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
        models[name], opts[name], scheds[name] = model, opt, sched
        # every recipe draws the same batch order ("train"), each from its own resumable stream
        batches[name] = ctx.batches(len(x), min(cfg.batch_size, len(x)), name=f"{name}/batches", order="train")
        ctx.track(**{f"{name}_model": model, f"{name}_opt": opt, f"{name}_sched": sched})
    gens = {name: ctx.generator(f"recipe/{name}") for name in recipes}  # λ, π, noise: checkpointed streams

    for name, loss_fn in recipes.items():
        model, opt, sched, bt, gen = models[name], opts[name], scheds[name], batches[name], gens[name]
        model.train()
        for step in ctx.steps(cfg.steps, phase=f"train {name}"):
            idx = next(bt)
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            with ctx.autocast():
                loss, _ = loss_fn(model, xb, yb, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 10 == 0 or step == cfg.steps - 1:
                ctx.log(step, **{f"{name}/train/loss": loss.item()})
            if (step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1:
                acc = float((predict(model, xt).argmax(-1) == yt).float().mean())
                ctx.log(step, **{f"{name}/test/accuracy": acc})

    if len(in_shape) == 1:
        return _evaluate_points(cfg, ctx, models, x, y, xt, yt)
    return _evaluate_images(cfg, ctx, models, xt, yt, eval_seed)


def _evaluate_images(cfg: SuiteConfig, ctx: RunContext, models: dict[str, nn.Module], xt: Tensor, yt: Tensor,
                     eval_seed: int) -> Results:
    limit = cfg.eval_limit or None
    names = {"all": CORRUPTIONS, "standard": tuple(STANDARD) + tuple(NOISE), "noise": tuple(NOISE)}[cfg.corruption_set]
    root = ctx.cache_dir("dataset-c")
    corrupted = {(c, s): load_c(cfg.dataset, c, s, limit=limit, seed=eval_seed, root=root)[0]
                 for c in names for s in range(1, 6)}
    preview(ctx, xt[0], names)
    table, curves, rel_rows, out = [], [], [], {}
    for name, model in models.items():
        ev = evaluate_classifier(model, cfg.dataset, names, limit, eval_seed, corrupted, root=root)
        rows = [{"variant": name, **r} for r in ev["rows"]]
        table += rows
        clean = ev["summary"]["clean_accuracy"]
        for kind, levels in (("white_noise", WHITE_NOISE_LEVELS), ("salt_and_pepper", SALT_PEPPER_LEVELS)):
            curves.append({"variant": name, "kind": kind, "level": 0.0, "accuracy": clean})
            for s, lv in enumerate(levels, 1):
                acc = next(r["accuracy"] for r in rows if r["corruption"] == kind and r["severity"] == s)
                curves.append({"variant": name, "kind": kind, "level": float(lv), "accuracy": acc})
        rel_rows += [{"variant": name, **r} for r in ev["reliability"]]
        out[name] = ev["summary"]
    if cfg.corruption_set != "noise":
        base_rows = {"baseline": ([r for r in table if r["variant"] == "baseline"],
                                  1 - out["baseline"]["clean_accuracy"] if "baseline" in out else None)}
        if cfg.baseline_run:
            base_rows["run"] = baseline_table(ctx.read_run(cfg.baseline_run))
        for tag, (base, base_clean) in base_rows.items():
            if not base:
                continue
            suffix = "" if tag == "baseline" else "_vs_run"
            for name in out:
                mine = [r for r in table if r["variant"] == name]
                out[name]["mce" + suffix] = mce(mine, base, STANDARD)[0]
                if base_clean is not None:
                    out[name]["relative_mce" + suffix] = mce(mine, base, STANDARD, 1 - out[name]["clean_accuracy"], base_clean)[0]
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


def preview(ctx: RunContext, image: Tensor, names: tuple[str, ...], severity: int = 3) -> None:
    """Store one test image under every evaluated corruption (``corruption_preview``) for the views."""
    img = image.detach().float().cpu().numpy()
    panels = [img] + [corrupt(img[None], n, severity, seed=0)[0] for n in names]
    ctx.artifact("corruption_preview", {"severity": severity, "names": ["clean", *names],
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
