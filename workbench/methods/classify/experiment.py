"""``classify``: plain supervised image classification, the baseline the other methods compare against.

Train an MLP, a small CNN or a pre-activation ResNet on a registered image dataset with SGD or AdamW and a
cosine/step/constant schedule; report train loss, test accuracy, ECE (15 bins), NLL, per-class accuracy,
the confusion matrix and the reliability table. Under torchrun every rank trains on its shard of each
global batch (DistributedDataParallel averages the gradients), so the curve matches a 1-process run.
"""
from __future__ import annotations

from typing import Any

import torch

from workbench.core.claims import Claim, Effect, exceeds
from workbench.core.context import RunContext
from workbench.core.params import Config, ConfigError, LoopParams, OptimParams, Param
from workbench.core.registry import Experiment, register
from workbench.lib.data import ImageDataParams, needs_dataset
from workbench.lib.nn import build_model

from .augment import Augmenter
from .schedules import SCHEDULES, lr_factor

#: datasets whose classes survive a left-right mirror (digits and mnist do not: a mirrored 2 is no digit); a dataset
#: not listed is never flipped
FLIP_OK = ("fashion_mnist", "cifar10")
#: the claim's bar: the default classifier's test accuracy on digits
TARGET_ACCURACY = 0.95


class ClassifyConfig(
    LoopParams.with_defaults(steps=300, batch_size=128, eval_every=100,
                             docs={"batch_size": "global batch size (split across ranks)",
                                   "eval_every": "evaluate on the test set every N steps"}),
    OptimParams.with_defaults(lr=0.05, weight_decay=5e-4),
    ImageDataParams,
    Config,
):
    """The classifier, its optimiser and its loop (``dataset``, ``lr``, ``weight_decay``, ``steps``, ``batch_size``,
    ``eval_every`` come from the shared groups)."""

    train_split: str = Param("train+holdout", choices=("train", "train+holdout"),
                             doc="train on all official training data, or keep the 10% holdout aside")
    arch: str = Param("cnn", choices=("mlp", "cnn", "resnet"), doc="classifier: MLP, small CNN or PreActResNet")
    width: int = Param(32, bounds=(1, 1024), unit="channels", doc="hidden units (mlp) or base channels (cnn, resnet)")
    depth: int = Param(2, bounds=(1, 8), unit="stages", doc="hidden layers (mlp) or residual stages (resnet, 2 blocks each)")
    dropout: float = Param(0.0, bounds=(0.0, 0.9), step=0.05, doc="dropout before the classifier head")
    optimizer: str = Param("sgd", choices=("sgd", "adamw"), doc="SGD with Nesterov momentum, or AdamW")
    momentum: float = Param(0.9, bounds=(0.0, 0.999), step=0.01, doc="SGD momentum (AdamW: beta1)")
    schedule: str = Param("cosine", choices=SCHEDULES, doc="learning-rate schedule")
    warmup: int = Param(0, bounds=(0, 100_000), unit="steps", doc="linear warm-up steps")
    augment: bool = Param(True, doc="random crop with padding (+ horizontal flip where classes allow it)")
    label_smoothing: float = Param(0.0, bounds=(0.0, 0.5), step=0.01, doc="label smoothing of the cross-entropy")

    def check(self) -> None:
        if self.batch_size < 2:  # batch normalisation needs two examples to estimate its statistics
            raise ConfigError(f"parameter 'batch_size' = {self.batch_size} is out of range; allowed range [2, 65536]",
                              "batch_size")
        if self.warmup >= self.steps:
            raise ConfigError(f"parameter 'warmup' = {self.warmup} must be smaller than steps = {self.steps}", "warmup")


def _optimizer(cfg: ClassifyConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # biases and norm scales: no weight decay
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def spec(cfg: ClassifyConfig, in_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """``build_model``'s arguments for the classifier a config describes (``depth``: MLP hidden layers / ResNet
    stages of two blocks); plain values, so ``ctx.save_model`` stores them and ``runs.load_model`` rebuilds it."""
    out: dict[str, Any] = {"arch": cfg.arch, "in_shape": list(in_shape), "num_classes": num_classes,
                           "width": cfg.width, "dropout": cfg.dropout}
    if cfg.arch == "mlp":
        out["depth"] = cfg.depth
    elif cfg.arch == "resnet":
        out["blocks"] = [2] * cfg.depth
    return out


def build(cfg: ClassifyConfig, in_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """The classifier a config describes (:func:`spec`)."""
    return build_model(**spec(cfg, in_shape, num_classes))


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

    model_spec = spec(cfg, shape, k)
    with ctx.seeded("init"):
        net = build_model(**model_spec).to(device)
    model = ctx.distribute(net)
    opt = _optimizer(cfg, net)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.schedule, s, cfg.steps, cfg.warmup))
    augment = Augmenter(shape, flip=cfg.dataset in FLIP_OK, rank=ctx.rank, world_size=ctx.world_size)
    ctx.track(model=net, opt=opt, sched=sched)
    batches = ctx.batches(n=len(y), batch_size=cfg.batch_size, name="train")
    global_batch = min(cfg.batch_size, len(y))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def evaluate(step: int) -> metrics.Evaluation:
        ev = metrics.evaluate(net, X_test, y_test, device=device)
        ctx.log(step, **{"test/accuracy": ev.accuracy, "test/ece": ev.ece, "test/nll": ev.nll})
        return ev

    ev = None
    for step in ctx.steps(cfg.steps, phase="train"):
        idx = next(batches).to(device)
        xb, yb = X[idx], y[idx]
        if cfg.augment:
            xb = augment(xb, global_batch, ctx.rng("augment", step))
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
    ctx.save_model("classifier", net, model_spec, build=build_model)
    if cfg.dataset == "digits":
        correct = ev.logits.argmax(1) == ev.labels
        ctx.claim(accuracy_claim(cfg, correct, ctx.rng("claims/accuracy")))
    return summary


#: what makes "the default classifier": the parameters the claim's statement fixes (``steps``: at least the default)
DEFAULT_CLASSIFIER = ("arch", "width", "depth", "dropout", "optimizer", "lr", "momentum", "weight_decay", "schedule",
                      "warmup", "augment", "label_smoothing", "batch_size", "train_split")


def accuracy_claim(cfg: ClassifyConfig, correct: torch.Tensor, generator: torch.Generator) -> Claim:
    """"The default classifier reaches at least 95% test accuracy on digits": the test accuracy with a percentile
    bootstrap over the test examples (``correct``: one bool per example); holds when the whole interval is above
    0.95. A config that is not the default classifier (or trains fewer steps) makes it inconclusive."""
    defaults = ClassifyConfig.params()
    changed = [f"{n}={getattr(cfg, n)!r}" for n in DEFAULT_CLASSIFIER if getattr(cfg, n) != defaults[n].default]
    if cfg.steps < defaults["steps"].default:
        changed.append(f"steps={cfg.steps} (fewer than the default {defaults['steps'].default})")
    effect = Effect.bootstrap(lambda c: c.double().mean(), correct.cpu(), generator=generator, kind="value")
    return exceeds(f"the default classifier reaches at least {TARGET_ACCURACY:.0%} test accuracy on digits", effect,
                   TARGET_ACCURACY, method=f"classify ({cfg.arch}, width {cfg.width})",
                   arm=f"{TARGET_ACCURACY:.0%} accuracy", precondition=(not changed, "not the default classifier: "
                                                                       + ", ".join(changed)),
                   detail=f"{cfg.arch} width {cfg.width}, {cfg.steps} steps of {cfg.optimizer}, "
                          f"{int(correct.sum())}/{len(correct)} test images right")


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
