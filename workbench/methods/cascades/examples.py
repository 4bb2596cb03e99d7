"""Cascades from the paper (Dohan et al. 2022: scratchpads, verifiers, STaR,
selection-inference, tool use, twenty questions), each a short generator function.

The arithmetic ones run on the demo world's formats (:mod:`workbench.methods.cascades.arithmetic`) with any
backend that was trained on them; the twenty-questions game runs with its built-in agents or with
language-model agents.

- :func:`scratchpad`: chain of thought, one scratchpad line at a time, until the answer line;
- :func:`direct`: the answer without a scratchpad;
- :func:`self_consistency`: K scratchpads, majority over their answers (the thought marginalised);
- :func:`verified_scratchpad`: a verifier's "correct" (``y``) observed after every line;
- :func:`selection_inference`: each step first selects (the digits and the carry, from the question),
  then infers from the selection alone (Creswell et al. 2022);
- :func:`tool_use`: the model writes a calculator call, the calculator answers, the model answers;
- :func:`star_rationale` / :func:`star_round`: STaR (Zelikman et al. 2022): rationales inferred
  given the question and the known answer by rejection, the training pairs for the next round;
- :func:`twenty_questions`: two agents (an asker and a keeper of a secret) as nested cascades.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

import torch

from .arithmetic import LINE, Problem, calculator, parse_answer, prompt, read_answer, verifier_prompt
from .distributions import Categorical, Constant, String
from .effects import Cascade, log, observe, reject, sample, scope
from .infer import infer_many

LINE_TOKENS = 12


CHECKS = ("judge", "recompute", "both")


def scratchpad(lm: Any, problem: Problem, temperature: float = 1.0, verifier: Any = None,
               strict: bool = True, check: str = "both") -> Cascade:
    """Chain of thought: one scratchpad line per column (``line0``, ``line1``, ...), the ``answer`` read
    off the lines. With a ``verifier`` (an LM trained on the world's ``V`` and ``I`` formats), after
    every line observe its verdict (``check``): ``judge``: the verifier reads the previous line and
    the new one and says ``y`` (observed: ``check{i}``); ``recompute``: the verifier recomputes the
    line's sum from its digits alone, and the line's sum is observed under that (``sum{i}``); ``both``.
    A malformed line ends the chain: rejected (``strict``) or answering None."""
    if check not in CHECKS:
        raise ValueError(f"check = {check!r}; allowed: {', '.join(CHECKS)}")
    text, previous, lines = prompt(problem, "scratchpad"), "", []
    for i in range(problem.digits):
        line = yield sample(String(lm, text, stop="\n", max_tokens=LINE_TOKENS, temperature=temperature), f"line{i}")
        if LINE.match(line) is None:
            if strict:
                yield reject(f"line {i} is not a+b+c=ds")
            break
        if verifier is not None and check in ("judge", "both"):
            yield observe(String(verifier, verifier_prompt(previous, line), max_tokens=2), "y", f"check{i}")
        if verifier is not None and check in ("recompute", "both"):
            yield observe(String(verifier, f"I:{line[:5]}=", stop="\n", max_tokens=3), line[6:], f"sum{i}")
        text, previous = text + line + "\n", line
        lines.append(line)
    answer = yield log(read_answer(lines) if len(lines) == problem.digits else None, "answer")
    return answer


def verified_scratchpad(lm: Any, problem: Problem, verifier: Any = None, temperature: float = 1.0,
                        check: str = "both") -> Cascade:
    """Verifier-guided reasoning: after each line the verifier (by default the same model in its ``V``
    and ``I`` formats) checks it and its verdict is observed; inference (SMC, rejection, importance)
    then prefers chains whose every step the verifier accepts."""
    return (yield from scratchpad(lm, problem, temperature, verifier=verifier if verifier is not None else lm,
                                  check=check))


def direct(lm: Any, problem: Problem, temperature: float = 1.0) -> Cascade:
    """The answer without a scratchpad."""
    line = yield sample(String(lm, prompt(problem, "direct"), stop="\n", max_tokens=problem.digits + 4,
                               temperature=temperature), "answer_line")
    answer = yield log(parse_answer(line), "answer")
    return answer


def self_consistency(lm: Any, problem: Problem, k: int = 5, temperature: float = 1.0) -> Cascade:
    """K independent scratchpads (scopes ``thought0`` …) and the majority of their answers (Wang et al.
    2022). ``infer(scratchpad, "self_consistency", K)`` does the same with the K chains batched."""
    answers = []
    for j in range(k):
        answers.append((yield from scope(f"thought{j}", scratchpad(lm, problem, temperature, strict=False))))
    votes = Counter(a for a in answers if a is not None)
    majority = yield log(votes.most_common(1)[0][0] if votes else None, "answer")
    return majority


def selection_inference(lm: Any, problem: Problem, temperature: float = 1.0) -> Cascade:
    """Selection–inference: per column, select ``a+b+c`` from the question and the previous line (the
    scratchpad format, stopped at ``=``), then infer the sum from the selection alone (the ``I``
    format, which never sees the question); the answer is read off the lines."""
    text, lines = prompt(problem, "scratchpad"), []
    for i in range(problem.digits):
        selection = yield sample(String(lm, text, stop=("=", "\n"), max_tokens=LINE_TOKENS, temperature=temperature),
                                 f"select{i}")
        total = yield sample(String(lm, f"I:{selection}=", stop="\n", max_tokens=3, temperature=temperature),
                             f"infer{i}")
        lines.append(f"{selection}={total}")
        text += lines[-1] + "\n"
    answer = yield log(read_answer(lines), "answer")
    return answer


def tool_use(lm: Any, problem: Problem, tool: Callable[[str, int], str] = calculator,
             temperature: float = 1.0) -> Cascade:
    """The model writes the calculator call ``>expression``; the tool's result (``calculator``) is the
    answer (None when the call is not ``>a+b``)."""
    text = prompt(problem, "tool")
    call = yield sample(String(lm, text, stop="\n", max_tokens=2 * problem.digits + 4, temperature=temperature),
                        "call")
    if not call.startswith(">"):
        yield reject("no tool call")
    result = yield log(tool(call[1:], problem.width + 1 if problem.width else 0), "calculator")
    answer = yield log(int(result) if result.isdigit() else None, "answer")
    return answer


def star_rationale(lm: Any, problem: Problem, temperature: float = 1.0) -> Cascade:
    """STaR's rationale given question and answer: a scratchpad whose answer must equal the known one
    (an observation that rejection sampling enforces exactly)."""
    answer = yield from scratchpad(lm, problem, temperature)
    yield observe(Constant(answer), problem.answer, "known_answer")
    return answer


def rationale_text(trace: Any) -> str:
    """The scratchpad a trace wrote (its ``line*`` values, one per line: a scratchpad completion)."""
    return "\n".join(s.value for s in trace if s.name.startswith("line"))


def star_round(lm: Any, problems: Sequence[Problem], tries: int, seed: int | torch.Generator = 0,
               temperature: float = 1.0) -> tuple[list[tuple[str, str]], list[Any]]:
    """One STaR round: for each problem, up to ``tries`` rationales by rejection given the known answer
    (all problems batched); returns the (prompt, completion) pairs to fine-tune on and the posteriors."""
    cascades = [lambda p=p: star_rationale(lm, p, temperature) for p in problems]
    posts = infer_many(cascades, "rejection", 1, seed=seed, max_tries=tries)
    pairs = [(prompt(p, "scratchpad"), rationale_text(post.traces[0]))
             for p, post in zip(problems, posts) if len(post)]
    return pairs, posts


# --- two agents: twenty questions -------------------------------------------------------------------
def number_keeper(n: int, noise: float = 0.0) -> dict[str, Callable[..., Cascade]]:
    """A keeper agent: its secret is uniform over 0..n−1; it answers "is it below k?" truthfully, or
    wrongly with probability ``noise``."""

    def choose() -> Cascade:
        return (yield sample(Categorical({i: 1.0 for i in range(n)}), "secret"))

    def reply(secret: int, question: str) -> Cascade:
        k = int(question.rsplit(" ", 1)[-1].rstrip("?"))
        truth = "yes" if secret < k else "no"
        lie = "no" if truth == "yes" else "yes"
        return (yield sample(Categorical({truth: 1 - noise, lie: noise}), "reply"))

    return {"choose": choose, "reply": reply}


def bisecting_asker(n: int) -> dict[str, Callable[..., Cascade]]:
    """An asker agent: asks "is it below k?" with k near the middle of what is still possible (a random
    choice among the two middle values), and guesses the smallest number still possible."""

    def ask(lo: int, hi: int) -> Cascade:
        mid = (lo + hi) // 2
        k = yield sample(Categorical({max(lo + 1, mid): 0.5, max(lo + 1, (lo + hi + 1) // 2): 0.5}), "threshold")
        return f"is it below {k}?"

    def guess(lo: int, hi: int) -> Cascade:
        return (yield sample(Constant(lo), "guess"))

    return {"ask": ask, "guess": guess}


def lm_asker(lm: Any, n: int) -> dict[str, Callable[..., Cascade]]:
    """An asker backed by a language model: it writes the threshold of its question (parsed; an
    unusable one is replaced by the middle) and its guess."""

    def ask(lo: int, hi: int) -> Cascade:
        text = yield sample(String(lm, f"between {lo} and {hi - 1}, ask: is it below", stop="?", max_tokens=4),
                            "question")
        digits = "".join(ch for ch in text if ch.isdigit())
        k = int(digits) if digits and lo < int(digits) < hi else (lo + hi + 1) // 2
        return f"is it below {k}?"

    def guess(lo: int, hi: int) -> Cascade:
        return (yield sample(Constant(lo), "guess"))

    return {"ask": ask, "guess": guess}


def twenty_questions(keeper: dict[str, Callable[..., Cascade]], asker: dict[str, Callable[..., Cascade]],
                     n: int, max_turns: int = 5) -> Cascade:
    """Two agents play: the keeper picks a secret, the asker asks yes/no questions, the keeper replies,
    the asker narrows down what is possible and guesses. Each agent's effects live in its own scope
    (``keeper/secret``, ``turn0/asker/threshold``, ``turn0/keeper/reply``, ``asker/guess``), so the
    game can be conditioned on the replies to infer the secret."""
    secret = yield from scope("keeper", keeper["choose"]())
    lo, hi = 0, n
    for t in range(max_turns):
        if hi - lo <= 1:
            break
        question = yield from scope(f"turn{t}", scope("asker", asker["ask"](lo, hi)))
        reply = yield from scope(f"turn{t}", scope("keeper", keeper["reply"](secret, question)))
        k = int(question.rsplit(" ", 1)[-1].rstrip("?"))
        lo, hi = (lo, min(hi, k)) if reply == "yes" else (max(lo, k), hi)
        if lo >= hi:  # contradictory replies
            lo, hi = min(lo, n - 1), min(lo, n - 1) + 1
    guess = yield from scope("asker", asker["guess"](lo, hi))
    yield log(guess == secret, "won")
    return guess

