"""SDE-BNN cost: forward + backward time per batch against the ODE-net and a residual network, and the stochastic
adjoint against direct backpropagation (time and memory).

1. Time of one training step's forward + backward on one batch, as a function of the number of solver steps N:
   the SDE-BNN (Itô Euler–Maruyama, joint [h, w, KL] solve with torchsde), the ODE-net (the σ = 0 model, torchdiffeq
   Euler) and the residual network with L = N blocks (the same number of f_h evaluations) and with the default
   2 blocks. Ratios are measured in one process, the models interleaved round by round; the median over rounds.
2. Stochastic adjoint (torchsde.sdeint_adjoint, midpoint, KL-only estimator) against backpropagation through the
   same midpoint solver: time, and the memory the autograd graph holds after the forward pass (bytes of the
   tensors saved for backward, counted with saved-tensor hooks; with CUDA also the peak allocated memory).
   The adjoint keeps O(1) of the graph in N; direct backpropagation O(N).

    python benchmarks/sdebnn.py [--dataset digits] [--batch 64] [--steps 5 10 20 40] [--rounds 5] [--iters 3]
                                [--device cpu] [--skip-adjoint]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-"))

from workbench.lib import data as wdata  # noqa: E402
from workbench.methods.sdebnn import SDEBNN, ResidualNet, classification_nll, odenet  # noqa: E402
from workbench.methods.sdebnn.experiment import SDEBNNConfig  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int, device: torch.device,
               seed: int) -> float:
    """Seconds per forward + backward (the loss of one sampled path)."""
    _sync(device)
    t0 = time.perf_counter()
    for i in range(iters):
        model.zero_grad(set_to_none=True)
        out, kl = model(x, 1, entropy=seed + i)
        (classification_nll(out, y) + kl.mean() / 1000).backward()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def _models(args, shape, k, steps: int, device) -> dict[str, torch.nn.Module]:
    d = SDEBNNConfig.params()
    aug, hidden, dh = d["img_aug"].default, d["img_hidden"].default, d["drift_hidden"].default
    torch.manual_seed(0)
    return {
        "sdebnn": SDEBNN(shape, k, aug=aug, hidden=hidden, sigma=0.1, drift_hidden=(dh,), steps=steps).to(device),
        "odenet": odenet(shape, k, aug=aug, hidden=hidden, drift_hidden=(dh,), steps=steps).to(device),
        "resnet(L=N)": ResidualNet(shape, k, aug=aug, hidden=hidden, blocks=steps).to(device),
        "resnet(L=2)": ResidualNet(shape, k, aug=aug, hidden=hidden, blocks=2).to(device),
    }


def step_costs(args, x, y, shape, k, device) -> None:
    print(f"\n1. forward + backward per batch ({args.dataset}, batch {args.batch}, device {device}, torch threads "
          f"{torch.get_num_threads()}; median of {args.rounds} interleaved rounds × {args.iters} steps)")
    print(f"{'N steps':>7} {'SDE-BNN ms':>11} {'ODE-net ms':>11} {'ResNet L=N':>11} {'ResNet L=2':>11} "
          f"{'SDE/ODE':>8} {'SDE/Res(L=N)':>13} {'SDE/Res(L=2)':>13}")
    for steps in args.steps:
        models = _models(args, shape, k, steps, device)
        for m in models.values():  # warm-up
            _step_time(m, x, y, 1, device, 0)
        times: dict[str, list[float]] = {n: [] for n in models}
        for r in range(args.rounds):
            for n, m in models.items():
                times[n].append(_step_time(m, x, y, args.iters, device, 1000 * r))
        med = {n: statistics.median(v) for n, v in times.items()}
        s = med["sdebnn"]
        print(f"{steps:>7} {s * 1e3:11.1f} {med['odenet'] * 1e3:11.1f} {med['resnet(L=N)'] * 1e3:11.1f} "
              f"{med['resnet(L=2)'] * 1e3:11.1f} {s / med['odenet']:8.2f} {s / med['resnet(L=N)']:13.2f} "
              f"{s / med['resnet(L=2)']:13.2f}")


class _SavedBytes:
    """Bytes of the tensors autograd saves for backward while active (the graph's activation memory)."""

    def __init__(self) -> None:
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        self.bytes += t.numel() * t.element_size()
        return t

    def __enter__(self) -> "_SavedBytes":
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)


def adjoint_costs(args, x, y, shape, k, device) -> None:
    d = SDEBNNConfig.params()
    print(f"\n2. stochastic adjoint vs direct backpropagation (midpoint, KL-only estimator, batch {args.batch}; time: "
          f"median of {args.rounds} interleaved rounds × {args.iters} steps; memory: bytes saved for backward by the "
          f"forward pass" + (", and CUDA peak" if device.type == "cuda" else "") + ")")
    print(f"{'N steps':>7} {'direct ms':>10} {'adjoint ms':>11} {'time ×':>7} {'direct MB':>10} {'adjoint MB':>11} "
          f"{'memory ÷':>9} {'max |Δgrad|/|grad|':>19}")
    for steps in args.steps:
        models = {}
        for adjoint in (False, True):
            torch.manual_seed(0)
            models[adjoint] = SDEBNN(shape, k, aug=d["img_aug"].default, hidden=d["img_hidden"].default, sigma=0.1,
                                     drift_hidden=(d["drift_hidden"].default,), estimator="kl", method="midpoint",
                                     steps=steps, adjoint=adjoint).to(device)
        grads, mem, peak = {}, {}, {}
        for adjoint, m in models.items():
            m.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with _SavedBytes() as saved:
                out, kl = m(x, 1, entropy=7)
                loss = classification_nll(out, y) + kl.mean() / 1000
            loss.backward()
            mem[adjoint] = saved.bytes / 2**20
            peak[adjoint] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
            grads[adjoint] = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        rel = float((grads[True] - grads[False]).abs().max() / grads[False].abs().max())
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.rounds):
            for adjoint, m in models.items():
                times[adjoint].append(_step_time(m, x, y, args.iters, device, 1000 * r))
        t_dir, t_adj = statistics.median(times[False]), statistics.median(times[True])
        extra = f"  (CUDA peak {peak[False]:.1f} vs {peak[True]:.1f} MB)" if device.type == "cuda" else ""
        print(f"{steps:>7} {t_dir * 1e3:10.1f} {t_adj * 1e3:11.1f} {t_adj / t_dir:7.2f} {mem[False]:10.2f} "
              f"{mem[True]:11.2f} {mem[False] / max(mem[True], 1e-9):9.1f} {rel:19.2e}{extra}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits", choices=("digits", "fashion_mnist", "mnist", "cifar10"))
    p.add_argument("--batch", type=int, default=64, help="images per batch")
    p.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40], help="solver steps N over t ∈ [0, 1]")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median taken)")
    p.add_argument("--iters", type=int, default=3, help="steps timed per model per round")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--skip-adjoint", action="store_true", help="only the step-time table")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y = wdata.tensors(args.dataset, "train")
    x = ((x - x.mean()) / x.std())[: args.batch].to(device)
    y = y[: args.batch].to(device)
    shape, k = tuple(wdata.input_shape(args.dataset)), wdata.num_classes(args.dataset)
    step_costs(args, x, y, shape, k, device)
    if not args.skip_adjoint:
        adjoint_costs(args, x, y, shape, k, device)


if __name__ == "__main__":
    main()
