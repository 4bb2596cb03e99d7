"""cascades: executions per second of each inference method on the tiny LM, batched against unbatched,
and the cost of self-consistency@K against K.

    python benchmarks/cascades.py [--train-steps 300] [--problems 8] [--n 8] [--rounds 3] [--threads 1]

A tiny character transformer is trained briefly on the addition world (so cascades write lines of the
right shape), then on ``--problems`` held-out five-digit problems each method runs ``--n`` executions
(particles, tries, beams, K) of the scratchpad cascade (forward, beam, self-consistency) or of the
verifier-guided one (rejection, importance, SMC): once with the engine batching language-model work
across executions and problems (the default), once performing each sample and score on its own. Rounds
interleave the methods and both modes; each figure is the median over rounds. Also: the key/value
cache's speedup when sampling, and self-consistency@K's seconds and LM rows per problem for K = 1…32.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-cascades-"))

import torch  # noqa: E402

from workbench.methods.cascades import LocalBackend, infer_many  # noqa: E402
from workbench.methods.cascades import arithmetic as A  # noqa: E402
from workbench.methods.cascades import examples as X  # noqa: E402
from workbench.lib.lm import TinyLM  # noqa: E402

METHODS = {  # method → (cascade, options)
    "forward": (X.scratchpad, {}),
    "self_consistency": (X.scratchpad, {"answer": "answer"}),
    "rejection": (X.verified_scratchpad, {"max_tries": None}),
    "importance": (X.verified_scratchpad, {}),
    "smc": (X.verified_scratchpad, {"ess_threshold": 0.5}),
    "beam": (X.scratchpad, {"expand": 2}),
}


def train(steps: int, seed: int = 0) -> TinyLM:
    torch.manual_seed(seed)  # a script: the benchmark's own initialisation
    lm = A.make_lm(64, 2, 4, context=A.context_needed(6))
    corpus = A.build_corpus(lm, steps * 64, steps * 64, seed, [1, 1, 1, 2, 2])
    opt = torch.optim.AdamW(lm.parameters(), lr=6e-3)
    for s in range(steps):
        g = range(s * 64, (s + 1) * 64)
        loss = A.lm_loss(lm, [corpus.prompts[i] for i in g], [corpus.completions[i] for i in g]) + A.lm_loss(
            lm, [corpus.short_prompts[i] for i in g], [corpus.short_completions[i] for i in g])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lm.eval()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-steps", type=int, default=300, help="training steps of the tiny LM (default 300)")
    ap.add_argument("--problems", type=int, default=8, help="held-out problems per measurement (default 8)")
    ap.add_argument("--n", type=int, default=8, help="executions per problem (particles, tries, K; beam width n/2)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--k-max", type=int, default=32, help="largest K of the self-consistency cost table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    lm = train(args.train_steps)
    print(f"trained the tiny LM for {args.train_steps} steps in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.numel() for p in lm.parameters()):,} parameters, {args.threads} thread(s))")
    backend = LocalBackend(lm, batch_size=256)
    problems = A.held_out(args.problems, 5, seed=0)

    def run(method: str, batched: bool, n: int | None = None) -> Callable[[], object]:
        cascade, options = METHODS[method]
        n = n or (max(1, args.n // 2) if method == "beam" else args.n)
        opts = {**options, "max_tries": n} if method == "rejection" else dict(options)
        name = "self_consistency" if method == "self_consistency" else method
        return lambda: infer_many([lambda p=p: cascade(backend, p) for p in problems], name, n, seed=0,
                                  batched=batched, **opts)

    # --- inference methods, batched vs unbatched ---------------------------------------------------
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.rounds):
        for method in METHODS:
            for batched in (True, False):
                times.setdefault((method, batched), []).append(timed(run(method, batched)))
    print(f"\nexecutions per second ({args.problems} problems × n = {args.n}; beam: width {max(1, args.n // 2)}, "
          f"expand 2), median of {args.rounds} interleaved rounds")
    print(f"{'method':<18}{'batched /s':>12}{'unbatched /s':>14}{'speedup':>10}")
    for method in METHODS:
        n = max(1, args.n // 2) if method == "beam" else args.n
        b = statistics.median(times[(method, True)])
        u = statistics.median(times[(method, False)])
        execs = args.problems * n
        print(f"{method:<18}{execs / b:>12.1f}{execs / u:>14.1f}{u / b:>9.1f}×")

    # --- the key/value cache -------------------------------------------------------------------------
    plain = TinyLM(lm.tokenizer, **lm.arch).eval()
    plain.load_state_dict(lm.state_dict())
    prompts = [A.prompt(p, "scratchpad") + "".join(x + "\n" for x in A.scratchpad_lines(p)[:3]) for p in problems] * 32
    cached_t, plain_t = [], []
    for _ in range(args.rounds):
        cached_t.append(timed(lambda: lm.sample(prompts, max_new_tokens=12, stop=["\n"],
                                                generator=torch.Generator().manual_seed(0), batch_size=256)))
        plain_t.append(timed(lambda: plain.sample(prompts, max_new_tokens=12, stop=["\n"],
                                                  generator=torch.Generator().manual_seed(0), batch_size=256)))
    c, p = statistics.median(cached_t), statistics.median(plain_t)
    print(f"\nsampling {len(prompts)} scratchpad lines: with the key/value cache {len(prompts) / c:.0f} lines/s, "
          f"recomputing the prefix {len(prompts) / p:.0f} lines/s ({p / c:.1f}× faster)")

    # --- scoring: one batch against one row at a time ------------------------------------------------
    texts = [A.scratchpad_lines(p)[3] for p in problems] * 16
    score_prompts = prompts[: len(texts)]
    b_t, u_t = [], []
    for _ in range(args.rounds):
        b_t.append(timed(lambda: backend.log_prob(score_prompts, texts, max_tokens=12, stop=("\n",))))
        u_t.append(timed(lambda: [backend.log_prob([q], [t], max_tokens=12, stop=("\n",))
                                  for q, t in zip(score_prompts, texts)]))
    b, u = statistics.median(b_t), statistics.median(u_t)
    print(f"scoring {len(texts)} strings (exact String log-probs): batched {len(texts) / b:.0f}/s, one at a time "
          f"{len(texts) / u:.0f}/s ({u / b:.1f}× faster)")

    # --- self-consistency@K ---------------------------------------------------------------------------
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= args.k_max]
    print(f"\nself-consistency@K on {args.problems} problems (batched), median of {args.rounds} rounds")
    print(f"{'K':>4}{'s / problem':>14}{'LM rows / problem':>20}{'cost vs K=1':>14}")
    base = None
    rows: dict[int, list[float]] = {}
    lm_rows: dict[int, float] = {}
    for _ in range(args.rounds):
        for k in ks:
            before = backend.stats["sampled"] + backend.stats["scored"]
            rows.setdefault(k, []).append(timed(run("self_consistency", True, k)))
            lm_rows[k] = (backend.stats["sampled"] + backend.stats["scored"] - before) / args.problems
    for k in ks:
        t = statistics.median(rows[k]) / args.problems
        base = base or t
        print(f"{k:>4}{t:>14.3f}{lm_rows[k]:>20.0f}{t / base:>13.1f}×")


if __name__ == "__main__":
    main()
