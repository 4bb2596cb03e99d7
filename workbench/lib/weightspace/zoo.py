"""Model zoos: hundreds of small MLPs or CNNs trained at once, and the public Small CNN Zoo's file layout.

Training (Unterthiner et al. 2020 build their zoo the same way, one network at a time): every network draws
its own hyperparameters (learning rate, weight decay, initialisation scale, activation, number of steps,
label-noise rate) and trains with AdamW on its own mini-batches. All networks of the zoo step together:
their parameters are stacked along a leading batch axis, the forward pass is one batched matrix product
(MLP) or one grouped convolution (CNN) per layer, the loss is the *sum* of the networks' mean
cross-entropies (so each network's gradient is its own), and the AdamW update (Loshchilov & Hutter 2019,
Algorithm 2) runs elementwise with per-network learning rates, weight decays and step limits:

    θ ← θ (1 − η λ);  m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;
    θ ← θ − η · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)

so the zoo equals the same networks trained one by one with ``torch.optim.AdamW`` (a test checks it).

The Small CNN Zoo (Unterthiner et al. 2020) stores each data set's networks as ``weights.npy`` (one flat
row per checkpoint), ``layout.csv`` (which slice of a row is which TensorFlow variable) and ``metrics.csv``
(or ``metrics.csv.gz``: test accuracy, step and hyperparameters per row); :func:`load_small_cnn_zoo`
reads a local copy into a :class:`Zoo`.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import batched_conv2d, batched_linear, mixed_activation
from .space import WeightSpace
from .spec import NetworkSpec

ARCHS = ("mlp", "cnn")


@dataclass(frozen=True)
class ZooArch:
    """The shared architecture of a zoo.

    mlp: ``dims = (inputs, hidden…, classes)``, Linear layers. cnn: ``dims = (input channels, conv channels…,
    classes)``: 3×3 convolutions with stride 2 and padding 1, then a global average pool and a Linear head.
    """

    kind: str
    dims: tuple[int, ...]
    image_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ARCHS:
            raise ValueError(f"ZooArch kind = {self.kind!r}; allowed: {', '.join(ARCHS)}")
        if len(self.dims) < 3:
            raise ValueError(f"ZooArch dims = {self.dims!r}: need inputs, at least one hidden layer and outputs")

    @property
    def spec(self) -> NetworkSpec:
        if self.kind == "mlp":
            return NetworkSpec(tuple(self.dims))
        return NetworkSpec(tuple(self.dims), ((3, 3),) * (len(self.dims) - 2) + ((),))

    def module(self, activation: str = "relu") -> nn.Sequential:
        """One network of this architecture as an ``nn.Sequential`` (the one-by-one reference)."""
        act = nn.ReLU if activation == "relu" else nn.Tanh
        layers: list[nn.Module] = []
        d = self.dims
        if self.kind == "mlp":
            layers.append(nn.Flatten())
            for i in range(len(d) - 1):
                layers.append(nn.Linear(d[i], d[i + 1]))
                if i < len(d) - 2:
                    layers.append(act())
        else:
            for i in range(len(d) - 2):
                layers += [nn.Conv2d(d[i], d[i + 1], 3, stride=2, padding=1), act()]
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(d[-2], d[-1])]
        return nn.Sequential(*layers)


@dataclass
class ZooHparams:
    """Per-network hyperparameters (tensors of length B)."""

    lr: Tensor
    weight_decay: Tensor
    init_scale: Tensor
    relu: Tensor  # bool: ReLU (True) or tanh
    steps: Tensor  # long: optimizer steps this network takes
    label_noise: Tensor  # share of its training labels replaced by random ones

    def __len__(self) -> int:
        return int(self.lr.shape[0])

    def select(self, index: Tensor) -> "ZooHparams":
        """The hyperparameters of networks ``index``."""
        return ZooHparams(*(getattr(self, f)[index] for f in ("lr", "weight_decay", "init_scale", "relu", "steps",
                                                             "label_noise")))

    def rows(self) -> list[dict[str, Any]]:
        return [{"lr": float(self.lr[i]), "weight_decay": float(self.weight_decay[i]),
                 "init_scale": float(self.init_scale[i]), "activation": "relu" if bool(self.relu[i]) else "tanh",
                 "steps": int(self.steps[i]), "label_noise": float(self.label_noise[i])} for i in range(len(self))]


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator | None) -> Tensor:
    return torch.exp(torch.empty(n, dtype=torch.float64).uniform_(math.log(lo), math.log(hi), generator=gen))


def sample_hparams(n: int, max_steps: int, generator: torch.Generator | None = None, *,
                   lr: tuple[float, float] = (1e-3, 3e-2), weight_decay: tuple[float, float] = (1e-5, 1e-1),
                   init_scale: tuple[float, float] = (0.3, 3.0), label_noise: tuple[float, float] = (0.0, 0.6),
                   min_steps: float = 0.1) -> ZooHparams:
    """Draw ``n`` networks' hyperparameters: log-uniform lr, weight decay and init scale, ReLU or tanh with
    equal odds, steps uniform in [min_steps·max_steps, max_steps], label noise uniform."""
    lo_steps = max(1, int(round(min_steps * max_steps)))
    return ZooHparams(
        lr=_log_uniform(n, *lr, generator),
        weight_decay=_log_uniform(n, *weight_decay, generator),
        init_scale=_log_uniform(n, *init_scale, generator),
        relu=torch.rand(n, generator=generator) < 0.5,
        steps=torch.randint(lo_steps, max_steps + 1, (n,), generator=generator),
        label_noise=torch.empty(n, dtype=torch.float64).uniform_(*label_noise, generator=generator),
    )


def init_weights(arch: ZooArch, init_scale: Tensor, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> WeightSpace:
    """Initial weights of B networks: W ~ N(0, s_b² / fan_in) (LeCun normal scaled by the network's init
    scale s_b), biases 0."""
    spec, b = arch.spec, init_scale.shape[0]
    weights, biases = [], []
    for i in range(spec.num_layers):
        rows, cols = spec.weight_shape(i)
        k = spec.filter_size(i)
        w = torch.randn(b, k, rows, cols, generator=generator, dtype=torch.float64)
        w = w * (init_scale.to(torch.float64).reshape(-1, 1, 1, 1) / math.sqrt(cols * k))
        weights.append(w.to(dtype))
        biases.append(torch.zeros(b, 1, rows, dtype=dtype))
    return WeightSpace(tuple(weights), tuple(biases), spec.filters)


def corrupt_labels(y: Tensor, rates: Tensor, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """(B, N) labels: for network b, a share ``rates[b]`` of ``y`` replaced by uniformly random classes."""
    b, n = rates.shape[0], y.shape[0]
    flip = torch.rand(b, n, generator=generator, dtype=torch.float64) < rates.reshape(-1, 1)
    random = torch.randint(0, num_classes, (b, n), generator=generator)
    return torch.where(flip, random, y.reshape(1, -1).expand(b, n))


class ZooTrainer:
    """B networks of one architecture trained together with per-network AdamW (module docstring)."""

    def __init__(self, arch: ZooArch, hparams: ZooHparams, init: WeightSpace,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.arch, self.hp, self.betas, self.eps = arch, hparams, betas, eps
        spec = arch.spec
        self.params: list[Tensor] = []
        for i, (w, b) in enumerate(init):
            if arch.kind == "cnn" and spec.filters[i]:
                w = w.permute(0, 2, 3, 1).reshape(w.shape[0], w.shape[2], w.shape[3], *spec.filters[i])
            else:
                w = w[:, 0]
            self.params += [w.clone(), b[:, 0].clone()]
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.t = 0
        self.activation = mixed_activation(hparams.relu.to(init.device))

    @property
    def batch_size(self) -> int:
        return len(self.hp)

    def forward(self, x: Tensor, params: list[Tensor] | None = None) -> Tensor:
        """Logits (B, N, classes); ``x`` is (B, N, *input) per network or (N, *input) shared (an MLP's inputs
        are vectors: (B, N, d) or (N, d))."""
        p = self.params if params is None else params
        n_layers = len(p) // 2
        if self.arch.kind == "mlp":
            h = x
            for i in range(n_layers):
                h = batched_linear(p[2 * i], p[2 * i + 1], h)
                if i < n_layers - 1:
                    h = self.activation(h)
            return h
        h = x if x.dim() == 5 else x.unsqueeze(0).expand(self.batch_size, *x.shape)
        for i in range(n_layers - 1):
            h = self.activation(batched_conv2d(h, p[2 * i], p[2 * i + 1], stride=2, padding=1))
        return batched_linear(p[-2], p[-1], h.mean(dim=(-2, -1)))

    def losses(self, xb: Tensor, yb: Tensor, params: list[Tensor] | None = None) -> Tensor:
        """Per-network mean cross-entropy on its own mini-batch: xb (B, n, …), yb (B, n) → (B,)."""
        logits = self.forward(xb, params)
        return F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").reshape(yb.shape).mean(dim=1)

    def step(self, xb: Tensor, yb: Tensor) -> Tensor:
        """One AdamW step of every network still within its step budget; returns the per-network losses."""
        params = [p.detach().requires_grad_(True) for p in self.params]
        losses = self.losses(xb, yb, params)
        grads = torch.autograd.grad(losses.sum(), params)
        self.t += 1
        active = (self.hp.steps >= self.t).to(self.params[0].device)
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        with torch.no_grad():
            for j, (p, g) in enumerate(zip(params, grads)):
                shape = (-1,) + (1,) * (p.dim() - 1)
                lr = (self.hp.lr.to(p.device, p.dtype) * active).reshape(shape)
                wd = self.hp.weight_decay.to(p.device, p.dtype).reshape(shape)
                m, v = self.exp_avg[j], self.exp_avg_sq[j]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                new = p * (1 - lr * wd)
                new = new - lr * (m / bc1) / ((v / bc2).sqrt() + self.eps)
                self.params[j] = new.detach()
        return losses.detach()

    @torch.no_grad()
    def accuracy(self, x: Tensor, y: Tensor, chunk: int = 1024) -> Tensor:
        """(B,) accuracy of every network on the shared data ``x`` (N, …), ``y`` (N,)."""
        correct = torch.zeros(self.batch_size, dtype=torch.float64)
        for s in range(0, y.shape[0], chunk):
            pred = self.forward(x[s:s + chunk]).argmax(dim=-1)
            correct += (pred == y[s:s + chunk].to(pred.device)).sum(dim=1).double().cpu()
        return (correct / max(y.shape[0], 1)).float()

    def weight_space(self) -> WeightSpace:
        """The current weights as a :class:`WeightSpace` (filters folded into channels)."""
        spec = self.arch.spec
        weights, biases = [], []
        for i in range(spec.num_layers):
            w, b = self.params[2 * i], self.params[2 * i + 1]
            if spec.filters[i]:
                w = w.reshape(w.shape[0], w.shape[1], w.shape[2], -1).permute(0, 3, 1, 2)
            else:
                w = w[:, None]
            weights.append(w.contiguous())
            biases.append(b[:, None].contiguous())
        return WeightSpace(tuple(weights), tuple(biases), spec.filters)

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params = [p.clone() for p in state["params"]]
        self.exp_avg = [p.clone() for p in state["exp_avg"]]
        self.exp_avg_sq = [p.clone() for p in state["exp_avg_sq"]]
        self.t = int(state["t"])


@dataclass
class Zoo:
    """A zoo: the networks' weights, their hyperparameters and measured accuracies."""

    weights: WeightSpace
    hparams: list[dict[str, Any]]
    test_accuracy: Tensor
    train_accuracy: Tensor | None = None
    arch: ZooArch | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.weights.batch_size

    def frame(self) -> Any:
        """A pandas DataFrame: one row per network (hyperparameters and accuracies)."""
        import pandas as pd

        df = pd.DataFrame(self.hparams)
        df.insert(0, "network", np.arange(len(self)))
        df["test_accuracy"] = self.test_accuracy.numpy()
        if self.train_accuracy is not None:
            df["train_accuracy"] = self.train_accuracy.numpy()
        return df

    def subset(self, index: Tensor) -> "Zoo":
        index = torch.as_tensor(index, dtype=torch.long)
        return Zoo(self.weights[index], [self.hparams[int(i)] for i in index], self.test_accuracy[index],
                   None if self.train_accuracy is None else self.train_accuracy[index], self.arch, dict(self.info))

    def module(self, index: int) -> nn.Sequential:
        """Network ``index`` as an ``nn.Sequential`` with its weights (needs ``arch``)."""
        if self.arch is None:
            raise ValueError("this zoo has no architecture recorded")
        net = self.arch.module(str(self.hparams[index].get("activation", "relu")))
        net.load_state_dict(self.weights.to_state_dict(net, index))
        return net

    def save(self, path: str | Path) -> None:
        torch.save({"weights": (self.weights.weights, self.weights.biases, self.weights.filters),
                    "hparams": self.hparams, "test_accuracy": self.test_accuracy,
                    "train_accuracy": self.train_accuracy,
                    "arch": None if self.arch is None else (self.arch.kind, self.arch.dims, self.arch.image_shape),
                    "info": self.info}, path)

    @classmethod
    def load(cls, path: str | Path) -> "Zoo":
        s = torch.load(path, weights_only=False)
        arch = None if s["arch"] is None else ZooArch(s["arch"][0], tuple(s["arch"][1]), tuple(s["arch"][2]))
        return cls(WeightSpace(*s["weights"]), s["hparams"], s["test_accuracy"], s["train_accuracy"], arch, s["info"])


def train_zoo(arch: ZooArch, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, n: int, steps: int,
              batch_size: int = 64, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
              hparams: ZooHparams | None = None, callback: Callable[[int, Tensor], None] | None = None,
              shard: Any = None, **ranges: Any) -> Zoo:
    """Train ``n`` networks of ``arch`` together (module docstring); returns the zoo with test accuracies.

    ``x_train`` are inputs in the architecture's layout (images N×C×H×W or vectors), ``y_train`` labels;
    every network trains on its own label-noise version of them and draws its own mini-batches.

    ``shard`` (a :class:`~workbench.core.context.Shard` of ``n`` rows, under torchrun): this process trains only
    its networks. Every random draw (hyperparameters, initial weights, label noise, each step's mini-batch
    indices) is still made for the whole zoo from ``generator`` and sliced with ``shard.take``, and the trained
    networks and their accuracies are gathered, so every rank returns the zoo one process trains (networks
    train independently of each other). ``callback`` then sees this rank's networks' losses."""
    hp = hparams if hparams is not None else sample_hparams(n, steps, generator, **ranges)
    num_classes = arch.dims[-1]
    init = init_weights(arch, hp.init_scale, generator, dtype)
    y_noisy = corrupt_labels(y_train, hp.label_noise, num_classes, generator)
    total_steps = int(hp.steps.max())
    mine = hp
    if shard is not None:
        rows = shard.rows()
        mine, init, y_noisy = hp.select(rows), init[rows], y_noisy[rows]
    trainer = ZooTrainer(arch, mine, init)
    if arch.kind == "mlp":  # vectors
        x_train, x_test = x_train.flatten(1), x_test.flatten(1)
    x_train = x_train.to(dtype)
    last = torch.zeros(len(mine))
    for step in range(total_steps):
        idx = torch.randint(0, y_train.shape[0], (n, batch_size), generator=generator)
        if shard is not None:
            idx = shard.take(idx)
        loss = trainer.step(x_train[idx], y_noisy.gather(1, idx))
        active = mine.steps > step
        last = torch.where(active, loss.float().cpu(), last)
        if callback is not None:
            callback(step, loss)
    test_acc = trainer.accuracy(x_test.to(dtype), y_test)
    train_acc = trainer.accuracy(x_train, y_train)
    weights = trainer.weight_space()
    if shard is not None:
        weights = weights.map(shard.gather)
        test_acc, train_acc, last = shard.gather(test_acc), shard.gather(train_acc), shard.gather(last)
    return Zoo(weights, hp.rows(), test_acc, train_acc, arch,
               {"final_train_loss": last.tolist(), "steps": steps, "batch_size": batch_size})


# -- the Small CNN Zoo's files ------------------------------------------------------------------------------
def check_small_cnn_zoo(path: str | Path) -> None:
    """Preflight of a local Small CNN Zoo directory, without reading the weights themselves: the three files
    exist, ``weights.npy`` is a 2-D float array, every ``layout.csv`` row names a kernel or a bias whose slice
    (``start_idx``, ``shape``) fits in a weights row, and ``metrics.csv`` has ``test_accuracy`` and one row per
    weights row. Raises :class:`~workbench.core.errors.DataCorrupt` (one line naming the file and the row)."""
    import pandas as pd

    from workbench.core.errors import DataCorrupt, DataNotFound

    path = Path(path)
    metrics_file = next((p for p in (path / "metrics.csv", path / "metrics.csv.gz") if p.exists()), None)
    missing = [str(p) for p in (path / "weights.npy", path / "layout.csv") if not p.exists()]
    if metrics_file is None:
        missing.append(str(path / "metrics.csv"))
    if missing:
        raise DataNotFound(f"{path} is not a Small CNN Zoo directory: missing {', '.join(missing)}")
    weights_file = path / "weights.npy"
    try:
        weights = np.load(weights_file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataCorrupt(f"{weights_file}: not a readable .npy array ({str(err).splitlines()[0][:120]})") from None
    if weights.ndim != 2 or not np.issubdtype(weights.dtype, np.floating):
        raise DataCorrupt(f"{weights_file}: expected a 2-D float array (one row per network), found shape "
                          f"{tuple(weights.shape)} of {weights.dtype}")
    width = weights.shape[1]
    for name, file in (("layout", path / "layout.csv"), ("metrics", metrics_file)):
        try:
            frame = pd.read_csv(file)
        except (ValueError, OSError) as err:  # pandas' parser errors are ValueErrors
            raise DataCorrupt(f"{file}: not a readable CSV ({str(err).splitlines()[0][:120]})") from None
        if name == "layout":
            layout = frame
        else:
            metrics = frame
    need = [c for c in ("varname", "shape", "start_idx") if c not in layout.columns]
    if need:
        raise DataCorrupt(f"{path / 'layout.csv'}: missing column(s) {', '.join(need)} "
                          f"(found {', '.join(map(str, layout.columns))})")
    for i, r in enumerate(layout.itertuples(index=False), 2):  # row 1 is the header
        where = f"{path / 'layout.csv'} row {i}"
        name = str(r.varname)
        if "kernel" not in name and "bias" not in name:
            raise DataCorrupt(f"{where}: variable {name!r} is neither a kernel nor a bias")
        try:
            shape = tuple(int(d) for d in ast.literal_eval(str(r.shape)))
            start = int(r.start_idx)
        except (ValueError, SyntaxError, TypeError):
            raise DataCorrupt(f"{where}: shape {r.shape!r} / start_idx {r.start_idx!r} are not integers") from None
        size = int(np.prod(shape)) if shape else 1
        if len(shape) not in ((1,) if "bias" in name else (2, 4)) or min(shape, default=1) < 1:
            raise DataCorrupt(f"{where}: {name!r} has shape {shape}; a kernel is (in, out) or (kh, kw, in, out), "
                              "a bias (out,)")
        end = int(r.end_idx) if "end_idx" in layout.columns else start + size
        if start < 0 or end - start != size or end > width:
            raise DataCorrupt(f"{where}: {name!r} spans columns {start}:{end} for shape {shape}; the weights rows "
                              f"have {width} columns")
    if "test_accuracy" not in metrics.columns:
        raise DataCorrupt(f"{metrics_file}: no test_accuracy column (found {', '.join(map(str, metrics.columns))})")
    if len(metrics) != weights.shape[0]:
        raise DataCorrupt(f"{metrics_file}: {len(metrics)} rows, but {weights_file} holds {weights.shape[0]} "
                          "networks (one metrics row per weights row)")
    bad = np.flatnonzero(~np.isfinite(pd.to_numeric(metrics["test_accuracy"], errors="coerce").to_numpy(float)))
    if len(bad):
        raise DataCorrupt(f"{metrics_file} row {int(bad[0]) + 2}: test_accuracy "
                          f"{metrics['test_accuracy'].iloc[int(bad[0])]!r} is not a number")


def load_small_cnn_zoo(path: str | Path, final_only: bool = True, limit: int | None = None) -> Zoo:
    """Read a local copy of one Small CNN Zoo data set (``weights.npy``, ``layout.csv``, ``metrics.csv[.gz]``).

    TensorFlow kernels (kh, kw, in, out) and dense kernels (in, out) become this package's layout (filters
    folded into channels, rows = outputs). ``final_only`` keeps each network's last checkpoint (the rows at
    the largest ``step``); rows with non-finite weights are dropped."""
    import pandas as pd

    path = Path(path)
    files = {"weights": path / "weights.npy", "layout": path / "layout.csv"}
    metrics_file = next((p for p in (path / "metrics.csv", path / "metrics.csv.gz") if p.exists()), None)
    missing = [str(p) for p in files.values() if not p.exists()] + ([] if metrics_file else [str(path / "metrics.csv")])
    if missing:
        raise FileNotFoundError(f"not a Small CNN Zoo directory (missing {', '.join(missing)})")
    data = np.load(files["weights"], mmap_mode="r")
    layout = pd.read_csv(files["layout"])
    metrics = pd.read_csv(metrics_file)
    keep = np.ones(len(metrics), dtype=bool)
    if final_only and "step" in metrics:
        keep &= (metrics["step"] == metrics["step"].max()).to_numpy()
    rows = np.flatnonzero(keep)
    if limit is not None:
        rows = rows[:limit]
    data = np.asarray(data[rows], dtype=np.float32)
    finite = np.isfinite(data).all(axis=1)
    data, rows = data[finite], rows[finite]
    metrics = metrics.iloc[rows].reset_index(drop=True)
    weights, biases, filters = [], [], []
    for _, r in layout.iterrows():
        shape = tuple(ast.literal_eval(str(r["shape"])))
        start = int(r["start_idx"])
        end = int(r["end_idx"]) if "end_idx" in r else start + int(np.prod(shape))
        arr = torch.from_numpy(np.ascontiguousarray(data[:, start:end])).reshape(len(rows), *shape)
        name = str(r["varname"])
        if "kernel" in name:
            if arr.dim() == 5:  # (B, kh, kw, in, out) → (B, kh·kw, out, in)
                filters.append(tuple(shape[:2]))
                arr = arr.reshape(len(rows), shape[0] * shape[1], shape[2], shape[3]).transpose(2, 3)
            else:  # (B, in, out) → (B, 1, out, in)
                filters.append(())
                arr = arr.transpose(1, 2)[:, None]
            weights.append(arr.contiguous())
        elif "bias" in name:
            biases.append(arr[:, None].contiguous())
        else:
            raise ValueError(f"layout.csv: variable {name!r} is neither a kernel nor a bias")
    ws = WeightSpace(tuple(weights), tuple(biases), tuple(filters))
    hp_cols = [c for c in metrics.columns if c not in ("test_accuracy", "train_accuracy")]
    hparams = metrics[hp_cols].to_dict("records")
    test = torch.tensor(metrics["test_accuracy"].to_numpy(), dtype=torch.float32)
    train = torch.tensor(metrics["train_accuracy"].to_numpy(), dtype=torch.float32) if "train_accuracy" in metrics else None
    dims = ws.spec.dims
    arch = ZooArch("cnn", dims) if filters and filters[0] else ZooArch("mlp", dims)
    return Zoo(ws, hparams, test, train, arch, {"source": str(path)})


def export_small_cnn_zoo(zoo: Zoo, path: str | Path, step: int = 0) -> None:
    """Write ``zoo`` in the Small CNN Zoo layout (the inverse of :func:`load_small_cnn_zoo`)."""
    import pandas as pd

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    ws, b = zoo.weights, zoo.weights.batch_size
    parts, rows, at = [], [], 0
    for i, (w, bias) in enumerate(ws):
        filt = ws.filters[i]
        if filt:
            out, inp = w.shape[2], w.shape[3]
            arr = w.transpose(2, 3).reshape(b, *filt, inp, out)
        else:
            arr = w[:, 0].transpose(1, 2)
        for name, a in ((f"sequential/layer_{i}/kernel:0", arr), (f"sequential/layer_{i}/bias:0", bias[:, 0])):
            flat = a.reshape(b, -1).numpy()
            rows.append({"varname": name, "start_idx": at, "end_idx": at + flat.shape[1],
                         "shape": str(tuple(a.shape[1:]))})
            parts.append(flat)
            at += flat.shape[1]
    np.save(path / "weights.npy", np.concatenate(parts, axis=1).astype(np.float32))
    pd.DataFrame(rows).to_csv(path / "layout.csv", index=False)
    metrics = pd.DataFrame(zoo.hparams)
    metrics["step"] = step
    metrics["test_accuracy"] = zoo.test_accuracy.numpy()
    if zoo.train_accuracy is not None:
        metrics["train_accuracy"] = zoo.train_accuracy.numpy()
    metrics.to_csv(path / "metrics.csv", index=False)
