"""Experiment ``nft``: Neural Functional Transformers against NP/HNP layers and non-equivariant baselines.

1. *Accuracy prediction* (NFT paper §5.1): a zoo of small CNNs (or MLPs) is trained on ``zoo_dataset`` with varied
   hyperparameters, all networks at once (or a local Small CNN Zoo is read); every model in ``models`` learns
   to predict a held-out network's test accuracy from its weights (Kendall's τ, R²).
2. *INR classification* (§5.2): one SIREN per image, all from one shared initialisation, then every SIREN's
   hidden neurons permuted at random; every model classifies the image from the SIREN's weights.
3. *Inr2Array* (§4): an NFT autoencoder maps SIREN weights to an array latent and back (reconstruction); an MLP
   classifies the latent.
4. *Permutation demo*: one network, its hidden neurons permuted at random — its outputs, the invariant models'
   predictions unchanged; the flat MLP's prediction moves.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from workbench.core.context import RunContext
from workbench.core.params import Config, ConfigError, Param
from workbench.core.registry import Experiment, register
from workbench.lib.weightspace import ARCHS, coordinate_grid, render

from .data import build_inrs, build_zoo, mean_psnr
from .model import INVARIANT_KINDS, MODEL_KINDS
from .tasks import accuracy_task, gallery_artifact, inr2array_task, inr_task, permutation_demo

TASKS = ("accuracy", "inr", "inr2array")
EQUIVARIANT = ("nft", "np", "hnp")


class NFTConfig(Config):
    tasks: tuple = Param(TASKS, choices=TASKS, multiple=True,
                         doc="accuracy: predict zoo accuracy; inr: classify SIRENs; inr2array: latent autoencoder")
    models: tuple = Param(MODEL_KINDS, choices=MODEL_KINDS, multiple=True,
                          doc="models compared on tasks accuracy and inr (nft, NP, HNP, weight statistics, flat MLP)")
    # the zoo (task a)
    zoo_dataset: str = Param("digits", choices=("digits", "fashion_mnist"), doc="data the zoo's networks learn")
    zoo_arch: str = Param("cnn", choices=ARCHS, doc="zoo architecture: 3×3 stride-2 CNN + pooling, or MLP")
    zoo_width: int = Param(8, bounds=(2, 256), doc="hidden units (mlp) or channels (cnn) of the zoo's networks")
    zoo_depth: int = Param(2, bounds=(1, 6), doc="hidden layers (conv layers for cnn) of the zoo's networks")
    zoo_size: int = Param(300, bounds=(8, 100_000), unit="networks", doc="networks in the zoo")
    zoo_steps: int = Param(300, bounds=(1, 100_000), unit="steps", doc="most AdamW steps of a zoo network")
    zoo_batch: int = Param(64, bounds=(1, 4096), doc="mini-batch of each zoo network")
    zoo_images: int = Param(5000, bounds=(10, 60_000), unit="images", doc="training images of the zoo (first N)")
    zoo_path: str = Param("", doc="directory of a local Small CNN Zoo data set (weights.npy, layout.csv, "
                                  "metrics.csv); empty: train a zoo")
    test_fraction: float = Param(0.3, bounds=(0.05, 0.9), doc="share of the zoo's networks held out for testing")
    # the models
    d_model: int = Param(32, bounds=(4, 512), doc="NFT width (channels per weight-space entry)")
    heads: int = Param(4, bounds=(1, 32), doc="attention heads")
    depth: int = Param(2, bounds=(1, 12), doc="NFT blocks / NP and HNP layers")
    num_queries: int = Param(4, bounds=(1, 64), doc="learned queries of the NFT's invariant cross-attention pooling")
    channels: int = Param(16, bounds=(1, 256), doc="channels of the NP and HNP layers")
    hidden: int = Param(128, bounds=(4, 4096), doc="hidden units of the MLP heads and baselines")
    fourier_features: int = Param(16, bounds=(1, 256), doc="Gaussian Fourier features per scalar weight (NFT)")
    fourier_scale: float = Param(3.0, bounds=(0.01, 100.0), log=True,
                                 doc="σ of the NFT's Fourier frequencies on the zoo's (standardised) weights")
    inr_fourier_scale: float = Param(10.0, bounds=(0.01, 100.0), log=True,
                                     doc="σ of the NFT's Fourier frequencies on SIREN weights (tasks inr, inr2array)")
    steps: int = Param(400, bounds=(1, 1_000_000), unit="steps", doc="training steps of each accuracy predictor")
    batch_size: int = Param(32, bounds=(1, 4096), unit="networks", doc="networks per training batch")
    lr: float = Param(1e-3, bounds=(1e-6, 1.0), log=True, doc="peak AdamW learning rate (cosine schedule)")
    weight_decay: float = Param(1e-2, bounds=(0.0, 1.0), doc="AdamW weight decay")
    eval_every: int = Param(50, bounds=(1, 1_000_000), unit="steps", doc="test metrics every N steps")
    # INRs (tasks b, c)
    inr_dataset: str = Param("digits", choices=("digits", "fashion_mnist"), doc="images the SIRENs represent")
    inr_train: int = Param(1000, bounds=(4, 60_000), unit="images", doc="training SIRENs (first N training images)")
    inr_test: int = Param(300, bounds=(2, 10_000), unit="images", doc="test SIRENs (first N test images)")
    siren_hidden: int = Param(32, bounds=(2, 256), doc="SIREN width (2 → h → h → channels, ω₀ = 30)")
    siren_steps: int = Param(100, bounds=(1, 100_000), unit="steps", doc="Adam steps fitting each SIREN")
    siren_lr: float = Param(1e-3, bounds=(1e-6, 1.0), log=True, doc="learning rate of the SIREN fits")
    permute_inrs: bool = Param(True, doc="permute every fitted SIREN's hidden neurons at random")
    inr_steps: int = Param(400, bounds=(1, 1_000_000), unit="steps", doc="training steps of each INR classifier")
    latent_grid: int = Param(2, choices=(1, 2, 4), doc="Inr2Array latent array: grid × grid vectors, one per patch")
    ae_steps: int = Param(400, bounds=(1, 1_000_000), unit="steps", doc="Inr2Array reconstruction steps")
    latent_steps: int = Param(300, bounds=(1, 1_000_000), unit="steps", doc="steps of the classifier on the latent")
    gallery_size: int = Param(8, bounds=(1, 64), doc="images in the INR gallery")

    def check(self) -> None:
        if self.d_model % self.heads:
            raise ConfigError(f"parameter 'd_model' = {self.d_model} must be divisible by heads = {self.heads}",
                              "d_model")
        if self.zoo_path and "accuracy" in self.tasks and not Path(self.zoo_path).is_dir():
            raise ConfigError(f"parameter 'zoo_path' = {self.zoo_path!r} is not a directory; allowed: empty (train "
                              "a zoo) or a local Small CNN Zoo data set (weights.npy, layout.csv, metrics.csv)",
                              "zoo_path")
        if not self.tasks:
            raise ConfigError("parameter 'tasks' is empty; allowed: one or more of " + ", ".join(TASKS), "tasks")
        if not self.models and ("accuracy" in self.tasks or "inr" in self.tasks):
            raise ConfigError("parameter 'models' is empty; allowed: one or more of " + ", ".join(MODEL_KINDS),
                              "models")


def run(cfg: NFTConfig, ctx: RunContext) -> dict[str, float]:
    results = ctx.state("results", {"acc": {}, "inr": {}, "inr2array": {}, "demo": {}, "inr_data": {}})
    demo_done = False
    if "accuracy" in cfg.tasks:
        zoo = build_zoo(cfg, ctx)
        models = accuracy_task(cfg, ctx, zoo, results)
        te = torch.tensor(results["acc_split"]["test"])
        j = int(te[torch.argsort(zoo.test_accuracy[te])[len(te) // 2]])
        mu, sd = results["acc_split"]["mean"], results["acc_split"]["std"]
        net = zoo.arch.module(str(zoo.hparams[j].get("activation", "relu"))).double()
        from workbench.lib import data

        if cfg.zoo_path:  # a loaded zoo: random 8×8 inputs through a CNN with its layers
            x = torch.rand(16, zoo.weights.spec.n_in, 8, 8, generator=ctx.generator("demo_inputs"), dtype=torch.float64)
        else:
            x = data.tensors(cfg.zoo_dataset, "test", seed=cfg.seed)[0][:64].double()
        if zoo.arch.kind == "mlp":
            x = x.flatten(1)
        _demo_phase(ctx, results, models, zoo.weights[j], lambda ws: ws.functional_call(net, x),
                    lambda p: p * sd + mu,
                    {"source": "zoo", "network": j, "true_accuracy": float(zoo.test_accuracy[j]),
                     "outputs": f"logits on {len(x)} {'random' if cfg.zoo_path else 'test'} inputs"})
        demo_done = True
    if "inr" in cfg.tasks or "inr2array" in cfg.tasks:
        inr = build_inrs(cfg, ctx)
        results["inr_data"] = {"psnr_train": mean_psnr(inr.mse_train), "psnr_test": mean_psnr(inr.mse_test),
                               "train": inr.train.batch_size, "test": inr.test.batch_size}
        ctx.artifact("inr/gallery", gallery_artifact(inr, cfg.gallery_size))
        if "inr" in cfg.tasks:
            models = inr_task(cfg, ctx, inr, results)
            if not demo_done:
                coords = coordinate_grid(*inr.image_shape[1:], torch.float64)
                _demo_phase(ctx, results, models, inr.test[0], lambda ws: render(ws, coords),
                            lambda p: torch.softmax(p, -1), {"source": "inr", "network": 0,
                                                             "label": int(inr.test_labels[0]),
                                                             "outputs": "the SIREN's render"})
        if "inr2array" in cfg.tasks:
            inr2array_task(cfg, ctx, inr, results)
            # (again: a resumed run gets the reconstructions back from the checkpoint only now)
            ctx.artifact("inr/gallery", gallery_artifact(inr, cfg.gallery_size,
                                                         results["inr2array"].get("reconstruction")))
    ctx.artifact("results", result_rows(results), kind="table")
    claims(cfg, ctx, results)
    return summary(results)


def _demo_phase(ctx: RunContext, results: dict, models: dict, ws, network, scale, info: dict) -> None:
    """The permutation demo in a phase of its own (on resume it runs once the trained models are restored)."""
    for _ in ctx.steps(1, phase="permutation demo"):
        demo = permutation_demo(models, ws, network, ctx.generator("permutation_demo"), scale=scale)
        demo.update(info)
        results["demo"] = demo
        ctx.artifact("permutation_demo", demo)


def result_rows(results: dict) -> list[dict[str, Any]]:
    """One row per (task, model, metric): what the result views draw."""
    rows = []
    for kind, r in results["acc"].items():
        rows += [{"task": "accuracy prediction", "model": kind, "metric": m, "value": r[m]}
                 for m in ("kendall_tau", "r2")]
        rows.append({"task": "accuracy prediction", "model": kind, "metric": "parameters", "value": r["parameters"]})
    for kind, r in results["inr"].items():
        rows.append({"task": "INR classification", "model": kind, "metric": "test_accuracy", "value": r["accuracy"]})
    if "accuracy" in results["inr2array"]:
        rows.append({"task": "INR classification", "model": "inr2array", "metric": "test_accuracy",
                     "value": results["inr2array"]["accuracy"]})
    if "recon_psnr" in results["inr2array"]:
        rows.append({"task": "Inr2Array", "model": "inr2array", "metric": "reconstruction_psnr",
                     "value": results["inr2array"]["recon_psnr"]})
    return rows


def summary(results: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, r in results["acc"].items():
        out[f"acc/{kind}/kendall_tau"] = r["kendall_tau"]
        out[f"acc/{kind}/r2"] = r["r2"]
    for kind, r in results["inr"].items():
        out[f"inr/{kind}/accuracy"] = r["accuracy"]
    for k in ("accuracy", "recon_psnr", "invariance"):
        if k in results["inr2array"]:
            out[f"inr2array/{k}"] = results["inr2array"][k]
    if results["inr_data"]:
        out["siren/psnr_test"] = results["inr_data"]["psnr_test"]
    if results["demo"]:
        out["demo/output_change"] = results["demo"]["output_change"]
        for kind, r in results["demo"]["models"].items():
            out[f"demo/{kind}/max_change"] = r["max_change"]
    return {k: float(v) for k, v in out.items()}


def _fmt(d: dict[str, float], key: str) -> str:
    return ", ".join(f"{k} {v[key]:.3f}" for k, v in d.items())


def claims(cfg: NFTConfig, ctx: RunContext, results: dict) -> None:
    acc, inr, i2a, demo = results["acc"], results["inr"], results["inr2array"], results["demo"]
    zoo = (f"zoo: {cfg.zoo_path}" if cfg.zoo_path else
           f"zoo of {cfg.zoo_size} {cfg.zoo_arch.upper()}s (width {cfg.zoo_width}, depth {cfg.zoo_depth}) on "
           f"{cfg.zoo_dataset}, {cfg.zoo_steps} steps max")
    setting = (f"seed {cfg.seed}; NFT d={cfg.d_model}, {cfg.heads} heads, depth {cfg.depth}, Fourier σ "
               f"{cfg.fourier_scale:g} (zoo) / {cfg.inr_fourier_scale:g} (SIRENs); NP/HNP {cfg.channels} channels")
    eq = {k: acc[k] for k in EQUIVARIANT if k in acc}
    if "flat" in acc and eq:
        flat = acc["flat"]["kendall_tau"]
        holds = all(r["kendall_tau"] > flat for r in eq.values())
        ctx.claim("Equivariant weight-space models (NFT, NP, HNP) predict a network's test accuracy better than a "
                  "flat MLP on its weights (Kendall τ)",
                  measured=f"τ: {_fmt(eq, 'kendall_tau')} vs flat MLP {flat:.3f}"
                           + (f" (weight statistics {acc['stats']['kendall_tau']:.3f})" if "stats" in acc else ""),
                  holds=holds,
                  detail=f"{zoo}; {cfg.test_fraction:.0%} of networks held out; {cfg.steps} steps per model; {setting}")
    if "nft" in inr and "np" in inr:
        a, b, n = inr["nft"]["accuracy"], inr["np"]["accuracy"], inr["np"]["n_test"]
        se = math.sqrt(max(b * (1 - b), 1e-12) / max(n, 1))
        ctx.claim("NFT matches or beats NP on classifying images from the weights of permuted SIRENs",
                  measured=f"test accuracy NFT {a:.3f} vs NP {b:.3f} (others: "
                           f"{_fmt({k: v for k, v in inr.items() if k not in ('nft', 'np')}, 'accuracy') or 'none'})",
                  holds=a >= b - se,
                  detail=f"'matches' = within one binomial standard error ({se:.3f}) of NP; {cfg.inr_train} train / "
                         f"{n} test SIRENs of {cfg.inr_dataset}, shared initialisation, hidden neurons "
                         f"{'permuted' if cfg.permute_inrs else 'not permuted'}; {cfg.inr_steps} steps; {setting}")
    if "accuracy" in i2a and "nft" in inr:
        a, b = i2a["accuracy"], inr["nft"]["accuracy"]
        ctx.claim("Inr2Array's latent classifies INRs better than an NFT on the raw weights (paper: +17 points on "
                  "CIFAR-10)",
                  measured=f"Inr2Array latent {a:.3f} vs NFT {b:.3f} ({100 * (a - b):+.1f} points); reconstruction "
                           f"PSNR {i2a.get('recon_psnr', float('nan')):.1f} dB",
                  holds=a > b,
                  detail=f"{cfg.latent_grid}×{cfg.latent_grid} latent array, {cfg.ae_steps} reconstruction + "
                         f"{cfg.latent_steps} classifier steps; {cfg.inr_dataset}; {setting}")
    if demo:
        inv = {k: r["max_change"] for k, r in demo["models"].items() if k in INVARIANT_KINDS}
        flat = demo["models"].get("flat", {}).get("max_change")
        holds = demo["output_change"] <= 1e-9 and all(v <= 1e-9 for v in inv.values()) and (flat is None or flat > 1e-6)
        ctx.claim("Permuting a network's hidden neurons leaves its function and every invariant model's prediction "
                  "unchanged; a flat MLP's prediction moves",
                  measured=f"output change {demo['output_change']:.1e}; prediction change "
                           + ", ".join(f"{k} {v:.1e}" for k, v in inv.items())
                           + (f"; flat MLP {flat:.1e}" if flat is not None else ""),
                  holds=holds,
                  detail=f"{demo['permutations']} random permutations of network {demo['network']} "
                         f"({demo['source']}), float64; 'unchanged' = at most 1e-9")


EXPERIMENT = register(Experiment(
    name="nft",
    title="Neural Functional Transformers and Inr2Array",
    description="Learning from the weights of other networks: permutation-equivariant weight-space attention "
                "(NFT) against NP/HNP layers, on accuracy prediction, INR classification and Inr2Array "
                "(Zhou et al., NeurIPS 2023).",
    config=NFTConfig,
    run=run,
    smoke={"zoo_size": 12, "zoo_steps": 8, "zoo_width": 4, "zoo_images": 200, "zoo_batch": 16, "steps": 3,
           "batch_size": 4, "d_model": 8, "heads": 2, "depth": 1, "num_queries": 2, "channels": 4, "hidden": 16,
           "fourier_features": 4, "inr_train": 12, "inr_test": 6, "siren_hidden": 8, "siren_steps": 5,
           "inr_steps": 3, "ae_steps": 3, "latent_steps": 3, "eval_every": 2, "gallery_size": 4},
    demo={"zoo_size": 200, "zoo_steps": 200, "zoo_batch": 32, "steps": 300, "inr_train": 800, "inr_test": 300,
          "siren_steps": 60, "inr_steps": 300, "ae_steps": 300, "latent_steps": 300, "d_model": 16, "heads": 2,
          "eval_every": 50},
    key_metrics=("acc/*/test/kendall_tau", "inr/*/test/accuracy", "inr2array/recon/*/loss"),
    distributed_note="the models train on mini-batches of whole networks in one process; sharding the zoo and the "
                     "SIRENs across ranks is not implemented",
))
