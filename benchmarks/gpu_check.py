"""GPU check (``make gpu-check``): every registered experiment on CUDA, then a projection of its paper preset.

Section 1 runs each experiment's smoke settings with ``device=cuda``, checks that the run completes with finite
losses, and prints steps/s, seconds and peak GPU memory. Section 2 (``--project``, on by default in ``make
gpu-check``) starts each experiment's ``paper`` preset on the same device for at most ``--budget`` seconds, watches
its loop (phase, step, total: ``workbench.core.context.Control``), and prints the step time and peak memory of each
phase it reached and the projected wall time of the whole run: the phases that finished within the budget as
measured, the phase it was in at ``(total - step) x step time``, marked ``>=`` when later phases were not reached
(their lengths are known only once the run gets there). The whole script is sized to finish in under 10 minutes
(10 experiments x (smoke + budget), plus about 4 minutes for section 3 on a multi-GPU machine; a preset whose first step takes longer than the budget plus a minute is
killed and reported so). Section 3, on a machine with several GPUs (``--multi G``: by default every visible GPU
when there are two or more), runs ``benchmarks/ddp.py`` on them: each distributed experiment's small setting with
1 and G processes under torchrun (NCCL, one GPU each), steps/s, the speed-up and the share of time in collectives.
``--device cpu`` runs the same on the CPU (what the test suite does; section 3 then uses gloo).
Exit status 1 when a smoke check fails; a paper preset that cannot start (its data missing offline) is reported,
not failed.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-gpu-check-"))

import torch  # noqa: E402

import workbench  # noqa: E402
from workbench import runs  # noqa: E402
from workbench.core.engine import Control  # noqa: E402

_clock = time.perf_counter  # the watcher's clock (a test replaces it)


def _peak_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak RSS so far (Linux: KiB)


def check(name: str, device: str, scale: str = "smoke") -> dict:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    control = Control()
    start = time.perf_counter()
    res = workbench.run(name, {"device": device}, smoke=scale == "smoke", scale="default" if scale == "smoke" else scale,
                        control=control, progress=False)
    seconds = time.perf_counter() - start
    df = runs.metrics(res.run_id)
    losses = df[df.name.str.contains("loss")].value
    finite = bool(len(losses)) and all(math.isfinite(v) for v in losses)
    ok = res.status == "completed" and finite
    return {"experiment": name, "status": res.status, "finite losses": finite, "steps": control.steps_done,
            "steps/s": control.steps_done / seconds, "seconds": seconds, "peak MiB": _peak_mib(device), "ok": ok,
            "error": (res.error or "").strip().splitlines()[-1:]}


class Watch:
    """Samples a run's :class:`Control` from another thread: when each phase was first seen and at which step, the
    latest step seen in it; stops the run once ``budget`` seconds have passed."""

    def __init__(self, control: Control, budget: float, every: float = 0.05):
        self.control, self.budget, self.every = control, budget, every
        self.phases: list[dict] = []  # {"name", "total", "t0", "step0", "t", "step"}
        self.t0 = _clock()

    def sample(self) -> None:
        c, now = self.control, _clock()
        if not c.phase:
            return
        last = self.phases[-1] if self.phases else None
        if last is None or (c.phase, c.total) != (last["name"], last["total"]) or c.step < last["step"]:
            self.phases.append({"name": c.phase, "total": c.total, "t0": now, "step0": c.step, "t": now,
                                "step": c.step})
        else:
            last.update(t=now, step=c.step)

    def follow(self, worker: threading.Thread) -> None:
        while worker.is_alive():
            self.sample()
            timed = bool(self.phases) and self.phases[-1]["step"] > self.phases[-1]["step0"]
            if timed and _clock() - self.t0 > self.budget:  # a step timed: enough to project
                self.control.stop(f"gpu-check budget of {self.budget:.0f} s reached")
            worker.join(self.every)

    def projection(self, finished: bool, seconds: float) -> tuple[float, bool, list[str]]:
        """(projected seconds, a lower bound?, one line per phase: steps timed and the step time)."""
        lines, projected = [], 0.0
        for i, p in enumerate(self.phases):
            steps, dt = p["step"] - p["step0"], p["t"] - p["t0"]
            per = dt / max(steps, 1)  # no step finished in dt: a step takes at least dt
            lines.append(f"{p['name']}: {steps}/{p['total']} steps timed, "
                         + (f"{per * 1e3:.1f} ms/step" if steps > 0 else f"first step > {dt:.0f} s"))
            if i + 1 < len(self.phases):  # finished within the budget: as measured
                projected += self.phases[i + 1]["t0"] - p["t0"]
            elif not finished:
                projected += dt + (p["total"] - p["step"] - (steps == 0)) * per
        setup = self.phases[0]["t0"] - self.t0 if self.phases else 0.0
        if finished:
            return seconds, False, lines
        return setup + projected, True, lines


def project(name: str, device: str, budget: float) -> dict:
    """Run ``name``'s paper preset for at most ``budget`` seconds and project its wall time."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    control, out = Control(), {}
    watch = Watch(control, budget)

    def target() -> None:
        try:
            out["res"] = workbench.run(name, {"device": device}, scale="paper", control=control, progress=False)
        except Exception as err:  # noqa: BLE001 - a preset that cannot start is reported, not fatal
            out["error"] = f"{type(err).__name__}: {err}"

    start = time.perf_counter()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    watch.follow(worker)
    seconds = time.perf_counter() - start
    res = out.get("res")
    status = res.status if res is not None else "not started"
    error = out.get("error") or (res.error if res is not None and res.status == "failed" else None)
    projected, lower, lines = watch.projection(status == "completed", seconds)
    return {"experiment": name, "status": status, "error": (error or "").strip().splitlines()[-1:],
            "seconds": seconds, "peak MiB": _peak_mib(device), "projected": projected if watch.phases else float("nan"),
            "lower bound": lower, "phases": lines}


def project_in_process(name: str, device: str, budget: float, grace: float = 60.0) -> dict:
    """:func:`project` in a fresh process (its own peak memory), killed when a step boundary never comes within
    ``budget + grace`` seconds: the projection is then at least that long for the first step."""
    import json

    cmd = [sys.executable, __file__, "--device", device, "--budget", str(budget), "--project-one", name]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=budget + grace)
    except subprocess.TimeoutExpired:
        return {"experiment": name, "status": "killed", "seconds": budget + grace, "peak MiB": float("nan"),
                "projected": float("nan"), "lower bound": True,
                "phases": [f"no step finished within {budget + grace:.0f} s (killed)"], "error": []}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"experiment": name, "status": "failed", "seconds": float("nan"), "peak MiB": float("nan"),
                "projected": float("nan"), "lower bound": False, "phases": [], "error": [tail]}
    return json.loads(lines[-1])


def _hours(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--only", nargs="*", help="experiment names (default: all registered)")
    parser.add_argument("--scale", default="smoke", choices=("smoke", "demo", "paper"),
                        help="which preset the check of section 1 runs (default smoke: a few steps)")
    parser.add_argument("--project", action="store_true", help="section 2: project each paper preset's wall time")
    parser.add_argument("--budget", type=float, default=40.0,
                        help="seconds each paper preset runs for its projection (default 40)")
    parser.add_argument("--multi", type=int, default=None, metavar="G",
                        help="section 3: scaling with G processes against 1 (default: the visible GPUs when >= 2)")
    parser.add_argument("--project-one", metavar="NAME", help=argparse.SUPPRESS)  # one projection, as JSON
    args = parser.parse_args()
    if args.project_one:
        import json

        print(json.dumps(project(args.project_one, args.device, args.budget)), flush=True)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device visible (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    if not 1 <= args.budget <= 600:
        print(f"gpu-check: parameter 'budget' = {args.budget} is outside the allowed range [1, 600] s",
              file=sys.stderr)
        return 2
    if args.multi is not None and not (2 <= args.multi <= max(2, torch.cuda.device_count() if args.device == "cuda"
                                                           else 64)):
        print(f"gpu-check: parameter 'multi' = {args.multi} is outside the allowed range: 2 to the number of "
              f"{'visible GPUs' if args.device == 'cuda' else 'processes wanted (at most 64)'}", file=sys.stderr)
        return 2
    names = args.only or list(workbench.experiments())
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"== section 1: {args.scale} settings on {device_name}", flush=True)
    rows = [check(n, args.device, args.scale) for n in names]
    peak = "peak MiB" if args.device == "cuda" else "RSS MiB"  # on the CPU: the process's peak resident memory
    print(f"{'experiment':22s} {'status':10s} {'finite':7s} {'steps':>6s} {'steps/s':>9s} {'seconds':>8s} {peak:>9s}")
    for r in rows:
        print(f"{r['experiment']:22s} {r['status']:10s} {str(r['finite losses']):7s} {r['steps']:6d} "
              f"{r['steps/s']:9.2f} {r['seconds']:8.2f} {r['peak MiB']:9.1f}" + (f"  {r['error']}" if not r["ok"] else ""))
    if args.project:
        print(f"\n== section 2: paper presets on {device_name}, at most {args.budget:.0f} s each, projected wall time",
              flush=True)
        print(f"{'experiment':22s} {'status':12s} {'seconds':>8s} {peak:>9s} {'projected':>12s}  phases timed")
        for name in names:
            p = project_in_process(name, args.device, args.budget)
            shown = ("≥ " if p["lower bound"] and math.isfinite(p["projected"]) else "") + _hours(p["projected"])
            print(f"{name:22s} {p['status']:12s} {p['seconds']:8.1f} {p['peak MiB']:9.1f} {shown:>12s}  "
                  + ("; ".join(p["phases"]) or (p["error"][0] if p["error"] else "")), flush=True)
    multi = args.multi if args.multi is not None else (torch.cuda.device_count() if args.device == "cuda" else 0)
    if multi >= 2:
        ddp_names = [n for n in names if workbench.get(n).distributed]
        print(f"\n== section 3: {multi} processes against 1 on {device_name} (benchmarks/ddp.py)", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).with_name("ddp.py")), "--device", args.device,
                        "--nproc", "1", str(multi), "--names", *ddp_names], check=False)
    elif args.device == "cuda":
        print(f"\n== section 3 skipped: {torch.cuda.device_count()} GPU visible (needs 2 or more)")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
