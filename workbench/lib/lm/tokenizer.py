"""Word- and character-level tokenizers for the tiny language model.

Both recognise special tokens written inline (``"<|good|> <food> great"``) before splitting the rest
of the text on whitespace (words) or into characters. Ids 0..3 are always ``<pad> <bos> <eos> <unk>``.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
BASE_SPECIALS = (PAD, BOS, EOS, UNK)


class Tokenizer:
    """Shared logic: a fixed vocabulary, inline special tokens, encode/decode, JSON round trip."""

    level = "word"
    joiner = " "

    def __init__(self, vocab: Sequence[str], specials: Sequence[str] = ()):
        extra = [s for s in specials if s not in BASE_SPECIALS]
        tokens = list(BASE_SPECIALS) + extra + [t for t in vocab if t not in BASE_SPECIALS and t not in extra]
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocab has duplicate tokens")
        self.tokens: list[str] = tokens
        self.specials: tuple[str, ...] = tuple(BASE_SPECIALS) + tuple(extra)
        self.index = {t: i for i, t in enumerate(tokens)}
        pattern = "|".join(re.escape(s) for s in sorted(self.specials, key=len, reverse=True))
        self._special_re = re.compile(f"({pattern})")

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def _pieces(self, text: str) -> list[str]:
        raise NotImplementedError

    def split(self, text: str) -> list[str]:
        """Text → token strings (specials kept whole)."""
        out: list[str] = []
        for part in self._special_re.split(text):
            if not part:
                continue
            if part in self.specials:
                out.append(part)
            else:
                out.extend(self._pieces(part))
        return out

    def encode(self, text: str) -> list[int]:
        return [self.index.get(t, self.unk_id) for t in self.split(text)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        hidden = {self.pad_id, self.bos_id, self.eos_id} if skip_special else set()
        return self.joiner.join(self.tokens[int(i)] for i in ids if int(i) not in hidden)

    @classmethod
    def from_corpus(cls, texts: Iterable[str], specials: Sequence[str] = ()) -> "Tokenizer":
        """Vocabulary = every piece seen in ``texts`` (sorted, so the ids are reproducible)."""
        probe = cls([], specials)
        seen = sorted({p for text in texts for p in probe.split(text) if p not in probe.specials})
        return cls(seen, specials)

    def to_dict(self) -> dict:
        return {"level": self.level, "tokens": self.tokens, "specials": list(self.specials)}

    @staticmethod
    def from_dict(d: dict) -> "Tokenizer":
        kind = {"word": WordTokenizer, "char": CharTokenizer}[d["level"]]
        return kind(d["tokens"], d["specials"])


class WordTokenizer(Tokenizer):
    """Whitespace-separated words; decode joins with single spaces."""

    level = "word"
    joiner = " "

    def _pieces(self, text: str) -> list[str]:
        return text.split()


class CharTokenizer(Tokenizer):
    """One token per character (specials excepted); decode joins with nothing."""

    level = "char"
    joiner = ""

    def _pieces(self, text: str) -> list[str]:
        return list(text)
