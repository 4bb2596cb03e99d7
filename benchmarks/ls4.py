"""LS4 speed: kernels, training steps against the baselines, generation.

1. Kernel time against L: the S4D Vandermonde kernel and the DPLR Cauchy + FFT kernel against the naive path
   (the definition K_l = 2·Re(C Ā^l B̄), one matrix-vector product per lag), H channels × N states.
2. Time of one training step (forward + backward) of LS4, the Latent ODE and the GRU VAE at L = 128, 512, 2048,
   the three models sized to the same parameter count (the experiment's ``match_params``), measured in one
   process with the models interleaved in every round; ratios to LS4.
3. Generation throughput of LS4 (series per second): the recurrent step mode against convolution-then-sample
   (re-running the convolution on the growing prefix for every new step; the same numbers, O(L²) work).

Every figure is the median of interleaved rounds (``--repeats``; ``--kernel-repeats`` for the kernels) after a
warm-up round.

    python benchmarks/ls4.py [--lengths 128 512 2048] [--kernel-lengths 256 1024 4096] [--gen-lengths 64 256]
                             [--repeats 3] [--kernel-repeats 5] [--batch 8] [--hidden 32] [--state 32]
                             [--device cpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-ls4-"))

import torch  # noqa: E402

from workbench.methods.ls4 import LS4, dense_kernel, dplr_kernel, nplr_legs, s4d_kernel, s4d_lin, zoh  # noqa: E402
from workbench.methods.ls4.experiment import LS4Config, build_models, measure_step_times, n_params  # noqa: E402
from workbench.methods.ls4.kernels import bilinear, dplr_dense  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def kernel_times(lengths: list[int], H: int, N: int, repeats: int, device: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    A = s4d_lin(N).to(torch.complex64).expand(H, N).to(device)
    B = torch.ones(H, N, dtype=torch.complex64, device=device)
    C = torch.randn(H, N, 2, generator=g).to(device)
    C = torch.view_as_complex(C)
    dt = torch.logspace(-3, -1, H).to(device)
    Lam, P, Bd, _ = nplr_legs(2 * N)
    Lam, P, Bd = (v.to(torch.complex64).expand(H, N).to(device) for v in (Lam, P, Bd))
    Abar_s, Bbar_s = zoh(A, B, dt)
    Abar_d, Bbar_d = bilinear(dplr_dense(Lam, P, P), Bd, dt)
    paths = {
        "s4d vandermonde": lambda L: s4d_kernel(A, B, C, dt, L),
        "s4d naive": lambda L: dense_kernel(Abar_s, Bbar_s, C, L),
        "dplr cauchy+fft": lambda L: dplr_kernel(Lam, P, P, Bd, C, dt, L),
        "dplr naive": lambda L: dense_kernel(Abar_d, Bbar_d, C, L),
    }
    times: dict[tuple[str, int], list[float]] = {}
    with torch.no_grad():
        for r in range(repeats + 1):
            for L in lengths:
                for name, fn in paths.items():  # 5 back-to-back calls per measurement: steady state, not cold caches
                    t = _time(lambda: [fn(L) for _ in range(5)], device) / 5
                    if r:
                        times.setdefault((name, L), []).append(t)
    print(f"\n1. Kernel time, H={H} channels × N={N} states, {device} (ms, median of {repeats})")
    print(f"{'L':>6s} {'s4d fast':>10s} {'s4d naive':>10s} {'speedup':>8s} {'dplr fast':>10s} {'dplr naive':>11s} "
          f"{'speedup':>8s}")
    for L in lengths:
        m = {k: statistics.median(times[(k, L)]) * 1e3 for k in paths}
        fast, naive = m["s4d vandermonde"], m["s4d naive"]
        print(f"{L:6d} {fast:10.2f} {naive:10.2f} {naive / fast:7.1f}× "
              f"{m['dplr cauchy+fft']:10.2f} {m['dplr naive']:11.2f} {m['dplr naive'] / m['dplr cauchy+fft']:7.1f}×")


def step_times(args, device: torch.device) -> None:
    cfg = LS4Config(hidden=args.hidden, state=args.state, layers=args.layers, kernel=args.kernel,
                    ode_method=args.ode_method, length=max(args.lengths))
    models = build_models(cfg, x_dim=1)
    rows = measure_step_times(models, args.lengths, args.batch, args.repeats, 1, device)
    by = {(r["method"], r["length"]): r["seconds_per_step"] for r in rows}
    params = ", ".join(f"{m} {n_params(model):,}" for m, model in models.items())
    print(f"\n2. Training step (forward + backward), batch {args.batch}, {device}; parameters: {params}; "
          f"Latent ODE solver {args.ode_method}")
    print(f"{'L':>6s} {'LS4 s':>9s} {'Latent ODE s':>13s} {'GRU VAE s':>10s} {'ODE / LS4':>10s} {'GRU / LS4':>10s}")
    for L in args.lengths:
        a, b, c = by[("ls4", L)], by[("latent_ode", L)], by[("gru_vae", L)]
        print(f"{L:6d} {a:9.4f} {b:13.4f} {c:10.4f} {b / a:9.1f}× {c / a:9.1f}×")


def generation(args, device: torch.device) -> None:
    torch.manual_seed(0)
    model = LS4(1, hidden=args.hidden, state=args.state, layers=args.layers, kind=args.kernel).to(device).eval()
    n = args.gen_batch
    times: dict[tuple[str, int], list[float]] = {}
    for r in range(args.repeats + 1):
        for L in args.gen_lengths:
            for mode in ("recurrent", "conv"):
                g = torch.Generator().manual_seed(r)
                t = _time(lambda: model.sample(n, L, g, mode=mode), device)
                if r:
                    times.setdefault((mode, L), []).append(t)
    print(f"\n3. LS4 generation, {n} series per call, {device} (series per second, median of {args.repeats})")
    print(f"{'L':>6s} {'recurrent':>10s} {'conv-then-sample':>17s} {'speedup':>8s}")
    for L in args.gen_lengths:
        rec, conv = (statistics.median(times[(m, L)]) for m in ("recurrent", "conv"))
        print(f"{L:6d} {n / rec:10.1f} {n / conv:17.1f} {conv / rec:7.1f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048], help="training-step lengths")
    parser.add_argument("--kernel-lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--gen-lengths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the training-step and generation timings")
    parser.add_argument("--kernel-repeats", type=int, default=5, help="rounds of the (cheap) kernel timings")
    parser.add_argument("--batch", type=int, default=8, help="series per training step")
    parser.add_argument("--gen-batch", type=int, default=16, help="series per generation call")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--state", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--kernel", choices=("s4d", "dplr"), default="s4d")
    parser.add_argument("--ode-method", default="rk4")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("kernels", "steps", "generation"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"LS4 benchmark on {device}, {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}")
    if "kernels" not in args.skip:
        kernel_times(args.kernel_lengths, args.hidden, args.state, args.kernel_repeats, device)
    if "steps" not in args.skip:
        step_times(args, device)
    if "generation" not in args.skip:
        generation(args, device)


if __name__ == "__main__":
    main()
