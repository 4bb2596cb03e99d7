"""NFT cost and zoo-training throughput.

1. Forward + backward time of one weight-space layer on the same batch of weight-space features: an NFT block
   (pre-LN weight-space attention + feed-forward) on a WeightSpace and on its token layout (as the encoder
   stacks blocks: the WeightSpace ↔ token conversion happens once per encoder, not per block), our NP and HNP
   linear layers, and — when the optional ``bench`` extra is installed (``pip install nfn``) — the ``nfn``
   package's NPLinear and HNPLinear. Rounds are interleaved (every layer once per round), the median over rounds
   is reported, ratios are to our NP layer (and to nfn's NP layer when present). ``--clock cpu`` times the
   thread's CPU seconds instead of wall time (steadier on a shared, loaded machine).
2. Zoo training throughput: the batched trainer (all networks in one batched product per layer, per-network
   AdamW) against a Python loop training the same networks one by one with ``torch.optim.AdamW``; networks
   trained per second (each network takes ``--zoo-steps`` steps).

    python benchmarks/nft.py [--spec 64,16,16,10] [--channels 16] [--batch 32] [--rounds 7] [--threads 1] [--clock cpu]
                             [--zoo-networks 200] [--loop-networks 10] [--zoo-steps 50] [--arch cnn] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

import torch

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-nft-"))

from workbench.methods.nft import HNPLinear, NFTBlock, NPLinear, to_channels_last  # noqa: E402
from workbench.lib.weightspace import NetworkSpec, WeightSpace, ZooArch, ZooTrainer, init_weights, sample_hparams  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _features(spec: NetworkSpec, channels: int, batch: int, device: torch.device) -> WeightSpace:
    g = torch.Generator().manual_seed(0)
    return WeightSpace(
        tuple(torch.randn(batch, channels, *spec.weight_shape(i), generator=g).to(device) for i in range(spec.num_layers)),
        tuple(torch.randn(batch, channels, spec.dims[i + 1], generator=g).to(device) for i in range(spec.num_layers)))


def layer_candidates(spec: NetworkSpec, channels: int, heads: int) -> dict[str, tuple[torch.nn.Module, Callable]]:
    """name → (module, function of a WeightSpace returning a scalar to backpropagate)."""
    out: dict[str, tuple[torch.nn.Module, Callable]] = {}
    nft = NFTBlock(spec, channels, heads)
    out["NFT block (ours)"] = (nft, lambda ws: nft(ws).flatten().square().mean())
    tokens: dict[int, torch.Tensor] = {}

    def on_tokens(ws: WeightSpace) -> torch.Tensor:
        """The block on the same features already in token layout (B, N, d), as NFTEncoder runs it."""
        if id(ws) not in tokens:
            tokens.clear()
            flat = nft.attn.layout.flatten(*to_channels_last(ws.detach()))
            tokens[id(ws)] = flat.contiguous().requires_grad_(True)
        return nft.forward_flat(tokens[id(ws)]).square().mean()

    out["NFT block, tokens"] = (nft, on_tokens)
    np_ = NPLinear(spec, channels, channels)
    out["NP linear (ours)"] = (np_, lambda ws: np_(ws).flatten().square().mean())
    hnp = HNPLinear(spec, channels, channels)
    out["HNP linear (ours)"] = (hnp, lambda ws: hnp(ws).flatten().square().mean())
    try:
        from nfn.common import WeightSpaceFeatures, network_spec_from_wsfeat
        from nfn.layers import HNPLinear as NfnHNP
        from nfn.layers import NPLinear as NfnNP
    except ImportError:
        return out

    def nfn_feats(ws: WeightSpace) -> "WeightSpaceFeatures":
        return WeightSpaceFeatures(list(ws.weights), list(ws.biases))

    nspec = network_spec_from_wsfeat(nfn_feats(_features(spec, 1, 1, torch.device("cpu"))))
    n_np, n_hnp = NfnNP(nspec, channels, channels), NfnHNP(nspec, channels, channels)

    def total(feats: "WeightSpaceFeatures") -> torch.Tensor:
        return sum(t.square().mean() for t in list(feats.weights) + list(feats.biases))

    out["NP linear (nfn)"] = (n_np, lambda ws: total(n_np(nfn_feats(ws))))
    out["HNP linear (nfn)"] = (n_hnp, lambda ws: total(n_hnp(nfn_feats(ws))))
    return out


def time_layers(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    spec = NetworkSpec(tuple(int(d) for d in args.spec.split(",")))
    ws = _features(spec, args.channels, args.batch, device).map(lambda t: t.requires_grad_(True))
    layers = layer_candidates(spec, args.channels, args.heads)
    for m, _ in layers.values():
        m.to(device)

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    def once(fn: Callable) -> float:
        _sync(device)
        t0 = clock()
        for _ in range(args.reps):
            fn(ws).backward()
        _sync(device)
        return (clock() - t0) / args.reps

    for _, fn in layers.values():  # warm-up
        once(fn)
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(args.rounds):
        for name, (_, fn) in layers.items():
            times[name].append(once(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    base, nfn_np = med["NP linear (ours)"], med.get("NP linear (nfn)")
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"\nForward + backward of one layer: spec {spec}, {args.channels} channels, batch {args.batch} networks, "
          f"{device}, {torch.get_num_threads()} thread(s); median of {args.rounds} interleaved rounds × {args.reps}, "
          f"{'CPU' if args.clock == 'cpu' else 'wall'} time{load}")
    print(f"{'layer':<20} {'ms':>9} {'× our NP':>9} {'× nfn NP':>9} {'parameters':>11}")
    for name, (m, _) in layers.items():
        params = sum(p.numel() for p in m.parameters())
        vs_nfn = f"{med[name] / nfn_np:9.2f}" if nfn_np else f"{'-':>9}"
        print(f"{name:<20} {med[name] * 1e3:9.2f} {med[name] / base:9.2f} {vs_nfn} {params:11d}")
    if "NP linear (nfn)" not in layers:
        print("(the nfn package is not installed: `pip install nfn` (the bench extra) adds its NP/HNP layers)")


def time_zoo(args: argparse.Namespace) -> None:
    from workbench.lib import data
    import torch.nn.functional as F

    x, y = data.tensors("digits", "train")
    arch = ZooArch(args.arch, (64, 16, 16, 10) if args.arch == "mlp" else (1, 8, 8, 10))
    if arch.kind == "mlp":
        x = x.flatten(1)
    gen = torch.Generator().manual_seed(0)
    n, steps, bs = args.zoo_networks, args.zoo_steps, 64
    hp = sample_hparams(n, steps, gen)
    hp.steps[:] = steps  # every network takes the full budget: equal work on both sides
    init = init_weights(arch, hp.init_scale, gen)
    idx = [torch.randint(0, len(y), (n, bs), generator=gen) for _ in range(steps)]

    def batched() -> float:
        trainer = ZooTrainer(arch, hp, init)
        t0 = time.perf_counter()
        for i in idx:
            trainer.step(x[i], y[i])
        return time.perf_counter() - t0

    def loop(count: int) -> float:
        t0 = time.perf_counter()
        for b in range(count):
            net = arch.module("relu" if hp.relu[b] else "tanh")
            net.load_state_dict(init.to_state_dict(net, b))
            opt = torch.optim.AdamW(net.parameters(), lr=float(hp.lr[b]), weight_decay=float(hp.weight_decay[b]))
            for i in idx:
                loss = F.cross_entropy(net(x[i[b]]), y[i[b]])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return time.perf_counter() - t0

    batched_s, loop_s = [], []
    for _ in range(args.zoo_rounds):
        batched_s.append(batched())
        loop_s.append(loop(args.loop_networks))
    tb, tl = statistics.median(batched_s), statistics.median(loop_s)
    rate_b, rate_l = n / tb, args.loop_networks / tl
    print(f"\nZoo training ({arch.kind} {arch.dims}, digits, {steps} AdamW steps of batch {bs} per network, "
          f"{torch.get_num_threads()} thread(s), median of {args.zoo_rounds} interleaved rounds)")
    print(f"{'trainer':<34} {'networks':>9} {'seconds':>9} {'networks/s':>11}")
    print(f"{'batched (one product per layer)':<34} {n:9d} {tb:9.2f} {rate_b:11.2f}")
    print(f"{'Python loop, torch.optim.AdamW':<34} {args.loop_networks:9d} {tl:9.2f} {rate_l:11.2f}")
    print(f"speed-up of the batched trainer: ×{rate_b / rate_l:.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", default="64,16,16,10", help="neuron counts of the networks whose weights are read")
    p.add_argument("--channels", type=int, default=16, help="feature channels per weight-space entry")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=16, help="networks per batch")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--arch", default="cnn", choices=("mlp", "cnn"), help="zoo architecture")
    p.add_argument("--zoo-networks", type=int, default=200)
    p.add_argument("--loop-networks", type=int, default=10, help="networks trained one by one (then per second)")
    p.add_argument("--zoo-steps", type=int, default=50)
    p.add_argument("--zoo-rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"), help="wall time or the thread's CPU time")
    p.add_argument("--skip-layers", action="store_true")
    p.add_argument("--skip-zoo", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.skip_layers:
        time_layers(args)
    if not args.skip_zoo:
        time_zoo(args)


if __name__ == "__main__":
    main()
