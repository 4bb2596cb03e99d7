"""``classify``: plain supervised image classification, the baseline the other methods compare against.

Train an MLP, a small CNN or a pre-activation ResNet on a registered image dataset with SGD or AdamW and a
cosine/step/constant schedule; report train loss, test accuracy, ECE (15 bins), NLL, per-class accuracy,
the confusion matrix and the reliability table. Under torchrun every rank trains on its shard of each
global batch (DistributedDataParallel averages the gradients), so the curve matches a 1-process run.
"""
from __future__ import annotations

from typing import Any

import torch

from workbench.core.context import RunContext
from workbench.lib.data import needs_dataset
from workbench.core.params import Config, ConfigError, Param
from workbench.core.registry import Experiment, register
from .augment import Augmenter
from .schedules import SCHEDULES, lr_factor

IMAGE_DATASETS = ("digits", "fashion_mnist", "mnist", "cifar10")
#: datasets whose classes survive a left-right mirror (not digits)
FLIP_OK = ("fashion_mnist", "cifar10")


class ClassifyConfig(Config):
    dataset: str = Param("digits", choices=IMAGE_DATASETS, doc="image dataset (digits: 8x8, offline, fastest)")
    train_split: str = Param("train+holdout", choices=("train", "train+holdout"),
                             doc="train on all official training data, or keep the 10% holdout aside")
    arch: str = Param("cnn", choices=("mlp", "cnn", "resnet"), doc="classifier: MLP, small CNN or PreActResNet")
    width: int = Param(32, bounds=(1, 1024), unit="channels", doc="hidden units (mlp) or base channels (cnn, resnet)")
    depth: int = Param(2, bounds=(1, 8), unit="stages", doc="hidden layers (mlp) or residual stages (resnet, 2 blocks each)")
    dropout: float = Param(0.0, bounds=(0.0, 0.9), step=0.05, doc="dropout before the classifier head")
    optimizer: str = Param("sgd", choices=("sgd", "adamw"), doc="SGD with Nesterov momentum, or AdamW")
    lr: float = Param(0.05, bounds=(1e-6, 10.0), log=True, unit="lr", doc="peak learning rate")
    momentum: float = Param(0.9, bounds=(0.0, 0.999), step=0.01, doc="SGD momentum (AdamW: beta1)")
    weight_decay: float = Param(5e-4, bounds=(0.0, 1.0), log=False, step=1e-4, doc="weight decay")
    schedule: str = Param("cosine", choices=SCHEDULES, doc="learning-rate schedule")
    warmup: int = Param(0, bounds=(0, 100_000), unit="steps", doc="linear warm-up steps")
    augment: bool = Param(True, doc="random crop with padding (+ horizontal flip where classes allow it)")
    label_smoothing: float = Param(0.0, bounds=(0.0, 0.5), step=0.01, doc="label smoothing of the cross-entropy")
    batch_size: int = Param(128, bounds=(2, 8192), unit="images", doc="global batch size (split across ranks)")
    steps: int = Param(300, bounds=(1, 1_000_000), unit="steps", doc="optimizer steps")
    eval_every: int = Param(100, bounds=(1, 1_000_000), unit="steps", doc="evaluate on the test set every N steps")

    def check(self) -> None:
        if self.warmup >= self.steps:
            raise ConfigError(f"parameter 'warmup' = {self.warmup} must be smaller than steps = {self.steps}", "warmup")


def _optimizer(cfg: ClassifyConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # biases and norm scales: no weight decay
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def build(cfg: ClassifyConfig, in_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """The classifier a config describes (``depth`` means MLP hidden layers / ResNet stages)."""
    from workbench.lib.nn import build_model

    extra: dict[str, Any] = {}
    if cfg.arch == "mlp":
        extra["depth"] = cfg.depth
    elif cfg.arch == "resnet":
        extra["blocks"] = (2,) * cfg.depth
    return build_model(cfg.arch, in_shape, num_classes, width=cfg.width, dropout=cfg.dropout, **extra)


def run(cfg: ClassifyConfig, ctx: RunContext) -> dict[str, Any]:
    """Train and evaluate (see the module docstring)."""
    from workbench.lib import data
    from workbench.lib import metrics

    device = ctx.device
    X, y = data.tensors(cfg.dataset, cfg.train_split, seed=cfg.seed)
    X_test, y_test = data.tensors(cfg.dataset, "test", seed=cfg.seed)
    X, y = X.to(device), y.to(device)
    shape, k = data.input_shape(cfg.dataset), data.num_classes(cfg.dataset)
    if cfg.batch_size % ctx.world_size:
        raise ConfigError(f"parameter 'batch_size' = {cfg.batch_size} must divide evenly across "
                          f"{ctx.world_size} processes", "batch_size")

    net = build(cfg, shape, k).to(device)
    model = ctx.distribute(net)
    opt = _optimizer(cfg, net)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.schedule, s, cfg.steps, cfg.warmup))
    augment = Augmenter(shape, flip=cfg.dataset in FLIP_OK, generator=ctx.generator("augment"),
                        rank=ctx.rank, world_size=ctx.world_size)
    ctx.track(model=net, opt=opt, sched=sched, augment=augment)
    batches = ctx.batches(n=len(y), batch_size=cfg.batch_size, name="train")
    global_batch = min(cfg.batch_size, len(y))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def evaluate(step: int) -> metrics.Evaluation:
        ev = metrics.evaluate(net, X_test, y_test, batch_size=1024, device=device)
        ctx.log(step, **{"test/accuracy": ev.accuracy, "test/ece": ev.ece, "test/nll": ev.nll})
        return ev

    ev = None
    for step in ctx.steps(cfg.steps, phase="train"):
        idx = next(batches).to(device)
        xb, yb = X[idx], y[idx]
        if cfg.augment:
            xb = augment(xb, global_batch)
        model.train()
        with ctx.autocast():
            logits = model(xb)
            loss = loss_fn(logits.float(), yb)
        lr_now = opt.param_groups[0]["lr"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc = (logits.argmax(1) == yb).float().mean()
        ctx.log(step, **{"train/loss": float(ctx.all_reduce_mean(loss)),
                         "train/accuracy": float(ctx.all_reduce_mean(acc)),
                         "train/lr": lr_now})
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            ev = evaluate(step)

    if ev is None:  # resumed after the last step
        ev = evaluate(cfg.steps - 1)
    names = data.class_names(cfg.dataset)
    per_class = ev.per_class()
    counts = torch.bincount(ev.labels, minlength=k)
    ctx.artifact("per_class_accuracy", [{"class": i, "name": names[i], "accuracy": float(per_class[i]),
                                         "count": int(counts[i])} for i in range(k)])
    confusion = torch.zeros(k, k, dtype=torch.int64)
    confusion.index_put_((ev.labels, ev.logits.argmax(1)), torch.ones_like(ev.labels), accumulate=True)
    ctx.artifact("confusion", confusion.numpy())
    ctx.artifact("reliability", metrics.reliability(ev.probs, ev.labels, n_bins=15))
    summary = {"test/accuracy": ev.accuracy, "test/ece": ev.ece, "test/nll": ev.nll,
               "train/loss": ctx.last.get("train/loss", float("nan")), "params": sum(p.numel() for p in net.parameters())}
    if cfg.dataset == "digits":
        full = cfg.steps >= ClassifyConfig.params()["steps"].default
        ctx.claim("the default classifier reaches at least 95% test accuracy on digits",
                  measured=round(ev.accuracy, 4), holds=ev.accuracy >= 0.95 if full else None,
                  detail=f"{cfg.arch} width {cfg.width}, {cfg.steps} steps of {cfg.optimizer}"
                         + ("" if full else "; not evaluated: fewer steps than the default"))
    return summary


EXPERIMENT = register(Experiment(
    name="classify",
    title="Image classification baseline",
    description=__doc__.split("\n\n")[1] if __doc__ else "",
    config=ClassifyConfig,
    run=run,
    smoke={"steps": 4, "eval_every": 2, "batch_size": 32, "width": 8},
    demo={},
    key_metrics=("train/loss", "test/accuracy", "test/ece"),
    distributed=True,
    ddp_smoke={"arch": "mlp", "augment": False},  # BN-free: batch statistics are per rank on CPU
    preflight=needs_dataset,
))
