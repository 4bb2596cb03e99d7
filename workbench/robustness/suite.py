"""Train several training recipes with the same budget and seed, then evaluate them on the same benchmark.

Shared by the ``nfm``, ``noisymix`` and ``robustness_compare`` experiments. A *recipe* is a loss function
``loss_fn(model, x, y, generator) -> (loss, logits)``; every recipe gets the same initial weights (seeded),
the same batch order, optimiser (SGD + momentum + weight decay, cosine learning rate) and number of steps.
All training phases run first (so a resumed run restores every model), then one evaluation pass:

- image datasets: clean accuracy, ECE (15 bins) + reliability table, accuracy per corruption × severity on the
  cached DATASET-C (:mod:`workbench.robustness.dataset_c`), mean corruption accuracy (15 standard ones),
  mCE normalised to the ``baseline`` recipe, noise curves (white noise / salt-and-pepper levels), flip
  probability over noise and shift sequences;
- two_moons: clean accuracy, ECE, accuracy under additive Gaussian noise, and a decision-boundary grid.

Metrics are logged as ``<recipe>/<name>``; tables are stored as artifacts (``summary``, ``corruption_table``,
``noise_curves``, ``reliability``, ``decision_boundary``) for the views.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from workbench.batches import IndexBatches
from workbench.metrics import expected_calibration_error, reliability
from workbench.params import Config, ConfigError, Param
from workbench.robustness.corruptions import CORRUPTIONS, NOISE, SALT_PEPPER_LEVELS, STANDARD, WHITE_NOISE_LEVELS
from workbench.robustness.benchmark import baseline_table, evaluate_classifier
from workbench.robustness.dataset_c import load_c
from workbench.robustness.metrics import mce, predict

__all__ = ["SuiteConfig", "LossFn", "run_suite", "parse_recipes", "check_claims", "summarise", "KEY_METRICS"]

LossFn = Callable[[nn.Module, Tensor, Tensor, torch.Generator], "tuple[Tensor, Tensor]"]
MOONS_NOISE = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
KEY_METRICS = ("*/train/loss", "*/test/accuracy")  # what every suite experiment logs per recipe


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


def parse_recipes(text: str, known: tuple[str, ...], param: str = "variants") -> list[str]:
    """A comma-separated recipe list, checked against ``known``."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError(f"{param} must name at least one of {', '.join(known)}", param)
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"{param}: unknown {', '.join(bad)}; allowed: {', '.join(known)}", param)
    if len(set(names)) != len(names):
        raise ConfigError(f"{param} lists a recipe twice", param)
    return names


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


def run_suite(cfg: SuiteConfig, ctx: Any, recipes: dict[str, LossFn], *, eval_seed: int = 0) -> dict[str, dict[str, Any]]:
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
        bt = IndexBatches(len(x), min(cfg.batch_size, len(x)), seed=cfg.seed)
        models[name], opts[name], scheds[name], batches[name] = model, opt, sched, bt
        ctx.track(**{f"{name}_model": model, f"{name}_opt": opt, f"{name}_sched": sched, f"{name}_batches": bt})
    gens = {name: ctx.generator(f"recipe/{name}") for name in recipes}
    ctx.track(**{f"{name}_rng": _GeneratorState(g) for name, g in gens.items()})  # exact resume of λ, π, noise

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


class _GeneratorState:
    """Checkpoint adapter: a torch.Generator's state as ``state_dict`` / ``load_state_dict``."""

    def __init__(self, gen: torch.Generator):
        self.gen = gen

    def state_dict(self) -> dict[str, Tensor]:
        return {"state": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.gen.set_state(state["state"])


def _evaluate_images(cfg: SuiteConfig, ctx: Any, models: dict[str, nn.Module], xt: Tensor, yt: Tensor,
                     eval_seed: int) -> dict[str, dict[str, Any]]:
    limit = cfg.eval_limit or None
    names = {"all": CORRUPTIONS, "standard": tuple(STANDARD) + tuple(NOISE), "noise": tuple(NOISE)}[cfg.corruption_set]
    corrupted = {(c, s): load_c(cfg.dataset, c, s, limit=limit, seed=eval_seed)[0] for c in names for s in range(1, 6)}
    table, curves, rel_rows, out = [], [], [], {}
    for name, model in models.items():
        ev = evaluate_classifier(model, cfg.dataset, names, limit, eval_seed, corrupted)
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
            base_rows["run"] = baseline_table(cfg.baseline_run)
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
def _evaluate_points(cfg: SuiteConfig, ctx: Any, models: dict[str, nn.Module], x: Tensor, y: Tensor, xt: Tensor,
                     yt: Tensor) -> dict[str, dict[str, Any]]:
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


def _record(ctx: Any, cfg: SuiteConfig, out: dict[str, dict[str, Any]]) -> None:
    for name, res in out.items():
        ctx.log(cfg.steps, **{f"{name}/{key}": float(v) for key, v in res.items()})
    ctx.artifact("summary", [{"variant": name, **res} for name, res in out.items()], kind="table")


def _fmt(res: dict[str, dict[str, Any]], key: str, names: list[str]) -> str:
    return ", ".join(f"{n} {res[n][key]:.3f}" for n in names)


def check_claims(ctx: Any, cfg: SuiteConfig, res: dict[str, dict[str, Any]], which: tuple[str, ...]) -> list[dict[str, Any]]:
    """Log the issue's claims that the trained recipes allow (``which`` ⊂ {noise, corruption, ece, clean})."""
    claims: list[dict[str, Any]] = []

    def claim(text: str, measured: str, holds: bool, detail: str) -> None:
        ctx.claim(text, measured, bool(holds), detail)
        claims.append({"claim": text, "measured": measured, "holds": bool(holds)})

    nfm_family = [n for n in ("baseline", "input_mixup", "manifold_mixup", "noisy_input_mixup", "noise_only", "nfm") if n in res]
    if "noise" in which and "nfm" in res and len(nfm_family) > 1:
        best = max(nfm_family, key=lambda n: res[n]["noise_accuracy"])
        claim("NFM keeps the highest accuracy as test-time noise grows",
              _fmt(res, "noise_accuracy", nfm_family), best == "nfm",
              ("mean accuracy over the Gaussian input-noise levels " if cfg.dataset == "two_moons" else
               "mean accuracy over the white-noise and salt-and-pepper levels ")
              + f"against the mixup family (best: {best}); dataset {cfg.dataset}")
    if "corruption" in which and "noisymix" in res and "mean_corruption_accuracy" in res["noisymix"] and len(res) > 1:
        names = list(res)
        best = max(names, key=lambda n: res[n]["mean_corruption_accuracy"])
        claim("NoisyMix has the best mean corruption accuracy", _fmt(res, "mean_corruption_accuracy", names),
              best == "noisymix", f"15 standard corruptions × 5 severities (best: {best}); dataset {cfg.dataset}")
    if "ece" in which:
        pairs = [(a, b) for a, b in (("augmix_jsd", "baseline"), ("noisymix", "nfm")) if a in res and b in res]
        if not pairs and "noisymix" in res and "baseline" in res:
            pairs = [("noisymix", "baseline")]
        if pairs:
            measured = "; ".join(f"{a} {res[a]['ece']:.3f} vs {b} {res[b]['ece']:.3f}" for a, b in pairs)
            claim("The stability (JSD) loss lowers ECE", measured, all(res[a]["ece"] < res[b]["ece"] for a, b in pairs),
                  "15-bin ECE on the clean test set, recipe with the JSD term vs the same recipe without it")
    if "clean" in which and "baseline" in res:
        others = [n for n in ("nfm", "noisymix") if n in res]
        if others:
            base = res["baseline"]["clean_accuracy"]
            measured = f"baseline {base:.3f}; " + _fmt(res, "clean_accuracy", others)
            claim(f"Clean accuracy stays within {cfg.margin:.0%} of the baseline", measured,
                  all(res[n]["clean_accuracy"] >= base - cfg.margin for n in others), f"margin {cfg.margin}")
    if claims:
        ctx.artifact("claims", claims, kind="table")
    return claims


def summarise(res: dict[str, dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    """The run's returned summary: ``<recipe>/<key>`` for the results named in ``keys``, as floats."""
    return {f"{n}/{k}": float(v) for n, r in res.items() for k, v in r.items() if k in keys}
