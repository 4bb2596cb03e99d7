"""The demo world's formats: scratchpads add up, corrupted lines are caught by a local check, padded
questions keep every column in place, held-out problems are disjoint from training."""
import random

import pytest

from workbench.methods.cascades import arithmetic as A


def local_check(previous: str, line: str) -> bool:
    """What the verifier must learn: the sum is right and the carry in is the previous carry out."""
    da, db, c, s = int(line[0]), int(line[2]), int(line[4]), int(line[6:8])
    carry = int(previous[6]) if previous else 0
    return da + db + c == s and c == carry


@pytest.mark.parametrize("width", [0, 6])
def test_scratchpad_lines_add_up(width):
    rng = random.Random(0)
    for p in A.sample_problems(300, rng, [1, 1, 1, 2, 2], width=width):
        lines = A.scratchpad_lines(p)
        assert len(lines) == p.digits == max(len(str(p.a)), len(str(p.b)), width)
        assert A.read_answer(lines) == p.answer == A.read_answer(A.completion(p, "scratchpad").split("\n"))
        assert all(local_check(prev, line) for prev, line in zip([""] + lines, lines))
        assert A.parse_answer("A:" + p.answer_text) == p.answer
        assert int(A.calculator(p.question)) == p.answer


def test_verifier_examples_are_locally_decidable():
    rng = random.Random(1)
    labels = []
    for p in A.sample_problems(500, rng, [1, 1, 1, 2, 2]):
        prompt, label = A.verifier_example(p, rng)
        previous, candidate = prompt[2:-1].split("\n")
        assert local_check(previous, candidate) == (label == "y")
        labels.append(label)
    assert 0.4 < labels.count("y") / len(labels) < 0.6


def test_padded_questions_put_every_column_in_place():
    p = A.Problem(4821, 937, width=6)
    assert A.prompt(p, "scratchpad") == "Q:004821+000937\n"
    assert A.scratchpad_lines(p)[-2:] == ["0+0+0=00", "0+0+0=00"]
    assert A.completion(p, "tool").endswith("\n=0005758\nA:0005758") and A.calculator(p.question, 7) == "0005758"
    assert len(A.prompt(p, "scratchpad") + A.completion(p, "scratchpad")) + 2 <= A.context_needed(6)


def test_held_out_problems_are_disjoint_and_have_the_digits_asked():
    test = A.held_out(50, 5, seed=0)
    more = A.held_out(50, 5, seed=1, exclude=set(test))
    assert not set(test) & set(more) and len(set(test)) == 50
    assert all(len(str(p.a)) == len(str(p.b)) == 5 for p in test)
    corpus = A.training_corpus(2000, 0, [1, 1, 1, 2, 2], {"scratchpad": 1.0}, exclude=set(test))
    assert not {q for q, _ in corpus} & {A.prompt(p, "scratchpad") for p in test}


def test_reading_the_answer_off_a_scratchpad():
    assert A.read_answer(["1+7+0=08", "2+3+0=05", "8+9+0=17", "4+0+1=05"]) == 5758
    assert A.read_answer(["5+7+0=12", "9+0+1=10"]) == 102
    assert A.read_answer(["5+7+0=12", "9+0+1=1"]) is None and A.read_answer([]) is None


def test_parsing_and_the_calculator():
    assert A.parse_answer("A:5758") == 5758 and A.parse_answer("A:57x") is None and A.parse_answer("5+5") is None
    assert A.calculator("12+30") == "42" and A.calculator("12-3") == "?" and A.calculator("+") == "?"
    assert A.inference_example(A.Problem(48, 57), random.Random(0))[0].startswith("I:")


def test_lm_loss_per_token_and_per_example():
    import torch

    torch.manual_seed(0)
    lm = A.make_lm(16, 1, 2, context=A.context_needed(2))
    prompts = [lm.encode_prompt("Q:1+2\n"), lm.encode_prompt("V:\n1+2+0=03?")]
    comps = [lm.encode("1+2+0=03") + [lm.eos_id], lm.encode("y") + [lm.eos_id]]
    out = lm.batch_logps(lm.collate(prompts, comps))
    per_token = -out.logps.sum() / out.lengths.sum()
    per_example = -(out.logps / out.lengths).mean()
    assert torch.allclose(A.lm_loss(lm, prompts, comps), per_token)
    assert torch.allclose(A.lm_loss(lm, prompts, comps, per_example=True), per_example)
    assert not torch.allclose(per_token, per_example)
