"""kto: tokens/s of one KTO training step (policy forward on the batch and its mismatched pairs, the reference's
log-probs, backward, Adam step), with the reference run every step ("live") or its log-probs computed once
("cached": the workbench's ``reference_cache``, TRL's ``precompute_ref_log_probs``).

    python benchmarks/kto.py [--threads 1] [--steps 10] [--rounds 5] [--batch 16] [--seq 64] [--clock cpu] [--no-trl]

Models: the toy world's tiny transformer, and a small GPT-2-shaped Hugging Face model built locally
(random weights, word-level tokenizer; no download). When ``trl`` is importable (the optional ``bench``
extra), the same HF model and batch also go through TRL's ``KTOTrainer`` (both in float32: TRL's bf16
default is switched off; both step a fused Adam/AdamW, TRL's default optimiser). All candidates step in turn within a
round (median of ``--steps``); each ratio workbench/TRL is printed for every round, then as the median over
``--rounds`` rounds with their range. Tokens = prompt + completion tokens of the batch's examples (the mismatched KL
pairs are extra work both implementations do: the same shapes, so the same FLOPs; the ratio is overhead and noise).
``--clock cpu`` (default) times each step by the process's CPU seconds (one torch thread: the step's own work; on a
shared machine wall time mostly measures waiting for a core, and its rounds scatter by ±20%); ``--clock wall`` by
the wall clock. State the load average beside the figures.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from typing import Callable

os.environ.setdefault("WORKBENCH_HOME", tempfile.mkdtemp(prefix="wb-bench-kto-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from workbench.methods.kto import toyworld as W  # noqa: E402
from workbench.methods.kto.train import (LossParams, adam, fix_kl_pairs, kto_step,  # noqa: E402
                                         precompute_reference, tokenise_unpaired)
from workbench.lib.lm import CausalLM, TinyLM  # noqa: E402


def batch_rows(n: int, words: int, seed: int = 0) -> tuple[list[str], list[str], list[bool]]:
    """``n`` toy-world rows whose completions have ``words`` words (repeated reviews, alternating labels)."""
    reviews = W.generate_reviews(n, torch.Generator().manual_seed(seed))
    prompts = [p for p, _ in reviews]
    completions = [" ".join((c.split() * (words // 5 + 1))[:words]) for _, c in reviews]
    labels = [i % 2 == 0 for i in range(n)]
    return prompts, completions, labels


class WorkbenchStep:
    """One KTO step of the workbench implementation on a fixed batch (reference log-probs cached or live)."""

    def __init__(self, lm: CausalLM, rows: tuple[list[str], list[str], list[bool]], cache: bool = False):
        self.policy, self.reference = copy.deepcopy(lm).train(), lm.eval()
        self.data = tokenise_unpaired(self.policy, *rows)
        self.opt = adam(self.policy.parameters(), lr=1e-5)  # the experiment's optimiser
        self.idx = list(range(len(self.data)))
        if cache:  # the batch is one chunk: mismatched pairs rotate within it, as in the live path
            fix_kl_pairs(self.data, [self.idx])
            precompute_reference(self.reference, self.data, [self.idx])
        self.tokens = sum(len(p) + len(c) for p, c in zip(self.data.prompt_ids, self.data.completion_ids))

    def __call__(self) -> None:
        loss, _, _ = kto_step(self.policy, self.reference, self.data, self.idx, LossParams.bind())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


class TRLStep:
    """One step of TRL's KTOTrainer (training_step + optimizer step) on the same model and batch."""

    def __init__(self, model_dir: str, rows: tuple[list[str], list[str], list[bool]], precompute: bool = False):
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import KTOConfig, KTOTrainer

        prompts, completions, labels = rows
        ds = Dataset.from_dict({"prompt": prompts, "completion": [" " + c for c in completions], "label": labels})
        cfg = KTOConfig(output_dir=tempfile.mkdtemp(prefix="wb-bench-trl-"), per_device_train_batch_size=len(prompts),
                        learning_rate=1e-5, save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(),
                        max_length=256, dataloader_num_workers=0, beta=0.1, disable_tqdm=True,
                        precompute_ref_log_probs=precompute,
                        bf16=False)  # TRL defaults to bf16 autocast (also on CPU): compare in float32
        self.trainer = KTOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir),
                                  ref_model=AutoModelForCausalLM.from_pretrained(model_dir), args=cfg,
                                  train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(model_dir))
        self.trainer.create_optimizer()
        self.trainer.current_gradient_accumulation_steps = 1  # set by train(); we drive training_step directly
        self.batch = next(iter(self.trainer.get_train_dataloader()))
        self.trainer.model.train()

    def __call__(self) -> None:
        self.trainer.training_step(self.trainer.model, self.batch)
        self.trainer.optimizer.step()
        self.trainer.optimizer.zero_grad(set_to_none=True)


def rounds(steps: dict[str, Callable[[], None]], n: int, r: int,
           clock: Callable[[], float] = time.process_time) -> list[dict[str, float]]:
    """``r`` rounds of :func:`interleaved` (median seconds per call of each candidate, per round)."""
    return [interleaved(steps, n, warm=i == 0, clock=clock) for i in range(r)]


def interleaved(steps: dict[str, Callable[[], None]], n: int, warm: bool = True,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds per call by ``clock``, calling the candidates in turn (so a busy machine hurts them alike)."""
    for fn in steps.values() if warm else ():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(n):
        for name, fn in steps.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="interleaved steps per round (median)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the ratios' median and range over them)")
    parser.add_argument("--batch", type=int, default=16, help="examples per step (the KL batch doubles the work)")
    parser.add_argument("--seq", type=int, default=64, help="completion words for the HF model")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time steps by process CPU seconds (default) or the wall clock")
    parser.add_argument("--no-trl", action="store_true")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch threads {args.threads}, batch {args.batch}, device cpu, {args.clock} clock")
    print(f"{'model':34s} {'params':>9s} {'tok/step':>8s} {'ms/step':>8s} {'tokens/s':>10s}")

    tiny = TinyLM(W.tokenizer(), n_layer=2, d_model=64, n_head=4, context=W.CONTEXT)
    step = WorkbenchStep(tiny, batch_rows(args.batch, 9))
    sec = interleaved({"tiny": step}, args.steps * args.rounds, clock=clock)["tiny"]
    print(f"{'tiny transformer (workbench)':34s} {tiny.num_parameters():9d} {step.tokens:8d} {sec * 1e3:8.1f} "
          f"{step.tokens / sec:10.0f}")

    try:
        from workbench.lib.lm.hf import HFLM, tiny_gpt2
    except ImportError:
        print("transformers is not installed: no HF figures")
        return
    model_dir = tiny_gpt2(tempfile.mkdtemp(prefix="wb-bench-gpt2-"), W.tokenizer().tokens, n_layer=4, n_embd=256,
                          n_head=4, n_positions=args.seq + 8)
    hf = HFLM.from_pretrained(model_dir, device="cpu")
    rows = batch_rows(args.batch, args.seq)
    candidates: dict[str, Callable[[], None]] = {"workbench live": WorkbenchStep(hf, rows),
                                                 "workbench cached": WorkbenchStep(hf, rows, cache=True)}
    tokens = candidates["workbench live"].tokens
    if not args.no_trl:
        try:
            candidates["TRL live"] = TRLStep(model_dir, rows)
            candidates["TRL precomputed"] = TRLStep(model_dir, rows, precompute=True)
        except ImportError:
            print("trl is not installed (pip install 'workbench[bench]'): no TRL comparison")
    per_round = rounds(candidates, args.steps, args.rounds, clock)
    for name in candidates:
        sec = statistics.median(r[name] for r in per_round)
        print(f"{'GPT-2-shaped 4x256 (' + name + ')':34s} {hf.num_parameters():9d} {tokens:8d} {sec * 1e3:8.1f} "
              f"{tokens / sec:10.0f}")
    pairs = [("workbench live", "TRL live"), ("workbench cached", "TRL precomputed"), ("workbench cached", "TRL live"),
             ("workbench cached", "workbench live")]
    for mine, theirs in pairs:
        if mine in candidates and theirs in candidates:
            each = [r[theirs] / r[mine] for r in per_round]
            ratios = sorted(each)
            print(f"tokens/s {mine} / {theirs}: {statistics.median(ratios):.2f} "
                  f"(range {ratios[0]:.2f}-{ratios[-1]:.2f} over {args.rounds} rounds of {args.steps} interleaved "
                  f"steps; rounds {' '.join(f'{x:.2f}' for x in each)})")
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
