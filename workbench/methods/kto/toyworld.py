"""A synthetic "reviews" language small enough to pretrain and align a tiny transformer on a laptop.

A review is a topic token (the prompt, e.g. ``<food>``) followed by 5-9 words. Each review has a
latent mood (positive, negative or mixed) drawn with topic-dependent probabilities; each word is
positive, negative or neutral with mood-dependent probabilities, then drawn uniformly from the shared
words of that class and the topic's own. The rule-based reward counts #positive − #negative words;
a completion is *desirable* when that score is at least a threshold (2 by default).
"""
from __future__ import annotations

import torch

from workbench.methods.kto.losses import BAD_TOKEN, GOOD_TOKEN
from workbench.lib.lm.tokenizer import WordTokenizer

TOPICS = ("food", "movie", "hotel", "phone")
POSITIVE = {
    "*": ("great", "lovely", "excellent", "amazing", "good", "perfect", "wonderful", "superb"),
    "food": ("tasty", "delicious"), "movie": ("gripping", "funny"),
    "hotel": ("clean", "cozy"), "phone": ("fast", "sleek"),
}
NEGATIVE = {
    "*": ("bad", "awful", "terrible", "poor", "horrible", "mediocre", "disappointing", "annoying"),
    "food": ("bland", "stale"), "movie": ("dull", "predictable"),
    "hotel": ("dirty", "noisy"), "phone": ("slow", "buggy"),
}
NEUTRAL = {
    "*": ("the", "it", "was", "and", "very", "quite", "really", "a", "is", "this"),
    "food": ("dinner", "soup", "pasta", "waiter"), "movie": ("plot", "actor", "scene", "ending"),
    "hotel": ("room", "bed", "staff", "lobby"), "phone": ("battery", "screen", "camera", "app"),
}
#: P(mood = positive, negative, mixed | topic)
MOODS = {"food": (0.35, 0.35, 0.30), "movie": (0.30, 0.40, 0.30), "hotel": (0.40, 0.30, 0.30),
         "phone": (0.30, 0.30, 0.40)}
#: P(word class = positive, negative, neutral | mood)
CLASSES = ((0.35, 0.05, 0.60), (0.05, 0.35, 0.60), (0.17, 0.17, 0.66))
MIN_WORDS, MAX_WORDS = 5, 9

_POS_WORDS = frozenset(w for ws in POSITIVE.values() for w in ws)
_NEG_WORDS = frozenset(w for ws in NEGATIVE.values() for w in ws)


def topic_token(topic: str) -> str:
    return f"<{topic}>"


def prompts(n: int) -> list[str]:
    """``n`` prompts cycling through the topics (balanced)."""
    return [topic_token(TOPICS[i % len(TOPICS)]) for i in range(n)]


def _words(table: dict[str, tuple[str, ...]], topic: str) -> tuple[str, ...]:
    return table["*"] + table[topic]


def generate_reviews(n: int, generator: torch.Generator) -> list[tuple[str, str]]:
    """``n`` (prompt, completion) reviews drawn from the generative process above."""
    out = []
    for i in range(n):
        topic = TOPICS[int(torch.randint(len(TOPICS), (1,), generator=generator))]
        mood = int(torch.multinomial(torch.tensor(MOODS[topic]), 1, generator=generator))
        length = int(torch.randint(MIN_WORDS, MAX_WORDS + 1, (1,), generator=generator))
        classes = torch.multinomial(torch.tensor(CLASSES[mood]), length, replacement=True, generator=generator)
        words = []
        for c in classes.tolist():
            pool = _words((POSITIVE, NEGATIVE, NEUTRAL)[c], topic)
            words.append(pool[int(torch.randint(len(pool), (1,), generator=generator))])
        out.append((topic_token(topic), " ".join(words)))
    return out


def sentiment_score(text: str) -> int:
    """#positive − #negative words (the rule-based reward)."""
    words = text.split()
    return sum(w in _POS_WORDS for w in words) - sum(w in _NEG_WORDS for w in words)


def reward(prompt: str, completion: str) -> int:
    """The toy rule as a reward over (prompt, completion), for ``--reward workbench.methods.kto.toyworld:reward``."""
    return sentiment_score(completion)


def is_desirable(text: str, threshold: int = 2) -> bool:
    """Desirable when #positive − #negative ≥ ``threshold``."""
    return sentiment_score(text) >= threshold


def tokenizer() -> WordTokenizer:
    """Word tokenizer over the whole toy vocabulary, with the CSFT control tokens as specials."""
    words = [topic_token(t) for t in TOPICS]
    for table in (POSITIVE, NEGATIVE, NEUTRAL):
        for ws in table.values():
            words.extend(ws)
    return WordTokenizer(sorted(set(words)), specials=(GOOD_TOKEN, BAD_TOKEN))


#: context of the tiny model: <bos> [control] topic + up to 12 sampled tokens + <eos>
CONTEXT = 16
MAX_SAMPLED = CONTEXT - 4
