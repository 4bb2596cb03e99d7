"""Feedback data: paired ↔ unpaired conversion, subsampling, loading local files; the toy world."""
import json

import pytest
import torch
from datasets import Dataset

from workbench.methods.kto import data as D
from workbench.methods.kto import toyworld as W

PAIRED = Dataset.from_dict({"prompt": ["a", "b"], "chosen": ["good1", "good2"], "rejected": ["bad1", "bad2"]})


def test_paired_to_unpaired():
    un = D.paired_to_unpaired(PAIRED)
    assert un["prompt"] == ["a", "a", "b", "b"]
    assert un["completion"] == ["good1", "bad1", "good2", "bad2"]
    assert un["label"] == [True, False, True, False]
    assert D.counts(un) == (2, 2)


def test_unpaired_to_paired_pairs_within_prompt():
    un = Dataset.from_dict({"prompt": ["a", "a", "a", "b", "b", "c"],
                            "completion": ["g", "b1", "b2", "g2", "b3", "g3"],
                            "label": [True, False, False, True, False, True]})
    pairs = D.unpaired_to_paired(un, generator=torch.Generator().manual_seed(0))
    assert len(pairs) == 2  # a: 1 good x 2 bad -> 1 pair; b: 1 pair; c: no bad
    for row in pairs:
        assert row["chosen"].startswith("g") and row["rejected"].startswith("b")
        assert (row["prompt"], row["chosen"]) in {("a", "g"), ("b", "g2")}


def test_subsample_shares():
    un = Dataset.from_dict({"prompt": ["p"] * 40, "completion": [str(i) for i in range(40)],
                            "label": [i < 20 for i in range(40)]})
    sub = D.subsample(un, desirable_share=0.1, generator=torch.Generator().manual_seed(1))
    assert D.counts(sub) == (2, 20)
    assert D.counts(D.subsample(un, desirable_share=0.01, generator=torch.Generator())) == (1, 20)
    with pytest.raises(ValueError, match="undesirable_share"):
        D.subsample(un, undesirable_share=0.0, generator=torch.Generator())


def test_load_local_jsonl_and_parquet(tmp_path):
    path = tmp_path / "fb.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": "x", "completion": c, "label": lab})
                              for c, lab in [("y", True), ("z", False)]))
    ds = D.load_feedback(str(path))
    assert D.feedback_kind(ds) == "unpaired" and len(ds) == 2
    pq = tmp_path / "pairs.parquet"
    PAIRED.to_parquet(str(pq))
    assert D.feedback_kind(D.load_feedback(str(pq))) == "paired"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x"}))
    with pytest.raises(ValueError, match="columns"):
        D.load_feedback(str(bad))
    with pytest.raises(ValueError, match="unsupported"):
        (tmp_path / "x.txt").write_text("")
        D.load_feedback(str(tmp_path / "x.txt"))


def test_toy_reward_rule():
    assert W.sentiment_score("great tasty bad the soup") == 1
    assert W.is_desirable("great tasty lovely bad", threshold=2)
    assert not W.is_desirable("great tasty bad", threshold=2)
    assert W.is_desirable("soup", threshold=0)


def test_toy_reviews_are_in_vocabulary_and_reproducible():
    tok = W.tokenizer()
    a = W.generate_reviews(50, torch.Generator().manual_seed(0))
    b = W.generate_reviews(50, torch.Generator().manual_seed(0))
    assert a == b
    for prompt, text in a:
        assert prompt in {W.topic_token(t) for t in W.TOPICS}
        assert W.MIN_WORDS <= len(text.split()) <= W.MAX_WORDS
        assert tok.unk_id not in tok.encode(prompt + " " + text)
    # topic words only appear with their topic
    for prompt, text in a:
        topic = prompt.strip("<>")
        others = {w for t in W.TOPICS if t != topic for w in W.NEUTRAL[t] + W.POSITIVE[t] + W.NEGATIVE[t]}
        assert not set(text.split()) & others
