"""Experiment ``cascades``: inference over language-model cascades in the addition world.

1. Train a tiny character transformer on multi-digit addition in four formats (carry scratchpad,
   direct answer, calculator calls, and the short local formats of the verifier and of
   selection-inference's inference step); most training problems have few digits.
2. On held-out problems with ``test_digits``-digit operands (rare in training), measure exact-match
   accuracy of: the direct answer; forward sampling of the scratchpad cascade; self-consistency@K
   (majority over K scratchpads); verifier-guided reasoning (the verifier's ``y`` observed after each
   line, inferred by SMC with K particles and by rejection with K tries); tool use (a calculator);
   selection-inference; single-sample accuracy against the number of digits; and tool use against the
   unaided cascades on ``long_digits``-digit operands, longer than any in training and written as they are.
3. STaR: rationales for other long problems are inferred given their known answers by rejection, the
   model is fine-tuned on them (with ground-truth scratchpads of the training distribution), and a control
   arm is fine-tuned for the same steps at the same learning rate on the same ground-truth batches without
   the rationales; both are measured after every round.

Claims (:mod:`workbench.methods.cascades.claims`, each an effect with a paired bootstrap interval over the test
problems): self-consistency beats a single sample; verifier guidance beats self-consistency on as many samples;
tool use beats the best unaided cascade on longer numbers; STaR beats its control. Traces (every string variable
with its log-prob, accepted or rejected, with its weight) are stored for the trace viewer; the trained model is
saved (``workbench.runs.load_model(run_id, "lm")``, and ``"star"`` after STaR).

Randomness and torchrun: inference runs in blocks of ``problem_block`` problems, each block in one batched engine
with its own stream (from the unit and the block's index), so a problem's draws never depend on the number of
processes. Under torchrun the ranks take the blocks in turn and the per-problem results (answers, the stored traces,
rationales) are gathered in problem order; the language-model work is summed. Training and STaR fine-tuning are
data-parallel: every rank takes its rows of the global batch (``ctx.batches``, or the batch drawn from the same
stream on every rank), its loss is its tokens' share of the global batch's per-token loss and the gradients are
averaged. The figures are one process's (the losses to floating-point rounding).
"""
from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any, Callable

import torch

from workbench.core.context import RunContext, Shard
from workbench.core.params import Config, ConfigError, LoopParams, OptimParams, Param
from workbench.core.registry import Experiment, register

from . import arithmetic as A
from . import claims as C
from . import examples as X
from .backends import LocalBackend
from .infer import Posterior, infer_many

EVALUATIONS = ("direct", "sampling", "verifier", "verifier_rejection", "tool", "selection_inference", "digits",
               "star")

Optim = OptimParams.with_defaults(
    lr=6e-3, weight_decay=0.01,
    docs={"lr": "AdamW peak learning rate of training (warm-up, cosine to 10%)",
          "weight_decay": "AdamW weight decay (training and STaR fine-tuning)"})
Loop = LoopParams.with_defaults(
    steps=2000, batch_size=64, eval_every=100,
    docs={"steps": "training steps of the tiny transformer",
          "batch_size": "scratchpads per step (plus as many examples of the short formats)",
          "eval_every": "log the held-out scratchpads' loss (teacher forcing) every N training steps"})


class CascadesConfig(Optim, Loop, Config):
    evaluations: str = Param("all", doc="comma-separated evaluations ('all': " + ", ".join(EVALUATIONS) + ")")
    d_model: int = Param(64, bounds=(8, 1024), unit="dims", doc="tiny transformer width")
    n_layer: int = Param(2, bounds=(1, 12), unit="layers", doc="tiny transformer depth")
    n_head: int = Param(4, bounds=(1, 32), unit="heads", doc="attention heads (divides d_model)")
    max_train_digits: int = Param(5, bounds=(1, 9), unit="digits", doc="longest operands in training")
    digit_weights: str = Param("3,3,3,2,1", doc="relative frequency of 1, 2, … max_train_digits-digit operands")
    test_digits: int = Param(5, bounds=(1, 9), unit="digits", doc="digits of both operands of held-out problems")
    width: int = Param(5, bounds=(0, 9), unit="digits", doc="write operands with this many digits and answers with "
                                                             "one more (leading zeros: every column at a fixed "
                                                             "place); 0: as they are")
    long_digits: int = Param(6, bounds=(2, 12), unit="digits", doc="digits of both operands of the tool-use claim's "
                                                                     "problems: longer than any in training (and "
                                                                     "than width), written as they are")
    test_problems: int = Param(128, bounds=(1, 100_000), unit="problems", doc="held-out problems per evaluation")
    k_max: int = Param(8, bounds=(1, 256), unit="samples", doc="largest K (samples, particles, tries); K = 1, 2, "
                                                                  "4, … k_max")
    temperature: float = Param(1.0, bounds=(0.05, 5.0), log=True, doc="sampling temperature of every cascade")
    verifier_check: str = Param("both", choices=("judge", "recompute", "both"),
                       doc="the verifier's check after each line: judge (reads the previous and the new line, "
                           "says y/n), recompute (the line's sum under the position-free I format), both")
    ess_threshold: float = Param(0.5, bounds=(0.0, 1.0), step=0.05, doc="SMC resamples when ESS < this · K")
    digits_problems: int = Param(32, bounds=(1, 10_000), unit="problems", doc="problems per digit count "
                                                                               "(accuracy vs digits)")
    star_rounds: int = Param(3, bounds=(0, 50), unit="rounds", doc="STaR rounds")
    star_problems: int = Param(128, bounds=(1, 100_000), unit="problems",
                               doc="STaR questions per round (test_digits digits, disjoint from the test set)")
    star_tries: int = Param(4, bounds=(1, 256), unit="tries", doc="rejection tries per STaR question")
    star_steps: int = Param(100, bounds=(1, 1_000_000), unit="steps", doc="fine-tuning steps per STaR round")
    star_lr: float = Param(1e-3, bounds=(1e-6, 1.0), log=True, doc="STaR fine-tuning learning rate (AdamW)")
    star_eval_samples: int = Param(4, bounds=(1, 64), unit="samples", doc="samples per test problem when "
                                                                             "measuring accuracy between rounds")
    lm_batch: int = Param(256, bounds=(1, 8192), unit="rows", doc="rows per forward pass during inference")
    stored_traces: int = Param(2, bounds=(0, 64), unit="problems", doc="test problems whose traces are stored")
    problem_block: int = Param(32, bounds=(1, 100_000), unit="problems",
                               doc="problems per inference block: one batched engine and one random stream per "
                                   "block (from its index), so the draws do not depend on the number of processes; "
                                   "under torchrun the ranks take the blocks in turn")

    def evaluation_list(self) -> list[str]:
        if self.evaluations.strip() == "all":
            return list(EVALUATIONS)
        names = [e.strip() for e in self.evaluations.split(",") if e.strip()]
        unknown = [e for e in names if e not in EVALUATIONS]
        if unknown or not names:
            raise ConfigError(f"parameter 'evaluations' = {self.evaluations!r}: unknown {unknown}; allowed: all or a "
                              f"comma-separated list of {', '.join(EVALUATIONS)}", "evaluations")
        return list(dict.fromkeys(names))

    def weights(self) -> list[float]:
        try:
            w = [float(x) for x in self.digit_weights.split(",")]
        except ValueError:
            w = []
        if len(w) != self.max_train_digits or any(x < 0 or not math.isfinite(x) for x in w) or sum(w) <= 0:
            raise ConfigError(f"parameter 'digit_weights' = {self.digit_weights!r} must be {self.max_train_digits} "
                              "non-negative numbers (one per digit count up to max_train_digits), not all zero",
                              "digit_weights")
        return w

    @property
    def ks(self) -> list[int]:
        """K = 1, 2, 4, … up to k_max (k_max itself included)."""
        out, k = [], 1
        while k < self.k_max:
            out.append(k)
            k *= 2
        return out + [self.k_max]

    def check(self) -> None:
        self.evaluation_list()
        self.weights()
        if self.width and self.width < max(self.max_train_digits, self.test_digits):
            raise ConfigError(f"parameter 'width' = {self.width} must be 0 or at least max_train_digits and "
                              f"test_digits ({max(self.max_train_digits, self.test_digits)})", "width")
        if self.long_digits <= max(self.max_train_digits, self.width):
            raise ConfigError(f"parameter 'long_digits' = {self.long_digits} must be more than max_train_digits and "
                              f"width ({max(self.max_train_digits, self.width)}): operands longer than any in "
                              "training", "long_digits")
        if self.d_model % self.n_head:
            raise ConfigError(f"parameter 'n_head' = {self.n_head} must divide d_model = {self.d_model}", "n_head")


# --- randomness and data ---------------------------------------------------------------------------
def _data_seed(ctx: RunContext, name: str) -> int:
    """The integer seed of a data set's Python stream (problems, corpora), drawn from ``ctx.rng("data/<name>")``."""
    return int(torch.randint(0, 2**62, (), generator=ctx.rng(f"data/{name}")))


def _correct(answer: Any, problem: A.Problem) -> bool:
    return answer is not None and answer == problem.answer


def _majority(answers: list[Any]) -> Any:
    votes = Counter(a for a in answers if a is not None)
    return votes.most_common(1)[0][0] if votes else None


# --- ranks ---------------------------------------------------------------------------------------------
def sharded_inference(ctx: RunContext, problems: list[A.Problem], make: Callable[[A.Problem], Any], method: str,
                      n: int, stream: str, step: int | None, block: int,
                      extract: Callable[[int, A.Problem, Posterior], Any], **options: Any) -> list[Any]:
    """``extract(index, problem, posterior)`` of every problem, in problem order, on every rank. Inference runs in
    blocks of ``block`` problems; block b draws from ``ctx.rng(f"{stream}/block{b}", step)`` and runs on rank
    b mod world_size, so the draws are the same under any number of ranks."""
    mine: list[tuple[int, Any]] = []
    for b, start in enumerate(range(0, len(problems), block)):
        if b % ctx.world_size != ctx.rank:
            continue
        chunk = problems[start: start + block]
        posts = infer_many([lambda p=p: make(p) for p in chunk], method, n, seed=ctx.rng(f"{stream}/block{b}", step),
                           **options)
        mine += [(start + i, extract(start + i, p, post)) for i, (p, post) in enumerate(zip(chunk, posts))]
    return [v for _, v in sorted((x for part in ctx.gather_objects(mine) for x in part), key=lambda iv: iv[0])]


def lm_loss_share(ctx: RunContext, lm: Any, prompts: list[list[int]], completions: list[list[int]]
                  ) -> tuple[torch.Tensor, float]:
    """This rank's share of the global batch's per-token loss (its rows' Σ −log p over the global batch's token
    count: the ranks' shares sum to :func:`arithmetic.lm_loss` of the global batch) and that global loss."""
    out = lm.batch_logps(lm.collate(prompts, completions))
    nll = -out.logps.sum()
    totals = ctx.all_reduce_sum(torch.stack([nll.detach().float(), out.lengths.sum().float()]))
    return nll / totals[1].to(nll.dtype).clamp_min(1), float(totals[0] / totals[1].clamp_min(1))


# --- the model -------------------------------------------------------------------------------------
@torch.no_grad()
def _held_out_loss(lm: Any, prompts: list[list[int]], completions: list[list[int]], batch: int,
                   ctx: RunContext | None = None) -> float:
    """Per-token negative log-likelihood of the held-out problems' scratchpads (teacher forcing; with ``ctx``
    each rank scores its rows and the sums are added over the ranks)."""
    shard = Shard(len(prompts)) if ctx is None else ctx.rows(len(prompts))
    rows = shard.rows().tolist()
    prompts, completions = [prompts[i] for i in rows], [completions[i] for i in rows]
    total, tokens = 0.0, 0.0
    for s in range(0, len(prompts), batch):
        out = lm.batch_logps(lm.collate(prompts[s: s + batch], completions[s: s + batch]))
        total -= float(out.logps.sum())
        tokens += float(out.lengths.sum())
    if shard.world_size > 1 and ctx is not None:
        total, tokens = ctx.all_reduce_sum(torch.tensor([total, tokens])).tolist()
    return total / max(tokens, 1.0)


def _train(cfg: CascadesConfig, ctx: RunContext, lm: Any, excluded: set, test: list[A.Problem]) -> None:
    n = min(cfg.steps * cfg.batch_size, 40_000)
    corpus = A.build_corpus(lm, n, n, _data_seed(ctx, "train"), cfg.weights(), exclude=excluded, width=cfg.width)
    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ctx.track(lm=lm, opt=opt)
    gen = ctx.batches(len(corpus.prompts), cfg.batch_size, name="train")
    short = ctx.batches(len(corpus.short_prompts), cfg.batch_size, name="train_short")
    held = ([lm.encode_prompt(A.prompt(p, "scratchpad")) for p in test],
            [lm.encode(A.completion(p, "scratchpad")) + [lm.eos_id] for p in test])
    warmup = max(1, min(100, cfg.steps // 10))
    trained = False
    for step in ctx.steps(cfg.steps, phase="train"):
        trained = True
        scale = min(1.0, (step + 1) / warmup) * (0.55 + 0.45 * math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * scale
        gi, si = next(gen).tolist(), next(short).tolist()  # this rank's rows of the global batches
        with ctx.autocast():
            gen_loss, gen_value = lm_loss_share(ctx, lm, [corpus.prompts[i] for i in gi],
                                                [corpus.completions[i] for i in gi])
            short_loss, short_value = lm_loss_share(ctx, lm, [corpus.short_prompts[i] for i in si],
                                                    [corpus.short_completions[i] for i in si])
        opt.zero_grad(set_to_none=True)
        ((gen_loss + short_loss) * ctx.world_size).backward()  # × ranks: average_gradients divides by them
        ctx.average_gradients(lm)
        opt.step()
        last = step == cfg.steps - 1
        if step % 10 == 0 or last:
            ctx.log(step, **{"train/loss": gen_value, "train/short_loss": short_value})
        if (step + 1) % cfg.eval_every == 0 or last:
            ctx.log(step, **{"eval/loss": _held_out_loss(lm, *held, cfg.lm_batch, ctx)})
    lm.eval()
    if trained:  # (a run resumed after training restores the model later, in its own phase, and saves it then)
        ctx.save_model("lm", lm, lm.spec())


# --- evaluation units -------------------------------------------------------------------------------
def _trace_record(method: str, k: int, problem: A.Problem, records: list[dict[str, Any]], answer: Any
                  ) -> dict[str, Any]:
    """What the trace viewer shows of one problem under one method (``records``: its posterior's records)."""
    rows = [dict(r) for r in records]
    for r in rows:
        r["correct"] = r.get("value") == problem.answer
    return {"method": method, "k": k, "question": problem.question, "truth": problem.answer, "answer": answer,
            "correct": _correct(answer, problem), "traces": rows}


def _answers(post: Posterior) -> list[Any]:
    """Every trace's answer (None where it has none)."""
    return [tr.get("answer") for tr in post.traces]


class Evaluator:
    """Runs the evaluation units and accumulates their results in a checkpointed dict: accuracies (``accuracy``,
    ``digits``, ``long``), each claim's per-problem results (``per_problem``) and stored traces. Inference is
    sharded by blocks of problems (:func:`sharded_inference`); what each unit keeps of a problem is gathered."""

    def __init__(self, cfg: CascadesConfig, ctx: RunContext, backend: LocalBackend, test: list[A.Problem],
                 results: dict[str, Any]):
        self.cfg, self.ctx, self.backend, self.test, self.results = cfg, ctx, backend, test, results
        self.t = cfg.temperature

    def plan(self, evaluations: list[str]) -> list[tuple[str, int]]:
        units: list[tuple[str, int]] = []
        for e in evaluations:
            if e in ("direct", "sampling", "selection_inference"):
                units.append((e, self.cfg.k_max if e == "sampling" else 1))
            elif e == "tool":
                units += [("tool", 1), ("long", self.cfg.long_digits)]
            elif e in ("verifier", "verifier_rejection"):
                units += [(e, k) for k in self.cfg.ks]
            elif e == "digits":
                top = self.cfg.width or self.cfg.test_digits + 1
                units += [(e, d) for d in range(1, top + 1)]
        return units

    def _infer(self, problems: list[A.Problem], make: Callable[[A.Problem], Any], method: str, n: int, stream: str,
               step: int, answer: Callable[[Posterior], Any], **options: Any) -> tuple[list[dict[str, Any]], int]:
        """Per problem (in order) ``{"answer": answer(post), "records": ...}`` (records for the first
        ``stored_traces`` problems), and the language-model rows used by every rank."""
        stored = self.cfg.stored_traces

        def extract(i: int, p: A.Problem, post: Posterior) -> dict[str, Any]:
            return {"answer": answer(post), "records": post.records() if i < stored else None,
                    "call": str(post.traces[0].get("call") or "") if post.traces else ""}

        before = self.backend.stats["sampled"] + self.backend.stats["scored"]
        out = sharded_inference(self.ctx, problems, make, method, n, stream, step, self.cfg.problem_block, extract,
                                **options)
        cost = self.backend.stats["sampled"] + self.backend.stats["scored"] - before
        return out, int(round(float(self.ctx.all_reduce_sum(torch.tensor(float(cost))))))

    def _store(self, method: str, k: int, got: list[dict[str, Any]], answers: list[Any]) -> None:
        n = self.cfg.stored_traces
        if n == 0:
            return
        recs = self.results.setdefault("traces", [])
        recs += [_trace_record(method, k, p, g["records"], a) for p, g, a in zip(self.test[:n], got[:n], answers[:n])]
        self.ctx.artifact("traces", {"problems": recs}, kind="json")

    def _per_problem(self, key: str, values: list[float]) -> None:
        self.results.setdefault("per_problem", {})[key] = [float(v) for v in values]

    def _accuracy(self, method: str, k: int, answers: list[Any], cost: int) -> float:
        hits = [float(_correct(a, p)) for a, p in zip(answers, self.test)]
        acc = sum(hits) / len(self.test)
        rows = self.results.setdefault("accuracy", [])
        rows.append({"method": method, "k": k, "accuracy": acc, "lm_rows": cost})
        self.ctx.log(k, **{f"accuracy/{method}": acc})
        self.ctx.artifact("accuracy", list(rows), kind="table")
        if k == self.cfg.k_max or method in ("direct", "tool", "selection_inference"):
            self._per_problem(f"{method}@{k}", hits)
        return acc

    def _single(self, fn: Callable[..., Any], problems: list[A.Problem], stream: str, step: int
                ) -> tuple[list[dict[str, Any]], int]:
        """One forward sample of ``fn``'s cascade per problem."""
        return self._infer(problems, lambda p: fn(self.backend, p, temperature=self.t), "forward", 1, stream, step,
                           lambda post: post.traces[0].get("answer"))

    def run(self, unit: tuple[str, int], step: int) -> None:
        kind, k = unit
        cfg, lm, t, ctx = self.cfg, self.backend, self.t, self.ctx
        stream = f"evaluate/{kind}"  # every unit (and block) its own stream: nothing to checkpoint
        if kind in ("direct", "tool", "selection_inference"):
            fn: Callable[..., Any] = {"direct": X.direct, "tool": X.tool_use,
                                      "selection_inference": X.selection_inference}[kind]
            got, cost = self._single(fn, self.test, stream, step)
            answers = [g["answer"] for g in got]
            self._accuracy(kind, 1, answers, cost)
            self._store(kind, 1, got, answers)
        elif kind == "sampling":
            got, cost = self._infer(self.test, lambda p: X.scratchpad(lm, p, temperature=t), "forward", k, stream,
                                    step, _answers)
            per = [g["answer"] for g in got]
            hits = [[float(_correct(a, p)) for a in ans] for ans, p in zip(per, self.test)]
            single = sum(map(sum, hits)) / (len(self.test) * k)
            rows = self.results.setdefault("accuracy", [])
            rows.append({"method": "forward", "k": 1, "accuracy": single, "lm_rows": cost / k})
            self.ctx.log(1, **{"accuracy/forward": single})
            self._per_problem("forward@1", [sum(h) / k for h in hits])  # one sample's accuracy on each problem
            for kk in cfg.ks:
                self._accuracy("self_consistency", kk, [_majority(ans[:kk]) for ans in per], cost * kk // k)
            self._store("self_consistency", k, got, [_majority(ans) for ans in per])
        elif kind == "verifier":
            got, cost = self._infer(self.test, lambda p: X.verified_scratchpad(lm, p, temperature=t,
                                                                               check=cfg.verifier_check),
                                    "smc", k, stream, step, _posterior_answer, ess_threshold=cfg.ess_threshold)
            answers = [g["answer"] for g in got]
            self._accuracy("verifier_smc", k, answers, cost)
            if k == cfg.k_max:
                self._store("verifier_smc", k, got, answers)
        elif kind == "verifier_rejection":
            got, cost = self._infer(self.test, lambda p: X.verified_scratchpad(lm, p, temperature=t,
                                                                               check=cfg.verifier_check),
                                    "rejection", k, stream, step, lambda post: _majority(_answers(post)), max_tries=k)
            answers = [g["answer"] for g in got]
            self._accuracy("verifier_rejection", k, answers, cost)
            if k == cfg.k_max:
                self._store("verifier_rejection", k, got, answers)
        elif kind == "digits":
            problems = A.held_out(cfg.digits_problems, k, seed=_data_seed(ctx, "digits"), width=cfg.width)
            rows = self.results.setdefault("digits", [])
            for name, fn in (("direct", X.direct), ("scratchpad", X.scratchpad), ("tool", X.tool_use)):
                got, _ = self._single(fn, problems, f"{stream}/{name}", step)
                acc = sum(_correct(g["answer"], p) for g, p in zip(got, problems)) / len(problems)
                rows.append({"format": name, "digits": k, "accuracy": acc})
                self.ctx.log(k, **{f"digits/{name}": acc})
            self.ctx.artifact("digits", list(rows), kind="table")
        elif kind == "long":
            self._long(k, stream, step)

    def _long(self, digits: int, stream: str, step: int) -> None:
        """Tool use and the unaided cascades (one sample each) on ``digits``-digit operands written as they are
        (no padding): longer than any operand in training. Also how often the calculator call copies the
        question exactly (the only thing the model must do right for the tool to answer)."""
        cfg = self.cfg
        problems = A.held_out(cfg.test_problems, digits, seed=_data_seed(self.ctx, "long"), width=0)
        rows = self.results.setdefault("long", [])
        for name, fn in (("tool", X.tool_use), ("direct", X.direct), ("scratchpad", X.scratchpad)):
            got, _ = self._single(fn, problems, f"{stream}/{name}", step)
            hits = [float(_correct(g["answer"], p)) for g, p in zip(got, problems)]
            row: dict[str, Any] = {"format": name, "digits": digits, "accuracy": sum(hits) / len(hits)}
            if name == "tool":
                calls = [g["call"] for g in got]
                row["copied"] = sum(c == ">" + p.question for c, p in zip(calls, problems)) / len(problems)
                row["calls"] = [c for c in calls[:8]]
            rows.append(row)
            self._per_problem(f"long/{name}", hits)
            self.ctx.log(digits, **{f"long/{name}": row["accuracy"]})
        self.ctx.artifact("long", [{k: v for k, v in r.items() if k != "calls"} for r in rows], kind="table")


def _posterior_answer(post: Posterior) -> Any:
    try:
        return post.map("answer")
    except ValueError:  # no trace with positive weight reached an answer
        return None


# --- STaR ------------------------------------------------------------------------------------------
ARMS = ("star", "control")


def _star(cfg: CascadesConfig, ctx: RunContext, lm: Any, test: list[A.Problem], star_set: list[A.Problem],
          results: dict[str, Any]) -> None:
    """Rounds of: rationales by rejection given the known answers; fine-tuning on them mixed with ground-truth
    scratchpads of the training distribution (so the formats are not forgotten); accuracy on the test set.

    The control arm starts from the same model and takes the same steps at the same learning rate on the same
    ground-truth half of every batch, without the rationales: STaR's gain over it is the rationales' effect
    (the ground-truth half, the extra steps and a learning rate above the end of the main schedule are shared).
    Both arms are measured with the same random stream (common random numbers: a paired comparison)."""
    models = {arm: copy.deepcopy(lm) for arm in ARMS}
    opts = {arm: torch.optim.AdamW(models[arm].parameters(), lr=cfg.star_lr, weight_decay=cfg.weight_decay)
            for arm in ARMS}
    data = ctx.state("star_data", {"pairs": []})
    ctx.track(star_lm=models["star"], star_opt=opts["star"], control_lm=models["control"],
              control_opt=opts["control"])
    backends = {arm: LocalBackend(models[arm], batch_size=cfg.lm_batch) for arm in ARMS}
    base = A.build_corpus(lm, 4096, 16, _data_seed(ctx, "star_base"), cfg.weights(),
                          exclude=set(test) | set(star_set), width=cfg.width)
    per_round = cfg.star_steps + 2
    rows = results.setdefault("star", [])

    def evaluate(arm: str, round_: int, rationales: int, acceptance: float) -> None:
        model = models[arm]
        model.eval()
        answers = sharded_inference(ctx, test, lambda p: X.scratchpad(backends[arm], p, temperature=cfg.temperature),
                                    "forward", cfg.star_eval_samples, "star/evaluate", round_, cfg.problem_block,
                                    lambda i, p, post: _answers(post))
        per = [sum(_correct(a, p) for a in ans) / cfg.star_eval_samples for ans, p in zip(answers, test)]
        acc = sum(per) / len(per)
        results.setdefault("per_problem", {})[f"star/{arm}"] = per
        rows.append({"round": round_, "arm": arm, "accuracy": acc, "rationales": rationales,
                     "acceptance": acceptance})
        ctx.log(round_, **{"star/accuracy" if arm == "star" else "star/control_accuracy": acc})
        ctx.artifact("star", list(rows), kind="table")

    for step in ctx.steps(1 + cfg.star_rounds * per_round, phase="star"):
        if step == 0:  # round 0: both arms are the trained model (one measurement, recorded for each)
            evaluate("star", 0, 0, float("nan"))
            rows.append({**rows[-1], "arm": "control"})
            results["per_problem"]["star/control"] = list(results["per_problem"]["star/star"])
            continue
        round_, local = (step - 1) // per_round + 1, (step - 1) % per_round
        if local == 0:  # collect rationales with the STaR model: rejection given the known answer
            models["star"].eval()
            found = sharded_inference(  # X.star_round, by blocks: (prompt, rationale) or None, and the tries kept
                ctx, star_set, lambda p: X.star_rationale(backends["star"], p, cfg.temperature), "rejection", 1,
                "star/rationales", step, cfg.problem_block,
                lambda i, p, post: ((A.prompt(p, "scratchpad"), X.rationale_text(post.traces[0])) if len(post)
                                    else None, len(post)), max_tries=cfg.star_tries)
            pairs = [pair for pair, _ in found if pair is not None]
            data["pairs"] += [list(pr) for pr in pairs]
            data["last"] = {"new": len(pairs), "acceptance": sum(kept for _, kept in found) / len(found)}
            ctx.log(round_, **{"star/rationales": len(data["pairs"]), "star/found": len(pairs) / len(star_set)})
            for model in models.values():
                model.train()
        elif local <= cfg.star_steps:
            half = max(1, cfg.batch_size // 2)
            bi = torch.randint(len(base.prompts), (half,), generator=ctx.rng("star/base", step)).tolist()
            prompts, comps = [base.prompts[i] for i in bi], [base.completions[i] for i in bi]
            losses = {}
            for arm in ARMS:  # the global batch drawn alike on every rank; each rank trains on its rows of it
                model, p, c = models[arm], prompts, comps
                if arm == "star" and data["pairs"]:
                    pi = torch.randint(len(data["pairs"]), (half,), generator=ctx.rng("star/pairs", step)).tolist()
                    p = [model.encode_prompt(data["pairs"][i][0]) for i in pi] + prompts
                    c = [model.encode(data["pairs"][i][1]) + [model.eos_id] for i in pi] + comps
                mine = ctx.shard(len(p)).rows().tolist()  # len(p) >= half >= ranks (check_ranks)
                with ctx.autocast():
                    share, losses[arm] = lm_loss_share(ctx, model, [p[i] for i in mine], [c[i] for i in mine])
                opts[arm].zero_grad(set_to_none=True)
                (share * ctx.world_size).backward()  # × ranks: average_gradients divides by them
                ctx.average_gradients(model)
                opts[arm].step()
            ctx.log((round_ - 1) * cfg.star_steps + local,
                    **{"star/loss": losses["star"], "star/control_loss": losses["control"]})
        else:
            last = data.get("last", {})
            for arm in ARMS:
                evaluate(arm, round_, len(data["pairs"]), float(last.get("acceptance", float("nan"))))
    ctx.save_model("star", models["star"], models["star"].spec())


# --- the run ---------------------------------------------------------------------------------------
def check_ranks(cfg: CascadesConfig, world_size: int) -> None:
    """Under torchrun every rank needs rows of every training batch (STaR's halves included)."""
    if world_size > 1 and cfg.batch_size // 2 < world_size:
        raise ConfigError(f"parameter 'batch_size' = {cfg.batch_size} must be at least twice the number of processes "
                          f"({world_size}) under torchrun (STaR fine-tunes on half-batches)", "batch_size")


def run(cfg: CascadesConfig, ctx: RunContext) -> dict[str, float]:
    check_ranks(cfg, ctx.world_size)
    evaluations = cfg.evaluation_list()
    columns = cfg.width or max(cfg.max_train_digits, cfg.test_digits) + 1
    if "tool" in evaluations:  # the tool-use claim's scratchpads are longer than any in training
        columns = max(columns, cfg.long_digits)
    with ctx.seeded("init"):
        lm = A.make_lm(cfg.d_model, cfg.n_layer, cfg.n_head, context=A.context_needed(columns))
    lm = lm.to(ctx.device)
    test = A.held_out(cfg.test_problems, cfg.test_digits, seed=_data_seed(ctx, "test"), width=cfg.width)
    star_set = A.held_out(cfg.star_problems, cfg.test_digits, seed=_data_seed(ctx, "star"), exclude=set(test),
                          width=cfg.width)
    _train(cfg, ctx, lm, set(test) | set(star_set), test)

    results = ctx.state("results", {})
    evaluator = Evaluator(cfg, ctx, LocalBackend(lm, batch_size=cfg.lm_batch), test, results)
    units = evaluator.plan(evaluations)
    for step in ctx.steps(len(units), phase="evaluate"):
        evaluator.run(units[step], step)
    ctx.save_model("lm", lm, lm.spec())
    if "star" in evaluations and cfg.star_rounds:
        _star(cfg, ctx, lm, test, star_set, results)
    return _finish(cfg, ctx, results)


def _best(rows: list[dict], method: str, k: int | None = None) -> float | None:
    vals = [r["accuracy"] for r in rows if r["method"] == method and (k is None or r["k"] == k)]
    return vals[-1] if vals else None


def _finish(cfg: CascadesConfig, ctx: RunContext, results: dict[str, Any]) -> dict[str, float]:
    rows = results.get("accuracy", [])
    per = results.get("per_problem", {})
    summary: dict[str, float] = {}
    for r in rows:
        summary[f"{r['method']}@{r['k']}/accuracy"] = r["accuracy"]
    k, n, t = cfg.k_max, cfg.test_problems, cfg.temperature
    setting = (f"{n} held-out problems with {cfg.test_digits}-digit operands; exact match; temperature {t:g}; "
               "paired bootstrap over the problems")
    sc, single = per.get(f"self_consistency@{k}"), per.get("forward@1")
    if sc is not None and single is not None:
        ctx.claim(C.self_consistency(sc, single, k=k, generator=ctx.rng("claims/self_consistency"),
                                     detail=f"{setting}; one sample's accuracy on a problem: the mean over its {k} "
                                            "samples"))
    smc = per.get(f"verifier_smc@{k}")
    if smc is not None and sc is not None:
        rej = _best(rows, "verifier_rejection", k)
        ctx.claim(C.verifier(smc, sc, k=k, generator=ctx.rng("claims/verifier"),
                             detail=f"{setting}; the verifier's check '{cfg.verifier_check}' observed after each "
                                    "scratchpad line (judge: its 'y' on the previous and new line; recompute: the "
                                    f"line's sum under the position-free I format); {k} particles against {k} "
                                    "samples" + (f"; verifier-guided rejection@{k}: {rej:.3f}" if rej is not None
                                                 else "")))
    long_rows = {r["format"]: r for r in results.get("long", [])}
    if "long/tool" in per:
        unaided = {name: per[f"long/{name}"] for name in ("direct", "scratchpad") if f"long/{name}" in per}
        tool_row = long_rows.get("tool", {})
        copied = tool_row.get("copied", float("nan"))
        calls = ", ".join(tool_row.get("calls", [])[:3])
        ctx.claim(C.tool_use(per["long/tool"], unaided, digits=cfg.long_digits, trained_digits=cfg.max_train_digits,
                             generator=ctx.rng("claims/tool_use"),
                             detail=f"{n} problems, one sample each, unpadded; the model writes the calculator call "
                                    "and the calculator's result is the answer, so the tool is right exactly when "
                                    f"the call copies the question: {copied:.3f} of calls did (first calls: {calls}); "
                                    f"{_long_diagnosis(cfg)}"))
        summary["long/tool/accuracy"] = tool_row.get("accuracy", float("nan"))
    star_rows = results.get("star", [])
    if "star/star" in per and "star/control" in per and len(star_rows) > 2:
        path = {arm: " → ".join(f"{r['accuracy']:.3f}" for r in star_rows if r.get("arm", "star") == arm)
                for arm in ARMS}
        rationales = int(star_rows[-1].get("rationales", 0))
        ctx.claim(C.star(per["star/star"], per["star/control"], rationales=rationales,
                         generator=ctx.rng("claims/star"),
                         detail=f"accuracy by round: STaR {path['star']}; control {path['control']}; "
                                f"{cfg.star_rounds} rounds of {cfg.star_steps} steps at lr {cfg.star_lr:g} "
                                f"(the main schedule ends at {0.1 * cfg.lr:g}); {rationales} rationales found for "
                                f"{cfg.star_problems} questions with known answers by rejection "
                                f"({cfg.star_tries} tries each); accuracy: {cfg.star_eval_samples} samples per "
                                f"test problem; {setting}"))
        first = [r for r in star_rows if r.get("arm", "star") == "star"]
        control = [r for r in star_rows if r.get("arm") == "control"]
        summary["star/initial_accuracy"], summary["star/final_accuracy"] = first[0]["accuracy"], first[-1]["accuracy"]
        summary["star/control_accuracy"] = control[-1]["accuracy"]
    return summary


def _long_diagnosis(cfg: CascadesConfig) -> str:
    """Why the unaided and tool cascades meet operands longer than training where they do (the claim's conclusion)."""
    return (f"the tiny transformer has learned absolute positions, trained on operands of at most "
            f"{cfg.max_train_digits} digits written {cfg.width or cfg.max_train_digits} wide, so every character of a "
            f"{cfg.long_digits}-digit question past the training width sits at positions it never saw in that role")


EXPERIMENT = register(Experiment(
    name="cascades",
    title="Language Model Cascades: probabilistic programs over strings",
    description=__doc__.split("\n\n")[0] if __doc__ else "",
    config=CascadesConfig,
    run=run,
    smoke={"steps": 20, "d_model": 16, "n_head": 2, "n_layer": 1, "test_problems": 3, "k_max": 2,
           "max_train_digits": 2, "digit_weights": "1,1", "test_digits": 2, "width": 2, "long_digits": 3,
           "digits_problems": 2, "star_rounds": 1, "star_problems": 3, "star_tries": 1, "star_steps": 2,
           "star_eval_samples": 1, "batch_size": 8, "stored_traces": 2, "eval_every": 10},
    ddp_smoke={"problem_block": 1},  # a block per problem: under torchrun the ranks share every unit's problems
    demo={},
    key_metrics=("train/loss", "eval/loss", "star/accuracy", "star/control_accuracy"),
    distributed=True,  # inference sharded by blocks of problems, training data-parallel (see the module docstring)
    distributed_note="inference (forward, self-consistency, SMC, rejection, tool use, selection-inference, STaR's "
                     "rationales) runs in blocks of problem_block problems with a stream per block, the ranks taking "
                     "blocks in turn, per-problem results gathered: the same draws as one process; training and STaR "
                     "fine-tuning are data-parallel (token-weighted loss shares, averaged gradients): one process's "
                     "losses to floating-point rounding. batch_size must be at least twice the number of processes",
    # accuracies by K: the "accuracy vs K" view (x = K, not steps)
))
