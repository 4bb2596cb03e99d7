"""Experiment ``sdebnn``: SDE-BNN against the ODE-net, Bayes-by-backprop and a residual network.

Three settings (``task``; ``all`` runs them together, the gradient variance measured while the regression trains):

(a) ``regression``: 1-D regression with a gap (x ∈ [0, 2] ∪ [6, 8], y = cos x + 0.1·ε); the predictive mean ± 2σ over
    x ∈ [−2, 10] of every model, the ratio of the SDE-BNN's predictive standard deviation in the gap to that on the
    data, the weight paths w(t) of the prior and of the posterior, and the trained model (views re-sample it);
(b) ``classification``: image classification (``dataset``) with accuracy, NLL and ECE of the Monte Carlo predictive;
(c) ``gradvar``: the total variance of per-sample gradients of the variational parameters under sticking-the-landing,
    full Monte Carlo and KL-only estimators, measured along the regression's training.

Every model gets the same data, the same number of steps and the same seed; all models are built and tracked before
the first phase, trained phase by phase, and evaluated at the end (so a resumed run evaluates restored models).
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from workbench.core.context import RunContext
from workbench.core.params import Config, ConfigError, Param
from workbench.core.registry import Experiment, register

from . import data as gapdata
from .baselines import BayesByBackprop, ResidualNet, odenet
from .losses import classification_nll, elbo_loss, gaussian_nll
from .model import ESTIMATORS, SDEBNN
from .train import (Record, gradient_variance, predict_log_probs, predict_regression, step_entropy,
                    step_generator)

TASKS = ("all", "regression", "classification", "gradvar")
BASELINES = ("odenet", "bbb", "resnet")
IMAGE_DATASETS = ("digits", "fashion_mnist", "mnist", "cifar10")


class SDEBNNConfig(Config):
    task: str = Param("all", choices=TASKS, doc="which setting: (a) regression, (b) classification, (c) gradvar, or all")
    dataset: str = Param("digits", choices=IMAGE_DATASETS, doc="image data set of the classification setting")
    baselines: str = Param("odenet,bbb,resnet", doc="comma-separated baselines trained alongside: odenet, bbb, resnet "
                                                    "('none' for the SDE-BNN alone)")
    sigma: float = Param(0.1, bounds=(0.0, 5.0), step=0.01, doc="weight diffusion σ of the OU prior and the posterior")
    estimator: str = Param("stl", choices=ESTIMATORS, doc="KL gradient estimator: sticking the landing, full Monte "
                                                          "Carlo, or the KL integral only")
    method: str = Param("euler", choices=("euler", "midpoint"), doc="SDE solver: Itô Euler–Maruyama or Stratonovich "
                                                                    "midpoint (KL-only estimator)")
    solver_steps: int = Param(10, bounds=(1, 1000), unit="steps", doc="fixed solver steps over depth t ∈ [0, 1]")
    sigma_warmup: float = Param(0.0, bounds=(0.0, 0.9), step=0.05,
                                doc="fraction of the SDE-BNN's steps over which σ ramps linearly from sigma/10 up "
                                    "to sigma (an optimisation schedule for large σ; later steps train sigma's ELBO)")
    adjoint: bool = Param(False, doc="backpropagate with the stochastic adjoint (needs midpoint and estimator kl)")
    adaptive: bool = Param(False, doc="adaptive solver steps")
    w0: str = Param("point", choices=("point", "gaussian"), doc="w(0): a learned point, or Gaussian with its own KL")
    w0_prior_std: float = Param(1.0, bounds=(1e-3, 10.0), log=True, doc="prior std of a Gaussian w(0)")
    drift_hidden: int = Param(64, bounds=(1, 4096), unit="units", doc="hidden units of the posterior drift g_φ")
    kl_scale: float = Param(1.0, bounds=(0.0, 100.0), step=0.1, doc="KL coefficient = kl_scale / N_train "
                                                                     "(1: the ELBO per data point)")
    train_samples: int = Param(4, bounds=(1, 256), unit="paths", doc="sampled weight paths per training step")
    test_samples: int = Param(16, bounds=(1, 1024), unit="paths", doc="sampled weight paths of the predictive")
    # (a) regression / (c) gradient variance
    reg_points: int = Param(40, bounds=(4, 100_000), unit="points", doc="training points of the 1-D task")
    reg_noise: float = Param(0.1, bounds=(0.0, 10.0), step=0.01, doc="noise std of y = cos x + noise·ε (and of the "
                                                                     "Gaussian likelihood)")
    reg_steps: int = Param(2000, bounds=(1, 1_000_000), unit="steps", doc="full-batch Adam steps per 1-D model")
    reg_lr: float = Param(0.01, bounds=(1e-6, 1.0), log=True, doc="Adam learning rate of the 1-D models (cosine decay)")
    reg_hidden: int = Param(32, bounds=(1, 1024), unit="units", doc="hidden units of f_h on the 1-D task")
    reg_aug: int = Param(2, bounds=(0, 64), unit="dims", doc="zero dimensions added to h(0) = x")
    band_every: int = Param(200, bounds=(1, 1_000_000), unit="steps", doc="store the live predictive band every N steps")
    gradvar_every: int = Param(250, bounds=(1, 1_000_000), unit="steps", doc="measure gradient variances every N steps")
    gradvar_samples: int = Param(16, bounds=(2, 10_000), unit="gradients", doc="per-sample gradients per measurement")
    # (b) classification
    steps: int = Param(400, bounds=(1, 1_000_000), unit="steps", doc="Adam steps per image classifier")
    batch_size: int = Param(64, bounds=(2, 8192), unit="images", doc="images per step")
    lr: float = Param(3e-3, bounds=(1e-6, 1.0), log=True, doc="Adam learning rate of the classifiers (cosine decay)")
    img_hidden: int = Param(16, bounds=(1, 512), unit="channels", doc="hidden channels of the convolutional f_h")
    img_aug: int = Param(7, bounds=(0, 64), unit="channels", doc="zero channels added to the image")
    image_pool: int = Param(1, bounds=(1, 8), doc="average-pool images by this factor first (28×28: 2 is 4× cheaper)")
    eval_every: int = Param(200, bounds=(1, 1_000_000), unit="steps", doc="test metrics every N steps")
    # baselines
    bbb_hidden: int = Param(64, bounds=(1, 4096), unit="units", doc="hidden units of the Bayes-by-backprop MLP (2 layers)")
    bbb_prior_std: float = Param(1.0, bounds=(1e-3, 10.0), log=True, doc="prior std of Bayes-by-backprop's weights")
    res_blocks: int = Param(2, bounds=(1, 64), unit="blocks", doc="residual blocks of the residual network")

    def baseline_list(self) -> list[str]:
        text = self.baselines.strip()
        if text in ("", "none"):
            return []
        names = [b.strip() for b in text.split(",") if b.strip()]
        unknown = [b for b in names if b not in BASELINES]
        if unknown:
            raise ConfigError(f"parameter 'baselines' = {self.baselines!r}: unknown {unknown}; allowed: 'none' or a "
                              f"comma-separated list of {', '.join(BASELINES)}", "baselines")
        return list(dict.fromkeys(names))

    def check(self) -> None:
        self.baseline_list()
        if self.estimator != "kl" and self.method != "euler":
            raise ConfigError(f"parameter 'estimator' = {self.estimator!r} needs the Itô calculus (method = 'euler'); "
                              f"with method = {self.method!r} use estimator = 'kl'", "estimator")
        if self.adjoint and (self.method == "euler" or self.estimator != "kl"):
            raise ConfigError("parameter 'adjoint' = True needs method = 'midpoint' and estimator = 'kl' (the "
                              "stochastic adjoint runs in the Stratonovich calculus)", "adjoint")
        if self.sigma == 0:
            raise ConfigError("parameter 'sigma' = 0 is the ODE-net (a baseline); choose sigma > 0", "sigma")


def _sdebnn(cfg: SDEBNNConfig, in_shape: tuple[int, ...], out_dim: int, aug: int, hidden: int, pool: int = 1) -> SDEBNN:
    return SDEBNN(in_shape, out_dim, aug=aug, hidden=hidden, sigma=cfg.sigma, drift_hidden=(cfg.drift_hidden,),
                  estimator=cfg.estimator, method=cfg.method, steps=cfg.solver_steps, adjoint=cfg.adjoint,
                  adaptive=cfg.adaptive, w0=cfg.w0, w0_prior_std=cfg.w0_prior_std, pool=pool)


def _odenet(cfg: SDEBNNConfig, in_shape: tuple[int, ...], out_dim: int, aug: int, hidden: int, pool: int = 1) -> SDEBNN:
    return odenet(in_shape, out_dim, aug=aug, hidden=hidden, drift_hidden=(cfg.drift_hidden,), method=cfg.method,
                  steps=cfg.solver_steps, adjoint=cfg.adjoint, adaptive=cfg.adaptive, pool=pool)


def sigma_at(cfg: SDEBNNConfig, step: int, total: int) -> float:
    """σ of training step ``step``: the warm-up ramp σ·max(0.1, (step + 1)/(warmup·total)), then σ."""
    if cfg.sigma_warmup <= 0:
        return cfg.sigma
    return cfg.sigma * max(0.1, min(1.0, (step + 1) / (cfg.sigma_warmup * total)))


def _cosine(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))


class _Trainee:
    """One model with its optimizer, schedule and whether it is Bayesian (has a KL term)."""

    def __init__(self, name: str, model: torch.nn.Module, lr: float, total: int, bayesian: bool):
        self.name, self.model, self.bayesian = name, model, bayesian
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.sched = _cosine(self.opt, total)
        self.seconds = 0.0

    def track(self, ctx: RunContext, prefix: str) -> None:
        ctx.track(**{f"{prefix}/{self.name}": self.model, f"{prefix}/{self.name}/opt": self.opt,
                     f"{prefix}/{self.name}/sched": self.sched, f"{prefix}/{self.name}/clock": self})

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.seconds = float(state["seconds"])

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()


# -- (a) regression with a gap, (c) gradient variance ------------------------------------------------------------
class RegressionTask:
    def __init__(self, cfg: SDEBNNConfig, ctx: RunContext, rec: Record, baselines: list[str], gradvar: bool):
        self.cfg, self.ctx, self.rec, self.gradvar = cfg, ctx, rec, gradvar
        self.x, self.y = gapdata.gap_regression(cfg.reg_points, cfg.reg_noise, seed=cfg.seed)
        self.xs = gapdata.scale_x(self.x)
        self.grid = gapdata.grid(200)
        a, h, n = cfg.reg_aug, cfg.reg_hidden, cfg.reg_steps
        self.trainees = [_Trainee("sdebnn", _sdebnn(cfg, (1,), 1, a, h), cfg.reg_lr, n, True)]
        builders = {"odenet": lambda: _Trainee("odenet", _odenet(cfg, (1,), 1, a, h), cfg.reg_lr, n, False),
                    "bbb": lambda: _Trainee("bbb", BayesByBackprop((1,), 1, cfg.bbb_hidden, 2, cfg.bbb_prior_std),
                                            cfg.reg_lr, n, True),
                    "resnet": lambda: _Trainee("resnet", ResidualNet((1,), 1, aug=a, hidden=h, blocks=cfg.res_blocks),
                                               cfg.reg_lr, n, False)}
        self.trainees += [builders[b]() for b in baselines]
        for t in self.trainees:
            t.track(ctx, "reg")

    @property
    def sdebnn(self) -> SDEBNN:
        return self.trainees[0].model

    def loss(self, t: _Trainee, out: torch.Tensor, kl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nll = gaussian_nll(out, self.y, max(self.cfg.reg_noise, 1e-3))
        coeff = self.cfg.kl_scale / len(self.y) if t.bayesian else 0.0
        return elbo_loss(nll, kl, coeff), nll

    def train(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        for t in self.trainees:
            samples = cfg.train_samples if t.bayesian else 1
            for step in ctx.steps(cfg.reg_steps, phase=f"reg/{t.name}"):
                start = time.perf_counter()
                if t.name == "sdebnn":
                    t.model.sigma = sigma_at(cfg, step, cfg.reg_steps)
                if t.name == "sdebnn" and self.gradvar and (step % cfg.gradvar_every == 0 or step + 1 == cfg.reg_steps):
                    self._measure_gradvar(step)
                out, kl = t.model(self.xs, samples, entropy=step_entropy(cfg.seed, f"reg/{t.name}", step),
                                  generator=step_generator(cfg.seed, f"reg/{t.name}", step))
                loss, nll = self.loss(t, out, kl)
                t.step(loss)
                t.seconds += time.perf_counter() - start
                metrics = {f"reg/{t.name}/loss": loss.item(), f"reg/{t.name}/nll": nll.item()}
                if t.bayesian:
                    metrics[f"reg/{t.name}/kl"] = float(kl.detach().mean())
                ctx.log(step, **metrics)
                if t.name == "sdebnn" and ((step + 1) % cfg.band_every == 0 or step + 1 == cfg.reg_steps):
                    ctx.artifact("band", self.band([t]), step=step)

    def _measure_gradvar(self, step: int) -> None:
        cfg, model = self.cfg, self.sdebnn
        kl_coeff = cfg.kl_scale / len(self.y)

        def loss_fn(out: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
            return elbo_loss(gaussian_nll(out, self.y, max(cfg.reg_noise, 1e-3)), kl, kl_coeff)

        est = ("stl", "full", "kl") if cfg.method == "euler" else ("kl",)
        res = gradient_variance(model, loss_fn, self.xs, est, cfg.gradvar_samples, cfg.seed, f"gradvar/{step}",
                                model.sde.parameters())
        for name, r in res.items():
            self.rec.add("gradvar", {"step": step, "estimator": name, "variance": r["variance"],
                                     "mean_sq": r["mean_sq"]})
        self.ctx.log(step, **{f"gradvar/{name}": r["variance"] for name, r in res.items()})
        self.ctx.artifact("gradient_variance", self.rec.rows("gradvar"), kind="table")

    def band(self, trainees: list[_Trainee]) -> dict[str, Any]:
        """Predictive mean ± std of each model over the plotted range, a few sampled curves, and the data."""
        cfg = self.cfg
        xg = gapdata.scale_x(self.grid)
        models: dict[str, Any] = {}
        for t in trainees:
            samples = cfg.test_samples if t.name in ("sdebnn", "bbb", "odenet") else 1
            mean, std, draws = predict_regression(t.model, xg, samples, cfg.seed, f"band/{t.name}")
            models[t.name] = {"mean": mean.tolist(), "std": std.tolist(), "samples": draws[:8].tolist()}
        return {"x": self.grid.squeeze(1).tolist(), "train_x": self.x.squeeze(1).tolist(), "train_y": self.y.tolist(),
                "gap": list(gapdata.GAP), "data_ranges": [list(r) for r in gapdata.DATA_RANGES],
                "noise": cfg.reg_noise, "models": models}

    def weight_paths(self, k: int = 4, paths: int = 8) -> dict[str, Any]:
        """w(t) of the k weights the posterior moves most (mean at t = 1, posterior vs prior): both from the same w(0)
        and driven by the same Brownian motion, so that they differ by the posterior drift g only."""
        model, cfg = self.sdebnn, self.cfg
        ts = torch.linspace(0, 1, 2 * cfg.solver_steps + 1)
        noise = step_entropy(cfg.seed, "paths", 0)
        with torch.no_grad():
            post = model.weight_paths(ts, paths, entropy=noise, generator=step_generator(cfg.seed, "paths/w0", 0))
            prior = model.weight_paths(ts, paths, prior=True, entropy=noise,
                                       generator=step_generator(cfg.seed, "paths/w0", 0))
        shift = (post[-1].mean(0) - prior[-1].mean(0)).abs()
        idx = torch.argsort(shift, descending=True)[:k].tolist()
        names = model.layout.names()
        return {"t": ts.tolist(), "index": idx, "names": [names[i] for i in idx], "sigma": model.sigma,
                "prior": prior[:, :, idx].permute(1, 0, 2).tolist(), "posterior": post[:, :, idx].permute(1, 0, 2).tolist()}

    def finish(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        self.sdebnn.sigma = cfg.sigma
        band = self.band(self.trainees)
        on, gap = gapdata.region_masks(self.grid)
        stats: dict[str, dict[str, float]] = {}
        for name, m in band["models"].items():
            std = torch.tensor(m["std"])
            mean = torch.tensor(m["mean"])
            rmse = float((mean[on] - torch.cos(self.grid.squeeze(1)[on])).pow(2).mean().sqrt())
            stats[name] = {"std_data": float(std[on].mean()), "std_gap": float(std[gap].mean()),
                           "std_max": float(std.max()), "rmse_data": rmse}
            stats[name]["ratio"] = stats[name]["std_gap"] / max(stats[name]["std_data"], 1e-12)
        band["stats"] = stats
        ctx.artifact("band", band)
        ctx.artifact("weight_paths", self.weight_paths())
        ctx.artifact("model/regression", self.sdebnn.to_bytes(), kind="bytes")
        summary: dict[str, float] = {}
        for name, s in stats.items():
            if name in ("sdebnn", "bbb"):  # the deterministic nets have no spread (their ratio is rounding noise)
                summary[f"reg/{name}/std_ratio"] = s["ratio"]
            summary[f"reg/{name}/rmse_data"] = s["rmse_data"]
            summary[f"reg/{name}/seconds_per_step"] = next(t for t in self.trainees if t.name == name).seconds / max(
                cfg.reg_steps, 1)
        sde = stats["sdebnn"]
        warm = f" (warm-up over {cfg.sigma_warmup:.0%} of the steps)" if cfg.sigma_warmup > 0 else ""
        setting = (f"1-D gap regression, {cfg.reg_points} points, σ = {cfg.sigma}{warm}, {cfg.reg_steps} steps, "
                   f"{cfg.solver_steps} solver steps, {cfg.test_samples} test paths, estimator {cfg.estimator}, "
                   f"seed {cfg.seed}")
        ode_part, ode_ok = "", True
        if "odenet" in stats:
            ode_part = f"; ODE-net max predictive std {stats['odenet']['std_max']:.1e} (every path identical)"
            ode_ok = stats["odenet"]["std_max"] < 1e-5
        others = "; ".join(f"{n}: gap/data {s['ratio']:.2f}" for n, s in stats.items() if n in ("bbb",))
        ctx.claim("The SDE-BNN's predictive band is wider in the gap than on the data, while the ODE-net has no band",
                  measured=f"std gap {sde['std_gap']:.3f} / std data {sde['std_data']:.3f} = {sde['ratio']:.2f}"
                           + ode_part,
                  holds=bool(sde["ratio"] > 1.0 and ode_ok),
                  detail=setting + (f"; {others}" if others else "") + f"; SDE-BNN RMSE on data {sde['rmse_data']:.3f}")
        if self.gradvar:
            summary.update(self._gradvar_claim())
        return summary

    def _gradvar_claim(self) -> dict[str, float]:
        rows = self.rec.rows("gradvar")
        by: dict[str, dict[int, float]] = {}
        for r in rows:
            by.setdefault(r["estimator"], {})[r["step"]] = r["variance"]
        if "stl" not in by or "full" not in by:
            return {}
        steps = sorted(set(by["stl"]) & set(by["full"]))
        last = steps[-1]
        first = steps[0]
        stl, full = by["stl"][last], by["full"][last]
        ratio = stl / full if full > 0 else math.nan
        trend = ", ".join(f"{s}: {by['stl'][s]:.3g} vs {by['full'][s]:.3g}" for s in steps)
        self.ctx.claim("Near convergence the sticking-the-landing gradient has lower variance than full Monte Carlo",
                       measured=f"var(STL) {stl:.3g} vs var(full MC) {full:.3g} at step {last} (ratio {ratio:.2f}); "
                                f"at step {first}: {by['stl'][first]:.3g} vs {by['full'][first]:.3g}",
                       holds=bool(stl < full),
                       detail=f"total variance of {self.cfg.gradvar_samples} per-sample gradients of the posterior drift "
                              f"parameters, the same Brownian paths for both estimators; steps {trend}")
        return {"gradvar/stl_over_full": ratio}


# -- (b) image classification --------------------------------------------------------------------------------------
class ClassificationTask:
    def __init__(self, cfg: SDEBNNConfig, ctx: RunContext, rec: Record, baselines: list[str]):
        from workbench.lib import data

        self.cfg, self.ctx, self.rec = cfg, ctx, rec
        x, self.y = data.tensors(cfg.dataset, "train+holdout", seed=cfg.seed)
        xt, self.y_test = data.tensors(cfg.dataset, "test", seed=cfg.seed)
        mean, std = float(x.mean()), float(x.std())
        self.x, self.x_test = (x - mean) / std, (xt - mean) / std
        shape, k = tuple(data.input_shape(cfg.dataset)), data.num_classes(cfg.dataset)
        if shape[-1] // cfg.image_pool < 2:
            raise ConfigError(f"parameter 'image_pool' = {cfg.image_pool} leaves less than 2 pixels of the "
                              f"{shape[-1]}-pixel images", "image_pool")
        a, h, p, n = cfg.img_aug, cfg.img_hidden, cfg.image_pool, cfg.steps
        self.trainees = [_Trainee("sdebnn", _sdebnn(cfg, shape, k, a, h, p), cfg.lr, n, True)]
        builders = {"odenet": lambda: _Trainee("odenet", _odenet(cfg, shape, k, a, h, p), cfg.lr, n, False),
                    "bbb": lambda: _Trainee("bbb", BayesByBackprop(shape, k, cfg.bbb_hidden, 2, cfg.bbb_prior_std),
                                            cfg.lr, n, True),
                    "resnet": lambda: _Trainee("resnet", ResidualNet(shape, k, aug=a, hidden=h, blocks=cfg.res_blocks,
                                                                     pool=p), cfg.lr, n, False)}
        self.trainees += [builders[b]() for b in baselines]
        for t in self.trainees:
            t.track(ctx, "cls")
        self.batches = {t.name: ctx.batches(len(self.y), cfg.batch_size, name=f"cls/{t.name}/batches")
                        for t in self.trainees}

    def evaluate(self, t: _Trainee, step: int) -> dict[str, Any]:
        from workbench.lib import metrics

        samples = self.cfg.test_samples if t.bayesian else 1
        logp = predict_log_probs(t.model, self.x_test, samples, self.cfg.seed, f"test/{t.name}")
        ev = metrics.Evaluation(logits=logp, probs=logp.exp(), labels=self.y_test)
        self.ctx.log(step, **{f"cls/{t.name}/test/accuracy": ev.accuracy, f"cls/{t.name}/test/nll": ev.nll,
                              f"cls/{t.name}/test/ece": ev.ece})
        return {"model": t.name, "accuracy": ev.accuracy, "nll": ev.nll, "ece": ev.ece, "samples": samples,
                "params": sum(p.numel() for p in t.model.parameters()),
                "reliability": metrics.reliability(ev.probs, ev.labels, n_bins=15)}

    def train(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        coeff = cfg.kl_scale / len(self.y)
        for t in self.trainees:
            samples = cfg.train_samples if t.bayesian else 1
            for step in ctx.steps(cfg.steps, phase=f"cls/{t.name}"):
                start = time.perf_counter()
                if t.name == "sdebnn":
                    t.model.sigma = sigma_at(cfg, step, cfg.steps)
                idx = next(self.batches[t.name])
                out, kl = t.model(self.x[idx], samples, entropy=step_entropy(cfg.seed, f"cls/{t.name}", step),
                                  generator=step_generator(cfg.seed, f"cls/{t.name}", step))
                nll = classification_nll(out, self.y[idx])
                loss = elbo_loss(nll, kl, coeff if t.bayesian else 0.0)
                t.step(loss)
                t.seconds += time.perf_counter() - start
                metrics = {f"cls/{t.name}/loss": loss.item(), f"cls/{t.name}/nll": nll.item()}
                if t.bayesian:
                    metrics[f"cls/{t.name}/kl"] = float(kl.detach().mean())
                ctx.log(step, **metrics)
                if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
                    self.evaluate(t, step)

    def finish(self) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        self.trainees[0].model.sigma = cfg.sigma
        results = {t.name: self.evaluate(t, cfg.steps - 1) for t in self.trainees}
        rows = []
        for name, r in results.items():
            rows += [{**row, "variant": name} for row in r["reliability"]]
        ctx.artifact("reliability", rows, kind="table")
        table = [{k: v for k, v in r.items() if k != "reliability"}
                 | {"seconds_per_step": t.seconds / max(cfg.steps, 1)} for r, t in zip(results.values(), self.trainees)]
        ctx.artifact("classification", table, kind="table")
        summary = {f"cls/{n}/test/{m}": r[m] for n, r in results.items() for m in ("accuracy", "nll", "ece")}
        if "odenet" in results:
            s, o = results["sdebnn"], results["odenet"]
            gap = abs(s["accuracy"] - o["accuracy"])
            similar = gap <= 0.03
            ctx.claim("At similar accuracy the SDE-BNN's expected calibration error is at most the ODE-net's",
                      measured=f"ECE {s['ece']:.3f} (SDE-BNN) vs {o['ece']:.3f} (ODE-net); accuracy {s['accuracy']:.3f} "
                               f"vs {o['accuracy']:.3f}; NLL {s['nll']:.3f} vs {o['nll']:.3f}",
                      holds=bool(s["ece"] <= o["ece"]) if similar else None,
                      detail=f"{cfg.dataset}, {cfg.steps} steps of batch {cfg.batch_size}, σ = {cfg.sigma}, "
                             f"{cfg.test_samples} test paths, 15-bin ECE, seed {cfg.seed}"
                             + ("" if similar else f"; not evaluated: accuracies differ by {gap:.3f} (> 0.03)"))
        return summary


def preflight(cfg: SDEBNNConfig) -> None:
    """The image data set is needed by the classification setting only (the 1-D task is generated)."""
    if cfg.task in ("all", "classification"):
        from workbench.lib.data import needs_dataset

        needs_dataset(cfg)


def run(cfg: SDEBNNConfig, ctx: RunContext) -> dict[str, float]:
    """Build and track every model, train them phase by phase, then evaluate and check the claims."""
    rec = Record()
    ctx.track(record=rec)
    baselines = cfg.baseline_list()
    reg = (RegressionTask(cfg, ctx, rec, baselines if cfg.task != "gradvar" else [], cfg.task in ("all", "gradvar"))
           if cfg.task in ("all", "regression", "gradvar") else None)
    cls = ClassificationTask(cfg, ctx, rec, baselines) if cfg.task in ("all", "classification") else None
    if reg is not None:
        reg.train()
    if cls is not None:
        cls.train()
    summary: dict[str, float] = {}
    if reg is not None:
        summary.update(reg.finish())
    if cls is not None:
        summary.update(cls.finish())
    return summary


EXPERIMENT = register(Experiment(
    name="sdebnn",
    title="SDE-BNN: weights that follow an SDE",
    description="Infinitely deep Bayesian neural networks whose weights follow a stochastic differential equation "
                "(Xu, Chen, Li & Duvenaud, AISTATS 2022), against an ODE-net, Bayes-by-backprop and a residual net.",
    config=SDEBNNConfig,
    run=run,
    smoke={"reg_steps": 3, "steps": 2, "batch_size": 16, "reg_points": 12, "reg_hidden": 8, "img_hidden": 4,
           "img_aug": 1, "drift_hidden": 8, "solver_steps": 2, "train_samples": 1, "test_samples": 2,
           "gradvar_every": 2, "gradvar_samples": 2, "band_every": 2, "eval_every": 1, "bbb_hidden": 8},
    demo={},
    # a GPU-sized scale-up of the defaults (longer training, more paths, full-size 28×28 images, wider f_h); the
    # paper's own runs used their own convolutional architectures on MNIST and CIFAR-10 for many epochs
    paper={"dataset": "fashion_mnist", "steps": 20_000, "batch_size": 128, "eval_every": 2000, "img_hidden": 32,
           "reg_steps": 10_000, "band_every": 1000, "train_samples": 8, "test_samples": 100, "solver_steps": 20,
           "gradvar_every": 1000, "gradvar_samples": 64},
    key_metrics=("reg/*/loss", "cls/*/test/accuracy", "cls/*/test/ece", "gradvar/*"),
    distributed=False,
    distributed_note="the models train one after another on one process (batches are not sharded across ranks)",
    preflight=preflight,
))
