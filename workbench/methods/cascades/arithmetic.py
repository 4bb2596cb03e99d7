"""The demo world: multi-digit addition written with a carry scratchpad (and without), for a tiny
character transformer.

One character-level model learns several formats (a multitask corpus, each format marked by its first
letter):

- scratchpad (``Q``): the question, then one line per column from the right, ``a+b+c=ds`` (the
  digits, the carry in, their two-digit sum whose tens digit is the next carry)::

      Q:4821+937
      1+7+0=08
      2+3+0=05
      8+9+0=17
      4+0+1=05

  The cascade reads the answer off the scratchpad (:func:`read_answer`: the units digits from the
  last line up, behind the last carry): 5758. Writing the answer out again would ask a two-layer
  model to gather digits from every line in reverse, which it learns unreliably in a few minutes;

- direct (``D``): the question and the answer, no scratchpad (``D:4821+937`` / ``A:5758``);
- tool use (``T``): the model writes the calculator call ``>4821+937``, the calculator answers
  ``=5758``, the model copies the answer (``A:5758``);
- verifier (``V``): the previous scratchpad line and a candidate next line, then ``?``; the completion
  is ``y`` when the candidate is right and ``n`` otherwise (corrupted lines: a wrong sum, or a carry in
  that is not the previous carry out). Its checks are local, so they do not get harder with more digits;
- inference (``I``): the sum of a selection alone, ``I:8+9+0=`` → ``17`` (selection-inference's
  inference step, which never sees the question).

Training problems mostly have few digits (``digit_weights``); held-out problems have more digits than
most training problems.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Sequence

import torch

from workbench.lib.lm import CharTokenizer, TinyLM

ALPHABET = "0123456789+=\n:>?ADIQTVny"
FORMATS = ("scratchpad", "direct", "tool", "verifier")
PREFIX = {"scratchpad": "Q", "direct": "D", "tool": "T", "verifier": "V"}


@dataclass(frozen=True)
class Problem:
    """``a + b``; with ``width`` > 0 both operands are written with ``width`` digits (leading zeros), so
    every question, scratchpad line and column sits at the same place whatever the numbers."""

    a: int
    b: int
    width: int = 0

    @property
    def answer(self) -> int:
        return self.a + self.b

    @property
    def digits(self) -> int:
        """The number of columns (scratchpad lines): the longer operand, or ``width``."""
        return max(len(str(self.a)), len(str(self.b)), self.width)

    @property
    def answer_text(self) -> str:
        """The answer as written: with ``width`` > 0, ``width + 1`` digits (leading zeros)."""
        return f"{self.answer:0{self.width + 1}d}" if self.width else str(self.answer)

    @property
    def question(self) -> str:
        if self.width:
            return f"{self.a:0{self.width}d}+{self.b:0{self.width}d}"
        return f"{self.a}+{self.b}"


def tokenizer() -> CharTokenizer:
    """The character tokenizer of the world (ids are fixed by ``ALPHABET``)."""
    return CharTokenizer(list(ALPHABET))


def make_lm(d_model: int = 64, n_layer: int = 2, n_head: int = 4, context: int = 96) -> TinyLM:
    """A fresh tiny character transformer for the world (decoding with a key/value cache), initialised from
    torch's global generator: inside a run, build it under ``ctx.seeded("init")``."""
    from .kvcache import CachedTinyLM

    return CachedTinyLM(tokenizer(), n_layer=n_layer, d_model=d_model, n_head=n_head, context=context)


def context_needed(max_digits: int) -> int:
    """Tokens of the longest scratchpad example with ``max_digits``-digit operands (bos and eos included)."""
    n = max_digits
    return 1 + (2 + 2 * n + 2) + 9 * n + (2 + n + 1) + 1


# --- problems --------------------------------------------------------------------------------------
def random_number(digits: int, rng: random.Random) -> int:
    """A number with exactly ``digits`` digits (1 digit: 0-9)."""
    if digits == 1:
        return rng.randrange(10)
    return rng.randrange(10 ** (digits - 1), 10**digits)


def sample_problems(n: int, rng: random.Random, digit_weights: Sequence[float] | None = None,
                    digits: int | None = None, width: int = 0) -> list[Problem]:
    """``n`` problems: each operand's digit count drawn from ``digit_weights`` (index 0 = 1 digit), or both
    operands with exactly ``digits`` digits; written ``width`` digits wide (0: as they are)."""
    out = []
    for _ in range(n):
        if digits is not None:
            da = db = digits
        else:
            ks = list(range(1, len(digit_weights) + 1))
            da, db = rng.choices(ks, digit_weights, k=2)
        out.append(Problem(random_number(da, rng), random_number(db, rng), width))
    return out


def held_out(n: int, digits: int, seed: int, exclude: set[Problem] | None = None, width: int = 0) -> list[Problem]:
    """``n`` distinct problems with two ``digits``-digit operands (a stream of its own for each ``seed`` and digit
    count, disjoint from ``exclude``)."""
    rng = random.Random(f"held-out/{digits}/{seed}")
    seen = set(exclude or ())
    out: list[Problem] = []
    while len(out) < n:
        p = sample_problems(1, rng, digits=digits, width=width)[0]
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


# --- formats -------------------------------------------------------------------------------------
def scratchpad_lines(p: Problem) -> list[str]:
    """The carry scratchpad: ``a+b+c=ds`` per digit (the digits, the carry in, their two-digit sum whose
    tens digit is the next carry), least significant digit first."""
    xa, xb = str(p.a)[::-1], str(p.b)[::-1]
    carry, lines = 0, []
    for i in range(p.digits):
        da = int(xa[i]) if i < len(xa) else 0
        db = int(xb[i]) if i < len(xb) else 0
        s = da + db + carry
        lines.append(f"{da}+{db}+{carry}={s:02d}")
        carry = s // 10
    return lines


def prompt(p: Problem, fmt: str) -> str:
    """The question of a format (what the cascade starts from)."""
    return f"{PREFIX[fmt]}:{p.question}\n"


def completion(p: Problem, fmt: str) -> str:
    """The target completion of a format (scratchpad, direct, tool)."""
    if fmt == "scratchpad":
        return "\n".join(scratchpad_lines(p))
    if fmt == "direct":
        return f"A:{p.answer_text}"
    if fmt == "tool":
        return f">{p.question}\n={calculator(p.question, p.width + 1 if p.width else 0)}\nA:{p.answer_text}"
    raise ValueError(f"format {fmt!r} has no single completion (verifier examples come from verifier_example)")


def verifier_prompt(previous: str, candidate: str) -> str:
    """What the verifier reads: the previous scratchpad line ("" before the first) and a candidate next
    line, then ``?``. Its checks are local: the sum, and the carry in (the tens digit of the previous
    sum; 0 on the first line)."""
    return f"V:{previous}\n{candidate}?"


def corrupt_line(line: str, rng: random.Random) -> str:
    """A wrong line that a local check catches: a wrong sum, or a carry in that is not the previous
    line's carry out (the sum following it)."""
    da, db, c, s = int(line[0]), int(line[2]), int(line[4]), int(line[6:8])
    if rng.random() < 0.6:
        ns = (s + rng.choice((-11, -10, -2, -1, 1, 2, 10, 11))) % 20
        return f"{da}+{db}+{c}={ns:02d}"
    nc = 1 - c
    return f"{da}+{db}+{nc}={da + db + nc:02d}"


def verifier_example(p: Problem, rng: random.Random) -> tuple[str, str]:
    """One (prompt, "y"/"n") verifier example: a correct or corrupted line after its predecessor."""
    lines = scratchpad_lines(p)
    i = rng.randrange(len(lines))
    previous = lines[i - 1] if i > 0 else ""
    good = rng.random() < 0.5
    cand = lines[i] if good else corrupt_line(lines[i], rng)
    return verifier_prompt(previous, cand), "y" if good else "n"


def inference_example(p: Problem, rng: random.Random) -> tuple[str, str]:
    """One (prompt, completion) pair of the ``I`` format: the sum of a selection alone, ``I:a+b+c=`` → ``ds``."""
    lines = scratchpad_lines(p)
    line = lines[rng.randrange(len(lines))]
    return f"I:{line[:5]}=", line[6:]


def examples(problems: Sequence[Problem], formats: Sequence[str], rng: random.Random) -> list[tuple[str, str]]:
    """(prompt, completion) training pairs: problem i in format ``formats[i]``."""
    out = []
    for p, fmt in zip(problems, formats, strict=True):
        out.append(verifier_example(p, rng) if fmt == "verifier" else (prompt(p, fmt), completion(p, fmt)))
    return out


def training_corpus(n: int, seed: int, digit_weights: Sequence[float], mix: dict[str, float],
                    exclude: set[Problem] = frozenset(), width: int = 0) -> list[tuple[str, str]]:
    """``n`` training pairs: formats drawn by ``mix``, problems by ``digit_weights``, none in ``exclude``."""
    rng = random.Random(seed)
    names = [f for f in FORMATS if mix.get(f, 0) > 0]
    probs = []
    while len(probs) < n:
        p = sample_problems(1, rng, digit_weights, width=width)[0]
        if p not in exclude:
            probs.append(p)
    fmts = rng.choices(names, [mix[f] for f in names], k=n)
    return examples(probs, fmts, rng)


# --- reading model output --------------------------------------------------------------------------
LINE = re.compile(r"^(\d)\+(\d)\+([01])=(\d\d)$")


def read_answer(lines: Sequence[str]) -> int | None:
    """The number a scratchpad computes: the units digits of its sums from the last line up, behind
    the last line's carry out; None when a line is not of the form ``a+b+c=ds``."""
    if not lines or not all(LINE.match(line) for line in lines):
        return None
    digits = "".join(line[7] for line in reversed(lines))
    return int(lines[-1][6] + digits)


def parse_answer(line: str) -> int | None:
    """The integer after ``A:`` in an answer line, or None when the line is not one."""
    if not line.startswith("A:") or not line[2:].isdigit():
        return None
    return int(line[2:])


def calculator(expression: str, width: int = 0) -> str:
    """The tool: evaluates ``a+b`` (digits and ``+`` only; anything else gives ``?``), written with at
    least ``width`` digits."""
    parts = expression.split("+")
    if len(parts) < 2 or not all(x.isdigit() for x in parts):
        return "?"
    return f"{sum(int(x) for x in parts):0{width}d}"


# --- training --------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Tokenised training pairs in two groups of similar length: the scratchpads (long), and the short
    formats (tool calls, direct answers, verifier and inference steps)."""

    prompts: list[list[int]]
    completions: list[list[int]]
    short_prompts: list[list[int]]
    short_completions: list[list[int]]


SHORT_MIX = {"tool": 0.35, "direct": 0.15, "verifier": 0.35, "inference": 0.15}


def build_corpus(lm: TinyLM, n: int, n_short: int, seed: int, digit_weights: Sequence[float],
                 short_mix: dict[str, float] = SHORT_MIX, exclude: set[Problem] = frozenset(),
                 width: int = 0) -> Corpus:
    """``n`` scratchpad pairs and ``n_short`` pairs of the short formats (drawn by ``short_mix``),
    tokenised; problems in ``exclude`` (the held-out ones) are never used."""
    long = training_corpus(n, seed, digit_weights, {"scratchpad": 1.0}, exclude, width)
    rng = random.Random(f"short/{seed}")
    names = [k for k, v in short_mix.items() if v > 0]
    kinds = rng.choices(names, [short_mix[k] for k in names], k=n_short)
    short = []
    for kind in kinds:
        p = sample_problems(1, rng, digit_weights, width=width)[0]
        while p in exclude:
            p = sample_problems(1, rng, digit_weights, width=width)[0]
        if kind == "verifier":
            short.append(verifier_example(p, rng))
        elif kind == "inference":
            short.append(inference_example(p, rng))
        else:
            short.append((prompt(p, kind), completion(p, kind)))

    def tok(pairs: list[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
        return ([lm.encode_prompt(p) for p, _ in pairs], [lm.encode(c) + [lm.eos_id] for _, c in pairs])

    return Corpus(*tok(long), *tok(short))


def lm_loss(lm: TinyLM, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
            per_example: bool = False) -> torch.Tensor:
    """Negative log-likelihood of the completions (teacher forcing): per completion token,
    −Σ_i Σ_t log p(y_it | x_i, y_i<t) / Σ_i |y_i|; or ``per_example``, the mean over examples of each
    one's mean per token (so a one-token verdict weighs as much as a long completion)."""
    out = lm.batch_logps(lm.collate(prompts, completions))
    if per_example:
        return -(out.logps / out.lengths.clamp(min=1)).mean()
    return -out.logps.sum() / out.lengths.sum()
