"""The example cascades run (on a scripted model, so their text is nonsense but their structure is
exercised), and the twenty-questions game infers the keeper's secret from the replies."""
import math

import pytest

from workbench.methods.cascades import condition, infer, run
from workbench.methods.cascades import examples as X
from workbench.methods.cascades.arithmetic import Problem

from .scripted import ScriptedLM

LM = ScriptedLM()
P = Problem(47, 8)


@pytest.mark.parametrize("cascade", [X.scratchpad, X.verified_scratchpad, X.direct, X.selection_inference,
                                     X.tool_use, X.star_rationale])
def test_arithmetic_examples_run(cascade):
    post = infer(lambda: cascade(LM, P), "forward", 4, seed=0)
    assert len(post) == 4
    for t in post.traces:
        assert t.status in ("done", "rejected")
        assert all(math.isfinite(s.log_prob) or s.observed for s in t)


def test_self_consistency_cascade_votes_over_scoped_thoughts():
    t = run(lambda: X.self_consistency(LM, P, k=3), seed=0)
    assert {n.split("/")[0] for n in t.sites if "/" in n} <= {"thought0", "thought1", "thought2"}
    assert "answer" in t.sites


def test_star_round_returns_only_rationales_with_the_right_answer():
    from workbench.methods.cascades import arithmetic as A

    pairs, posts = X.star_round(LM, [P, Problem(3, 4)], tries=3, seed=0)
    for (prompt, rationale), post in zip(pairs, [p for p in posts if len(p)]):
        assert prompt.startswith("Q:")
        assert post.traces[0]["known_answer"] == post.traces[0]["answer"]
    assert all(p.info["tries"] <= 3 for p in posts)
    assert A.parse_answer("A:55") == 55


def test_twenty_questions_agents_and_inference_of_the_secret():
    n = 8
    keeper, asker = X.number_keeper(n, noise=0.1), X.bisecting_asker(n)
    game = lambda: X.twenty_questions(keeper, asker, n, max_turns=3)  # noqa: E731
    t = run(game, seed=0)
    assert "keeper/secret" in t and "turn0/asker/threshold" in t and "turn0/keeper/reply" in t
    assert "asker/guess" in t and "won" in t
    wins = infer(game, "forward", 400, seed=1).marginal("won")
    assert wins[True] > 0.6  # with 10% lies, three bisections find the secret most of the time
    # infer the secret from the conversation: condition on the asker's thresholds and the replies
    observed = {"turn0/asker/threshold": 4, "turn0/keeper/reply": "no", "turn1/asker/threshold": 6,
                "turn1/keeper/reply": "yes", "turn2/asker/threshold": 5, "turn2/keeper/reply": "no"}
    post = infer(condition(game, observed), "importance", 2000, seed=2)
    secret = post.marginal("keeper/secret")
    assert max(secret, key=secret.get) == 5
    # exact: uniform prior, each reply true w.p. 0.9: p(5) ∝ .9³, p(4) ∝ p(6) ∝ .9²·.1, others smaller
    lik = {s: math.prod(0.9 if ((s < k) == (r == "yes")) else 0.1 for k, r in ((4, "no"), (6, "yes"), (5, "no")))
           for s in range(n)}
    z = sum(lik.values())
    assert secret[5] == pytest.approx(lik[5] / z, abs=0.04)


def test_lm_asker_plays_with_a_language_model():
    keeper, asker = X.number_keeper(6), X.lm_asker(LM, 6)
    t = run(lambda: X.twenty_questions(keeper, asker, 6, max_turns=2), seed=0)
    assert "turn0/asker/question" in t and t.status == "done"
