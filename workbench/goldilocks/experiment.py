"""Experiment ``goldilocks``: RHO-LOSS / Goldilocks selection against the other selection methods.

1. Split the training data into a training part and a holdout part (``holdout_fraction``, by seed), apply the
   label-noise settings and record which points were corrupted.
2. Train the irreducible-loss model (its own architecture) on the holdout part, keep the checkpoint with the
   lowest loss on the training part, precompute its loss for every training point.
3. Train the target model with one selection method (or, with ``selection = compare``, every method from the same
   seed, the same initial weights and the same candidate batches), then measure speedups and check the claims.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from workbench.context import RunContext
from workbench.data import needs_dataset
from workbench.params import Config, ConfigError, Param
from workbench.registry import Experiment, register

from .irreducible import IrreducibleLossTable, IrreducibleTrainer
from .noise import NOISE_KINDS, apply_noise
from .selection import make_selector
from .speedup import speedup_table
from .train import MethodRecord, TrainingData, train_method

METHODS = ("uniform", "rho_loss", "train_loss", "grad_norm", "irreducible", "entropy", "bald", "boltzmann")
SELECTIONS = METHODS + ("replay", "compare")
ARCHS = ("mlp", "cnn", "resnet")


class GoldilocksConfig(Config):
    dataset: str = Param("digits", choices=("digits", "fashion_mnist", "mnist", "cifar10"), doc="image data set")
    selection: str = Param("rho_loss", choices=SELECTIONS,
                           doc="selection method; compare: every method in 'methods' with the same seed, then replay")
    methods: tuple = Param(METHODS, choices=METHODS, multiple=True, doc="methods run by selection=compare")
    steps: int = Param(1000, bounds=(1, 1_000_000), unit="steps", doc="gradient steps of the target model")
    large_batch: int = Param(320, bounds=(1, 1_000_000), unit="points", doc="n_B: candidates scored per step")
    percent_train: float = Param(0.1, bounds=(0.001, 1.0), doc="n_b = ceil(percent_train · n_B) points trained on per step")
    lr: float = Param(1e-3, bounds=(1e-6, 1.0), log=True, doc="AdamW learning rate of the target model")
    weight_decay: float = Param(0.01, bounds=(0.0, 1.0), doc="AdamW weight decay (both models)")
    temperature: float = Param(1.0, bounds=(1e-3, 100.0), log=True, doc="Boltzmann selection temperature")
    eval_mode_scoring: bool = Param(False, doc="score candidates in eval mode (the paper scores in train mode)")
    mc_samples: int = Param(10, bounds=(1, 100), doc="MC-dropout samples for entropy and BALD")
    mc_dropout: float = Param(0.5, bounds=(0.0, 0.95), doc="MC-dropout rate before the head (entropy, BALD)")
    arch: str = Param("mlp", choices=ARCHS, doc="target model architecture")
    width: int = Param(256, bounds=(1, 4096), doc="target model width")
    il_arch: str = Param("mlp", choices=ARCHS, doc="irreducible-loss model architecture (may be much smaller)")
    il_width: int = Param(64, bounds=(1, 4096), doc="irreducible-loss model width")
    il_steps: int = Param(2000, bounds=(1, 1_000_000), unit="steps", doc="training steps of the irreducible-loss model")
    il_lr: float = Param(1e-3, bounds=(1e-6, 1.0), log=True, doc="AdamW learning rate of the irreducible-loss model")
    il_batch_size: int = Param(64, bounds=(1, 100_000), doc="batch size of the irreducible-loss model")
    il_eval_every: int = Param(100, bounds=(1, 1_000_000), unit="steps",
                               doc="check the loss on the training part (best checkpoint kept) every N steps")
    update_irreducible: bool = Param(False, doc="keep training the irreducible-loss model on the selected batches")
    holdout_fraction: float = Param(0.5, bounds=(0.05, 0.9), doc="share of the training data held out for the irreducible-loss model")
    noise: str = Param("uniform", choices=NOISE_KINDS, doc="label noise: uniform relabelling or class-dependent (structured)")
    noise_rate: float = Param(0.1, bounds=(0.0, 0.9), doc="share of labels corrupted (the paper uses 0.1 and 0.2)")
    ambiguous_rate: float = Param(0.0, bounds=(0.0, 0.9), doc="share of inputs blended with another class")
    duplicate_rate: float = Param(0.0, bounds=(0.0, 0.9), doc="share of points overwritten by copies of others")
    noise_holdout: bool = Param(True, doc="corrupt the holdout part too (a realistic holdout is as noisy as the data)")
    replay_arch: str = Param("cnn", choices=ARCHS, doc="compare: architecture trained on rho_loss's replayed selection")
    replay_width: int = Param(32, bounds=(1, 4096), doc="compare: width of the replay architecture")
    replay_run: str = Param("", doc="selection=replay: id of the run whose selected sequence is replayed")
    replay_method: str = Param("rho_loss", choices=METHODS, doc="selection=replay: which method's sequence to replay")
    seeds: int = Param(1, bounds=(1, 20), doc="compare: independent replicates (seed, seed+1, ...); claims use the median")
    eval_every: int = Param(50, bounds=(1, 1_000_000), unit="steps", doc="test accuracy every N steps")
    gallery_size: int = Param(16, bounds=(1, 256), doc="points shown in the live gallery")

    @property
    def small_batch(self) -> int:
        """n_b = ⌈percent_train · n_B⌉."""
        return max(1, math.ceil(self.percent_train * self.large_batch - 1e-9))

    def check(self) -> None:
        if self.selection == "replay" and not self.replay_run:
            raise ConfigError("selection = 'replay' needs parameter 'replay_run' (the id of a finished run)", "replay_run")


def _build(arch: str, width: int, shape, num_classes: int, seed: int):
    from workbench.nn import build_model

    torch.manual_seed(seed)  # the same initial weights for every method of one architecture
    return build_model(arch, shape, num_classes, width=width)


def _suffix(replicate: int) -> str:
    """Names of replicate r > 0 carry ``@r`` (metrics ``rho_loss@1/test/accuracy``, tracked objects, streams)."""
    return "" if replicate == 0 else f"@{replicate}"


def prepare(cfg: GoldilocksConfig, ctx: RunContext, replicate: int = 0) -> TrainingData:
    """Load the splits, corrupt the labels, train the irreducible-loss model and tabulate its losses.

    Replicate r uses seed ``cfg.seed + r`` for the holdout split, the noise, the models and the batches.
    """
    from workbench import data as wdata
    from workbench.metrics import evaluate

    dev = ctx.device
    sfx, seed = _suffix(replicate), cfg.seed + replicate
    x_tr, y_tr = wdata.tensors(cfg.dataset, "train", seed=seed, holdout=cfg.holdout_fraction)
    x_ho, y_ho = wdata.tensors(cfg.dataset, "holdout", seed=seed, holdout=cfg.holdout_fraction)
    x_te, y_te = wdata.tensors(cfg.dataset, "test")
    num_classes = wdata.num_classes(cfg.dataset)
    noise = dict(kind=cfg.noise, rate=cfg.noise_rate, ambiguous_rate=cfg.ambiguous_rate, duplicate_rate=cfg.duplicate_rate)
    train = apply_noise(x_tr, y_tr, num_classes, generator=ctx.generator("noise/train" + sfx), **noise)
    if cfg.noise_holdout:
        hold = apply_noise(x_ho, y_ho, num_classes, generator=ctx.generator("noise/holdout" + sfx), **noise)
        x_ho, y_ho = hold.x, hold.y
    x, y = train.x.to(dev), train.y.to(dev)
    shape = tuple(x.shape[1:])

    il_model = _build(cfg.il_arch, cfg.il_width, shape, num_classes, seed + 1).to(dev)
    trainer = IrreducibleTrainer(il_model, x, y, lr=cfg.il_lr, weight_decay=cfg.weight_decay)
    table = IrreducibleLossTable(torch.zeros(len(y)))
    holdout_batches = ctx.batches(len(y_ho), cfg.il_batch_size, name="holdout" + sfx)
    ctx.track(**{"il_trainer" + sfx: trainer, "il_table" + sfx: table})
    il = "il_model" + sfx
    x_ho, y_ho = x_ho.to(dev), y_ho.to(dev)
    for step in ctx.steps(cfg.il_steps, phase="irreducible" + sfx):
        idx = next(holdout_batches).to(dev)
        loss = trainer.step(x_ho[idx], y_ho[idx])
        ctx.log(step + 1, **{f"{il}/train/loss": loss})
        if (step + 1) % cfg.il_eval_every == 0 or step + 1 == cfg.il_steps:
            ctx.log(step + 1, **{f"{il}/train_part/loss": trainer.evaluate()})
    if trainer.best_state is not None:  # (on resume past this phase the table comes from the checkpoint)
        trainer.restore_best()
        table.losses = IrreducibleLossTable.compute(il_model, x, y).losses
        ctx.log(cfg.il_steps, **{f"{il}/test/accuracy": evaluate(il_model, x_te, y_te, device=dev).accuracy,
                                 f"{il}/best_train_part/loss": trainer.best_loss})
    return TrainingData(x=x, y=y, true_y=train.true_y, corrupted=train.corrupted, x_test=x_te, y_test=y_te,
                        num_classes=num_classes, il_table=table, il_model=il_model)


def _selector(cfg: GoldilocksConfig, name: str, sequence=None):
    return make_selector(name, eval_mode=cfg.eval_mode_scoring, temperature=cfg.temperature,
                         mc_samples=cfg.mc_samples, dropout=cfg.mc_dropout, sequence=sequence, cycle=True)


def _recorded_sequence(ctx: RunContext, run_id: str, method: str) -> torch.Tensor:
    try:
        seq = ctx.read_run(run_id).artifact(f"selected/{method}")
    except KeyError as err:
        raise ConfigError(f"parameter 'replay_run' = {run_id!r}: {err.args[0] if err.args else err}; a finished run "
                          f"with a recorded selection of {method!r} (artifact 'selected/{method}') is needed",
                          "replay_run") from None
    return torch.as_tensor(seq, dtype=torch.long)


def _summary(label: str, rec: MethodRecord) -> dict[str, float]:
    return {
        f"{label}/test/accuracy": rec.accuracy[-1] if rec.accuracy else float("nan"),
        f"{label}/best_accuracy": max(rec.accuracy) if rec.accuracy else float("nan"),
        f"{label}/corrupted_share": rec.corrupted_share,
        f"{label}/seconds_per_step": rec.elapsed / max(rec.n_steps, 1),
    }


def run(cfg: GoldilocksConfig, ctx: RunContext) -> dict[str, float]:
    sequence = _recorded_sequence(ctx, cfg.replay_run, cfg.replay_method) if cfg.selection == "replay" else None
    data = prepare(cfg, ctx)
    shape, k = tuple(data.x.shape[1:]), data.num_classes
    if cfg.selection == "compare":
        return compare(cfg, ctx, data)
    if sequence is not None:
        if int(sequence.max()) >= len(data):
            raise ConfigError(f"parameter 'replay_run': the recorded indices reach {int(sequence.max())} but this "
                              f"training part has {len(data)} points (use the same dataset, seed and holdout_fraction)",
                              "replay_run")
        if sequence.shape[1] < cfg.small_batch:
            raise ConfigError(f"parameter 'percent_train': n_b = {cfg.small_batch} exceeds the recorded "
                              f"{sequence.shape[1]} points per step", "percent_train")
    model = _build(cfg.arch, cfg.width, shape, k, cfg.seed).to(ctx.device)
    rec = train_method(ctx, cfg, cfg.selection, _selector(cfg, cfg.selection, sequence), model, data)
    out = _summary(cfg.selection, rec)
    out["test/accuracy"] = out[f"{cfg.selection}/test/accuracy"]
    out["noise_rate"] = float(data.corrupted.float().mean())
    return out


def _compare_once(cfg: GoldilocksConfig, ctx: RunContext, data: TrainingData, replicate: int) -> tuple[list[dict], dict]:
    """One replicate: every method, then rho_loss's selection replayed on ``replay_arch`` against uniform there."""
    shape, k, sfx, seed = tuple(data.x.shape[1:]), data.num_classes, _suffix(replicate), cfg.seed + replicate
    methods = list(cfg.methods)
    if "uniform" not in methods:
        methods = ["uniform"] + methods
    records: dict[str, MethodRecord] = {}

    def train(name: str, selector_name: str, arch: str, width: int, model_seed: int, sequence=None) -> None:
        model = _build(arch, width, shape, k, model_seed).to(ctx.device)
        records[name] = train_method(ctx, cfg, name + sfx, _selector(cfg, selector_name, sequence), model, data,
                                     replicate=replicate)

    for name in methods:
        train(name, name, cfg.arch, cfg.width, seed)
    replay = ("replay_uniform", "replay")
    if "rho_loss" in records:
        seq = torch.as_tensor(records["rho_loss"].sequence())
        train("replay_uniform", "uniform", cfg.replay_arch, cfg.replay_width, seed + 2)
        train("replay", "replay", cfg.replay_arch, cfg.replay_width, seed + 2, seq)
    rows = speedup_table({n: (r.steps, r.seconds, r.accuracy) for n, r in records.items() if n not in replay})
    if "replay" in records:
        rows += speedup_table({n: (records[n].steps, records[n].seconds, records[n].accuracy) for n in replay},
                              baseline="replay_uniform")
    for row in rows:
        rec = records[row["method"]]
        row["seed"] = seed
        row["corrupted_share"] = rec.corrupted_share
        row["noise_rate"] = float(data.corrupted.float().mean())
        row["seconds_per_step"] = rec.elapsed / max(rec.n_steps, 1)
    return rows, records


def compare(cfg: GoldilocksConfig, ctx: RunContext, data: TrainingData) -> dict[str, float]:
    """``cfg.seeds`` independent replicates of the comparison; speedups and claims use the median over them."""
    rows, records = _compare_once(cfg, ctx, data, 0)
    for r in range(1, cfg.seeds):
        rows += _compare_once(cfg, ctx, prepare(cfg, ctx, r), r)[0]
    ctx.artifact("speedup", rows, kind="table")
    by: dict[str, list[dict]] = {}
    for row in rows:
        by.setdefault(row["method"], []).append(row)
    summary: dict[str, float] = {"noise_rate": float(data.corrupted.float().mean())}
    for m, rec in records.items():
        summary.update(_summary(m, rec))
        summary[f"{m}/speedup"] = _median([row["speedup_steps"] for row in by[m]])
        summary[f"{m}/speedup_wallclock"] = _median([row["speedup_wallclock"] for row in by[m]])
    _claims(cfg, ctx, by)
    if "rho_loss" in records:
        summary["test/accuracy"] = summary["rho_loss/test/accuracy"]
    return summary


def _median(values: list[float]) -> float:
    """Median that counts nan (neither reached the target) as 0 speedup."""
    vals = sorted(0.0 if math.isnan(v) else float(v) for v in values)
    n = len(vals)
    return vals[n // 2] if n % 2 else 0.5 * (vals[n // 2 - 1] + vals[n // 2])


def _fmt_speed(row: dict) -> str:
    s = row["speedup_steps"]
    if math.isnan(s) or s == 0.0:
        return "never"
    return f"{s:.2f}×"


def _speed_claim(rows: list[dict], base_rows: list[dict]) -> tuple[str, bool]:
    """Holds when the method is faster than its baseline in a strict majority of the seeds."""
    speeds = [r["speedup_steps"] for r in rows]
    faster = sum(1 for v in speeds if not math.isnan(v) and v > 1.0)
    per = ", ".join(f"seed {r['seed']}: {_fmt_speed(r)} ({_steps(r)} vs {_steps(b)} steps to {b['target_accuracy']:.3f})"
                    for r, b in zip(rows, base_rows))
    head = f"{_median(speeds):.2f}×"
    if len(rows) > 1:
        head += f" median over {len(rows)} seeds, faster in {faster}/{len(rows)}"
    return f"{head} [{per}]", faster * 2 > len(rows)


def _steps(row: dict) -> str:
    v = row["steps_to_target"]
    return "never" if math.isinf(v) or math.isnan(v) else f"{v:.0f}"


def _claims(cfg: GoldilocksConfig, ctx: RunContext, by: dict[str, list[dict]]) -> None:
    noise_rate = sum(r["noise_rate"] for r in by["uniform"]) / len(by["uniform"])
    setting = (f"{cfg.dataset}, {cfg.noise} noise {noise_rate:.0%}, {cfg.steps} steps, n_B={cfg.large_batch}, "
               f"n_b={cfg.small_batch}, target {cfg.arch} (width {cfg.width}), irreducible {cfg.il_arch} "
               f"(width {cfg.il_width}), {len(by['uniform'])} seed(s) from {cfg.seed}")
    if "rho_loss" in by:
        measured, holds = _speed_claim(by["rho_loss"], by["uniform"])
        wall = _median([r["speedup_wallclock"] for r in by["rho_loss"]])
        ctx.claim(
            "Under label noise RHO-LOSS reaches the uniform baseline's best accuracy in fewer steps "
            "(paper: up to 18× on Clothing-1M, ~2-3× on CIFAR-10)",
            measured=measured, holds=holds, detail=f"{setting}; median wall-clock speedup {wall:.2f}×",
        )
    if "rho_loss" in by and "train_loss" in by:
        r = sum(x["corrupted_share"] for x in by["rho_loss"]) / len(by["rho_loss"])
        t = sum(x["corrupted_share"] for x in by["train_loss"]) / len(by["train_loss"])
        ctx.claim(
            "RHO-LOSS selects a smaller share of corrupted points than the noise rate; training-loss selection a larger one",
            measured=f"rho_loss {r:.1%}, train_loss {t:.1%}, noise rate {noise_rate:.1%}",
            holds=(bool(r < noise_rate < t) if noise_rate > 0 else None),
            detail=setting,
        )
    if "replay" in by:
        measured, holds = _speed_claim(by["replay"], by["replay_uniform"])
        ctx.claim(
            "A replayed RHO-LOSS selection sequence trains a different architecture faster than uniform",
            measured=measured, holds=holds,
            detail=f"selection recorded with {cfg.arch} (width {cfg.width}), replayed on {cfg.replay_arch} "
                   f"(width {cfg.replay_width}) against uniform on {cfg.replay_arch}; " + setting,
        )


EXPERIMENT = register(Experiment(
    name="goldilocks",
    title="Goldilocks selection / RHO-LOSS",
    description="Train on points that are learnable, worth learning and not yet learnt (Mindermann et al. 2022).",
    config=GoldilocksConfig,
    run=run,
    smoke={"steps": 3, "large_batch": 32, "percent_train": 0.25, "il_steps": 4, "il_eval_every": 2, "eval_every": 2,
           "width": 16, "il_width": 8, "replay_width": 4, "mc_samples": 2, "gallery_size": 4, "selection": "compare"},
    demo={"selection": "compare", "steps": 300, "eval_every": 10, "noise_rate": 0.1, "seeds": 2, "mc_samples": 5},
    key_metrics=("*/test/accuracy", "*/select/corrupted_share"),
    distributed_note="RHO-LOSS would score and select from each rank's shard of the candidate batch, not from the "
                     "global batch the paper's selection needs",
    preflight=needs_dataset,
))
