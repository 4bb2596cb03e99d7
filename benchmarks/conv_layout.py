"""Memory layout of the shared convolutional models: NCHW (contiguous) against channels-last (NHWC) weights.

    .venv/bin/python benchmarks/conv_layout.py                 # one CPU thread, the demo's shapes
    .venv/bin/python benchmarks/conv_layout.py --device cuda --threads 0

``build_model`` keeps ``cnn`` and ``resnet`` channels-last; this measures why. For each model a training step
(forward, cross-entropy, backward, SGD step) and an evaluation forward (no grad) are timed in both layouts,
interleaved round by round (a busy machine slows both alike), median over rounds. The inputs stay NCHW, as the
data sets hand them over: the weights alone decide the layout. The two layouts' logits are compared too (they
differ only by float rounding).

A second table times an evaluation pass over 4,096 images in batches of 64 to 1,024 rows (``inference_rows``: the
evaluations' default, 128 on a CPU), interleaved, and checks that every batch size gives the same logits.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

#: (arch, model keywords, training batch, evaluation batch): goldilocks' replay CNN, the ResNet of NFM's, NoisyMix's
#: and robustness_compare's demo, a wider ResNet and CNN
SHAPES = (("cnn", {"width": 8}, 32, 1024), ("resnet", {"width": 8, "blocks": (1, 1, 1, 1)}, 128, 1024),
          ("resnet", {"width": 16}, 128, 1024), ("cnn", {"width": 32}, 128, 1024))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5, help="steps (or evaluation forwards) per round")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from workbench.lib.nn import build_model

    dev = torch.device(args.device)
    print(f"device {dev}, {torch.get_num_threads()} thread(s), {args.rounds} rounds of {args.steps}; median ms")
    print(f"{'model':<19} {'what':<6} {'NCHW':>9} {'NHWC':>9} {'speedup':>8} {'max |Δlogit|':>13}")
    for arch, kw, bs_train, bs_eval in SHAPES:
        last = build_model(arch, (1, 28, 28), 10, **kw).to(dev)
        name = f"{arch} w{kw['width']}" + (f" ×{len(kw['blocks'])}" if "blocks" in kw else "")
        contig = copy.deepcopy(last).to(memory_format=torch.contiguous_format)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(bs_eval, 1, 28, 28, generator=g).to(dev)
        y = torch.randint(0, 10, (bs_eval,), generator=g).to(dev)
        xt, yt = x[:bs_train], y[:bs_train]
        opts = {id(m): torch.optim.SGD(m.parameters(), lr=1e-3) for m in (contig, last)}

        def train(m: torch.nn.Module) -> None:
            m.train()
            for _ in range(args.steps):
                loss = torch.nn.functional.cross_entropy(m(xt), yt)
                opts[id(m)].zero_grad(set_to_none=True)
                loss.backward()
                opts[id(m)].step()

        @torch.no_grad()
        def evaluate(m: torch.nn.Module) -> None:
            m.eval()
            for _ in range(args.steps):
                m(x)

        with torch.no_grad():
            diff = float((contig.eval()(x) - last.eval()(x)).abs().max())
        for what, fn in (("train", train), ("eval", evaluate)):
            fn(contig), fn(last)  # warm-up
            times: dict[str, list[float]] = {"nchw": [], "nhwc": []}
            for _ in range(args.rounds):
                times["nchw"].append(_timed(lambda: fn(contig), dev) / args.steps)
                times["nhwc"].append(_timed(lambda: fn(last), dev) / args.steps)
            a, b = statistics.median(times["nchw"]), statistics.median(times["nhwc"])
            batch = bs_train if what == "train" else bs_eval
            print(f"{name + f' b{batch}':<19} {what:<6} {a:>9.1f} {b:>9.1f} {a / b:>7.2f}x "
                  + (f"{diff:>13.1e}" if what == "eval" else ""))
    eval_batches(args, dev)


def eval_batches(args: argparse.Namespace, dev: torch.device, rows: tuple[int, ...] = (64, 128, 256, 512, 1024)
                 ) -> None:
    """One evaluation pass over 4,096 images in batches of each size in ``rows`` (ms per pass, median of rounds)."""
    from workbench.lib.metrics import predict
    from workbench.lib.nn import build_model, inference_rows

    print(f"\nevaluation of 4,096 images by rows per forward pass (default here: {inference_rows(dev)}); median ms "
          "per pass, × the default's time")
    print(f"{'model':<19} " + " ".join(f"{r:>12}" for r in rows) + "  same logits")
    x = torch.rand(4096, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(dev)
    for arch, kw, _, _ in SHAPES:
        model = build_model(arch, (1, 28, 28), 10, **kw).to(dev)
        name = f"{arch} w{kw['width']}" + (f" ×{len(kw['blocks'])}" if "blocks" in kw else "")
        outs = {r: predict(model, x, r) for r in rows}  # (also the warm-up)
        same = all(torch.equal(outs[r], outs[rows[0]]) for r in rows)
        times: dict[int, list[float]] = {r: [] for r in rows}
        for _ in range(args.rounds):
            for r in rows:
                times[r].append(_timed(lambda: predict(model, x, r), dev))
        med = {r: statistics.median(t) for r, t in times.items()}
        base = med[inference_rows(dev)] if inference_rows(dev) in med else med[rows[0]]
        print(f"{name:<19} " + " ".join(f"{med[r]:>6.0f} {med[r] / base:>4.2f}x" for r in rows) + f"  {same}")


if __name__ == "__main__":
    main()
