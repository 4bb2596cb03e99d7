"""Experiment ``cascades``: inference over language-model cascades in the addition world.

1. Train a tiny character transformer on multi-digit addition in four formats (carry scratchpad,
   direct answer, calculator calls, and the short local formats of the verifier and of
   selection-inference's inference step); most training problems have few digits.
2. On held-out problems with ``test_digits``-digit operands (rare in training), measure exact-match
   accuracy of: the direct answer; forward sampling of the scratchpad cascade; self-consistency@K
   (majority over K scratchpads); verifier-guided reasoning (the verifier's ``y`` observed after each
   line, inferred by SMC with K particles and by rejection with K tries); tool use (a calculator);
   selection-inference; and single-sample accuracy against the number of digits.
3. STaR: rationales for other long problems are inferred given their known answers by rejection,
   the model is fine-tuned on them, and accuracy is measured after every round.

Claims (Dohan et al. 2022, from the works it formalises): self-consistency raises accuracy over a single
sample; verifier guidance raises it further; tool use beats unaided arithmetic on longer numbers; STaR raises
accuracy over rounds. Traces (every string variable with its log-prob, accepted or rejected, with
its weight) are stored for the trace viewer.
"""
from __future__ import annotations

import copy
import io
import math
from collections import Counter
from typing import Any, Callable

import torch

from workbench.core.context import RunContext
from workbench.core.params import Config, ConfigError, Param
from workbench.core.registry import Experiment, register

from . import arithmetic as A
from . import examples as X
from .backends import LocalBackend
from .infer import Posterior, infer_many

EVALUATIONS = ("direct", "sampling", "verifier", "verifier_rejection", "tool", "selection_inference", "digits",
               "star")


class CascadesConfig(Config):
    evaluations: str = Param("all", doc="comma-separated evaluations ('all': " + ", ".join(EVALUATIONS) + ")")
    d_model: int = Param(64, bounds=(8, 1024), unit="dims", doc="tiny transformer width")
    n_layer: int = Param(2, bounds=(1, 12), unit="layers", doc="tiny transformer depth")
    n_head: int = Param(4, bounds=(1, 32), unit="heads", doc="attention heads (divides d_model)")
    train_steps: int = Param(2000, bounds=(1, 1_000_000), unit="steps", doc="training steps of the tiny transformer")
    batch_size: int = Param(64, bounds=(2, 4096), unit="examples", doc="scratchpads per step (plus as many "
                                                                          "examples of the short formats)")
    lr: float = Param(6e-3, bounds=(1e-6, 1.0), log=True, doc="AdamW peak learning rate (warm-up, cosine to 10%)")
    max_train_digits: int = Param(5, bounds=(1, 9), unit="digits", doc="longest operands in training")
    digit_weights: str = Param("3,3,3,2,1", doc="relative frequency of 1, 2, … max_train_digits-digit operands")
    test_digits: int = Param(5, bounds=(1, 9), unit="digits", doc="digits of both operands of held-out problems")
    width: int = Param(5, bounds=(0, 9), unit="digits", doc="write operands with this many digits and answers with "
                                                             "one more (leading zeros: every column at a fixed "
                                                             "place); 0: as they are")
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
        if self.d_model % self.n_head:
            raise ConfigError(f"parameter 'n_head' = {self.n_head} must divide d_model = {self.d_model}", "n_head")


# --- the model -------------------------------------------------------------------------------------
def model_bytes(lm: Any) -> bytes:
    """The trained model as bytes (architecture, tokenizer, weights) for views and the playground."""
    buf = io.BytesIO()
    torch.save({"arch": lm.arch, "tokenizer": lm.tokenizer.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in lm.state_dict().items()}}, buf)
    return buf.getvalue()


def load_model(data: bytes) -> Any:
    """The inverse of :func:`model_bytes`: the tiny transformer (with cached decoding) in eval mode."""
    from workbench.lib.lm import Tokenizer

    from .kvcache import CachedTinyLM

    blob = torch.load(io.BytesIO(data), weights_only=True)
    lm = CachedTinyLM(Tokenizer.from_dict(blob["tokenizer"]), **blob["arch"])
    lm.load_state_dict(blob["state_dict"])
    return lm.eval()


def _train(cfg: CascadesConfig, ctx: RunContext, lm: Any, excluded: set) -> None:
    n = min(cfg.train_steps * cfg.batch_size, 40_000)
    corpus = A.build_corpus(lm, n, n, cfg.seed, cfg.weights(), exclude=excluded, width=cfg.width)
    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.lr, weight_decay=0.01)
    ctx.track(lm=lm, opt=opt)
    gen = ctx.batches(len(corpus.prompts), cfg.batch_size, name="train")
    short = ctx.batches(len(corpus.short_prompts), cfg.batch_size, name="train_short")
    warmup = max(1, min(100, cfg.train_steps // 10))
    trained = False
    for step in ctx.steps(cfg.train_steps, phase="train"):
        trained = True
        scale = min(1.0, (step + 1) / warmup) * (0.55 + 0.45 * math.cos(math.pi * step / cfg.train_steps))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * scale
        gi, si = next(gen).tolist(), next(short).tolist()
        with ctx.autocast():
            gen_loss = A.lm_loss(lm, [corpus.prompts[i] for i in gi], [corpus.completions[i] for i in gi])
            short_loss = A.lm_loss(lm, [corpus.short_prompts[i] for i in si], [corpus.short_completions[i] for i in si])
        loss = gen_loss + short_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.train_steps - 1:
            ctx.log(step, **{"train/loss": gen_loss.item(), "train/short_loss": short_loss.item()})
    lm.eval()
    if trained:  # (a run resumed after training restores the model later, in its own phase)
        ctx.artifact("model", model_bytes(lm), kind="bytes")


# --- evaluation units -------------------------------------------------------------------------------
def _correct(answer: Any, problem: A.Problem) -> bool:
    return answer is not None and answer == problem.answer


def _majority(answers: list[Any]) -> Any:
    votes = Counter(a for a in answers if a is not None)
    return votes.most_common(1)[0][0] if votes else None


def _trace_record(method: str, k: int, problem: A.Problem, post: Posterior, answer: Any) -> dict[str, Any]:
    """What the trace viewer shows of one problem under one method."""
    rows = post.records()
    for r in rows:
        r["correct"] = r.get("value") == problem.answer
    return {"method": method, "k": k, "question": problem.question, "truth": problem.answer, "answer": answer,
            "correct": _correct(answer, problem), "traces": rows}


class Evaluator:
    """Runs the evaluation units and accumulates their results in a checkpointed dict."""

    def __init__(self, cfg: CascadesConfig, ctx: RunContext, backend: LocalBackend, test: list[A.Problem],
                 results: dict[str, Any]):
        self.cfg, self.ctx, self.backend, self.test, self.results = cfg, ctx, backend, test, results
        self.t = cfg.temperature

    def plan(self, evaluations: list[str]) -> list[tuple[str, int]]:
        units: list[tuple[str, int]] = []
        for e in evaluations:
            if e in ("direct", "sampling", "tool", "selection_inference"):
                units.append((e, self.cfg.k_max if e == "sampling" else 1))
            elif e in ("verifier", "verifier_rejection"):
                units += [(e, k) for k in self.cfg.ks]
            elif e == "digits":
                top = self.cfg.width or self.cfg.test_digits + 1
                units += [(e, d) for d in range(1, top + 1)]
        return units

    def _store(self, method: str, k: int, posts: list[Posterior], answers: list[Any]) -> None:
        n = self.cfg.stored_traces
        if n == 0:
            return
        recs = self.results.setdefault("traces", [])
        recs += [_trace_record(method, k, p, post, a)
                 for p, post, a in zip(self.test[:n], posts[:n], answers[:n])]
        self.ctx.artifact("traces", {"problems": recs}, kind="json")

    def _accuracy(self, method: str, k: int, answers: list[Any], cost: int) -> float:
        acc = sum(_correct(a, p) for a, p in zip(answers, self.test)) / len(self.test)
        rows = self.results.setdefault("accuracy", [])
        rows.append({"method": method, "k": k, "accuracy": acc, "lm_rows": cost})
        self.ctx.log(k, **{f"accuracy/{method}": acc})
        self.ctx.artifact("accuracy", list(rows), kind="table")
        return acc

    def run(self, unit: tuple[str, int], seed: int) -> None:
        kind, k = unit
        cfg, lm, t = self.cfg, self.backend, self.t
        before = lm.stats["sampled"] + lm.stats["scored"]
        cost = lambda: lm.stats["sampled"] + lm.stats["scored"] - before  # noqa: E731
        if kind in ("direct", "tool", "selection_inference"):
            fn: Callable[..., Any] = {"direct": X.direct, "tool": X.tool_use,
                                      "selection_inference": X.selection_inference}[kind]
            posts = infer_many([lambda p=p: fn(lm, p, temperature=t) for p in self.test], "forward", 1, seed=seed)
            answers = [post.traces[0].get("answer") for post in posts]
            self._accuracy(kind, 1, answers, cost())
            self._store(kind, 1, posts, answers)
        elif kind == "sampling":
            posts = infer_many([lambda p=p: X.scratchpad(lm, p, temperature=t) for p in self.test], "forward", k,
                               seed=seed)
            per = [[tr.get("answer") for tr in post.traces] for post in posts]
            single = sum(_correct(a, p) for ans, p in zip(per, self.test) for a in ans) / (len(self.test) * k)
            rows = self.results.setdefault("accuracy", [])
            rows.append({"method": "forward", "k": 1, "accuracy": single, "lm_rows": cost() / k})
            self.ctx.log(1, **{"accuracy/forward": single})
            for kk in cfg.ks:
                self._accuracy("self_consistency", kk, [_majority(ans[:kk]) for ans in per], cost() * kk // k)
            self._store("self_consistency", k, posts, [_majority(ans) for ans in per])
        elif kind == "verifier":
            posts = infer_many([lambda p=p: X.verified_scratchpad(lm, p, temperature=t, check=cfg.verifier_check)
                                for p in self.test], "smc",
                               k, seed=seed, ess_threshold=cfg.ess_threshold)
            answers = [_posterior_answer(post) for post in posts]
            self._accuracy("verifier_smc", k, answers, cost())
            if k == cfg.k_max:
                self._store("verifier_smc", k, posts, answers)
        elif kind == "verifier_rejection":
            posts = infer_many([lambda p=p: X.verified_scratchpad(lm, p, temperature=t, check=cfg.verifier_check)
                                for p in self.test], "rejection", k, seed=seed, max_tries=k)
            answers = [_majority([tr.get("answer") for tr in post.traces]) for post in posts]
            self._accuracy("verifier_rejection", k, answers, cost())
            if k == cfg.k_max:
                self._store("verifier_rejection", k, posts, answers)
        elif kind == "digits":
            problems = A.held_out(cfg.digits_problems, k, seed=cfg.seed + 17, width=cfg.width)
            rows = self.results.setdefault("digits", [])
            for name, fn in (("direct", X.direct), ("scratchpad", X.scratchpad), ("tool", X.tool_use)):
                posts = infer_many([lambda p=p: fn(lm, p, temperature=t) for p in problems], "forward", 1, seed=seed)
                acc = sum(_correct(post.traces[0].get("answer"), p) for post, p in zip(posts, problems)) / len(problems)
                rows.append({"format": name, "digits": k, "accuracy": acc})
                self.ctx.log(k, **{f"digits/{name}": acc})
            self.ctx.artifact("digits", list(rows), kind="table")


def _posterior_answer(post: Posterior) -> Any:
    try:
        return post.map("answer")
    except ValueError:  # no trace with positive weight reached an answer
        return None


# --- STaR ------------------------------------------------------------------------------------------
def _star(cfg: CascadesConfig, ctx: RunContext, lm: Any, test: list[A.Problem], star_set: list[A.Problem],
          results: dict[str, Any]) -> None:
    """Rounds of: rationales by rejection given the known answers, fine-tuning on them (mixed with the
    original formats so they are not forgotten), accuracy on the test set."""
    star_lm = copy.deepcopy(lm)
    opt = torch.optim.AdamW(star_lm.parameters(), lr=cfg.star_lr, weight_decay=0.01)
    data = ctx.state("star_data", {"pairs": []})
    ctx.track(star_lm=star_lm, star_opt=opt)
    backend = LocalBackend(star_lm, batch_size=cfg.lm_batch)
    base = A.build_corpus(lm, 4096, 16, cfg.seed + 5, cfg.weights(), width=cfg.width)
    per_round = cfg.star_steps + 2
    rows = results.setdefault("star", [])

    def evaluate(round_: int, seed: int, rationales: int, acceptance: float) -> None:
        star_lm.eval()
        posts = infer_many([lambda p=p: X.scratchpad(backend, p, temperature=cfg.temperature) for p in test],
                           "forward", cfg.star_eval_samples, seed=seed)
        acc = sum(_correct(tr.get("answer"), p) for post, p in zip(posts, test) for tr in post.traces) / (
            len(test) * cfg.star_eval_samples)
        rows.append({"round": round_, "accuracy": acc, "rationales": rationales, "acceptance": acceptance})
        ctx.log(round_, **{"star/accuracy": acc})
        ctx.artifact("star", list(rows), kind="table")

    for step in ctx.steps(1 + cfg.star_rounds * per_round, phase="star"):
        seed = cfg.seed * 1_000_003 + step
        if step == 0:
            evaluate(0, seed, 0, float("nan"))
            continue
        round_, local = (step - 1) // per_round + 1, (step - 1) % per_round
        if local == 0:  # collect rationales: rejection given the known answer
            star_lm.eval()
            pairs, posts = X.star_round(backend, star_set, cfg.star_tries, seed=seed, temperature=cfg.temperature)
            data["pairs"] += [list(pr) for pr in pairs]
            data["last"] = {"new": len(pairs), "acceptance": sum(len(p) for p in posts) / len(posts)}
            ctx.log(round_, **{"star/rationales": len(data["pairs"]), "star/found": len(pairs) / len(star_set)})
            star_lm.train()
        elif local <= cfg.star_steps:
            if not data["pairs"]:
                continue
            g = torch.Generator().manual_seed(seed)
            half = max(1, cfg.batch_size // 2)
            pi = torch.randint(len(data["pairs"]), (half,), generator=g).tolist()
            bi = torch.randint(len(base.prompts), (half,), generator=g).tolist()
            prompts = [star_lm.encode_prompt(data["pairs"][i][0]) for i in pi] + [base.prompts[i] for i in bi]
            comps = [star_lm.encode(data["pairs"][i][1]) + [star_lm.eos_id] for i in pi] + [base.completions[i]
                                                                                          for i in bi]
            with ctx.autocast():
                loss = A.lm_loss(star_lm, prompts, comps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.log((round_ - 1) * cfg.star_steps + local, **{"star/loss": loss.item()})
        else:
            last = data.get("last", {})
            evaluate(round_, seed, len(data["pairs"]), float(last.get("acceptance", float("nan"))))


# --- the run ---------------------------------------------------------------------------------------
def run(cfg: CascadesConfig, ctx: RunContext) -> dict[str, float]:
    evaluations = cfg.evaluation_list()
    columns = cfg.width or max(cfg.max_train_digits, cfg.test_digits) + 1
    lm = A.make_lm(cfg.d_model, cfg.n_layer, cfg.n_head, context=A.context_needed(columns), seed=cfg.seed)
    lm = lm.to(ctx.device)
    test = A.held_out(cfg.test_problems, cfg.test_digits, seed=cfg.seed, width=cfg.width)
    star_set = A.held_out(cfg.star_problems, cfg.test_digits, seed=cfg.seed + 1, exclude=set(test), width=cfg.width)
    _train(cfg, ctx, lm, set(test) | set(star_set))

    results = ctx.state("results", {})
    evaluator = Evaluator(cfg, ctx, LocalBackend(lm, batch_size=cfg.lm_batch), test, results)
    units = evaluator.plan(evaluations)
    for step in ctx.steps(len(units), phase="evaluate"):
        evaluator.run(units[step], seed=cfg.seed * 7919 + step)
    if "star" in evaluations and cfg.star_rounds:
        _star(cfg, ctx, lm, test, star_set, results)
    ctx.artifact("model", model_bytes(lm), kind="bytes")
    return _finish(cfg, ctx, results)


def _best(rows: list[dict], method: str, k: int | None = None) -> float | None:
    vals = [r["accuracy"] for r in rows if r["method"] == method and (k is None or r["k"] == k)]
    return vals[-1] if vals else None


def _finish(cfg: CascadesConfig, ctx: RunContext, results: dict[str, Any]) -> dict[str, float]:
    rows = results.get("accuracy", [])
    summary: dict[str, float] = {}
    for r in rows:
        summary[f"{r['method']}@{r['k']}/accuracy"] = r["accuracy"]
    k = cfg.k_max
    single, sc = _best(rows, "forward", 1), _best(rows, "self_consistency", k)
    n = cfg.test_problems
    if single is not None and sc is not None:
        ctx.claim("Self-consistency raises accuracy over a single sample",
                  f"{cfg.test_digits}-digit problems: one sample {single:.3f}; self-consistency@{k} {sc:.3f}",
                  sc > single, f"exact match on {n} held-out problems; single-sample accuracy averaged over {k} "
                               f"samples at temperature {cfg.temperature:g}")
    ver = _best(rows, "verifier_smc", k)
    if ver is not None and sc is not None:
        rej = _best(rows, "verifier_rejection", k)
        ctx.claim("Verifier-guided inference raises accuracy further (over self-consistency)",
                  f"verifier-guided SMC@{k} {ver:.3f} vs self-consistency@{k} {sc:.3f}"
                  + (f"; verifier-guided rejection@{k} {rej:.3f}" if rej is not None else ""),
                  ver > sc, f"the verifier's check '{cfg.verifier_check}' observed after each scratchpad line (judge: its 'y' "
                            "on the previous and new line; recompute: the line's sum under the position-free I "
                            f"format); {k} particles (SMC) or tries (rejection) against self-consistency over the "
                            "same number of samples")
    tool = _best(rows, "tool", 1)
    if tool is not None and single is not None:
        unaided = max(v for v in (single, _best(rows, "direct", 1)) if v is not None)
        ctx.claim("Tool use beats unaided arithmetic on longer numbers",
                  f"{cfg.test_digits}-digit problems: calculator {tool:.3f}; best unaided single sample "
                  f"{unaided:.3f}", tool > unaided,
                  "one sample each; tool use: the model writes the calculator call and the calculator's result is "
                  "the answer; unaided = the better of the scratchpad and the direct answer")
    star = results.get("star", [])
    if len(star) >= 2:
        first, last = star[0]["accuracy"], star[-1]["accuracy"]
        path = " → ".join(f"{r['accuracy']:.3f}" for r in star)
        ctx.claim("STaR raises accuracy over rounds", f"accuracy by round: {path}", last > first,
                  f"{cfg.star_rounds} rounds, {cfg.star_problems} questions with known answers, rationales by "
                  f"rejection ({cfg.star_tries} tries each), {cfg.star_steps} fine-tuning steps per round")
        summary["star/initial_accuracy"], summary["star/final_accuracy"] = first, last
    return summary


EXPERIMENT = register(Experiment(
    name="cascades",
    title="Language Model Cascades: probabilistic programs over strings",
    description=__doc__.split("\n\n")[0] if __doc__ else "",
    config=CascadesConfig,
    run=run,
    smoke={"train_steps": 20, "d_model": 16, "n_head": 2, "n_layer": 1, "test_problems": 3, "k_max": 2,
           "max_train_digits": 2, "digit_weights": "1,1", "test_digits": 2, "width": 2, "digits_problems": 2, "star_rounds": 1,
           "star_problems": 3, "star_tries": 1, "star_steps": 2, "star_eval_samples": 1, "batch_size": 8,
           "stored_traces": 2},
    demo={},
    key_metrics=("train/loss", "star/accuracy"),  # accuracies by K: the "accuracy vs K" view (x = K, not steps)
))
