"""Backends: an OpenAI-compatible HTTP endpoint (a stub server on 127.0.0.1 inside the test, standard
library only), a Hugging Face model from a local directory, and the local tiny transformer."""
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from workbench.methods.cascades import (BackendError, BackendUnavailable, Categorical, OpenAIBackend, ScoringUnavailable,
                                String, infer, observe, sample)

TOKEN_LP = -0.5  # the stub's log-prob of every character


class Stub:
    """A completions server: each character is a token with log-prob −0.5; a sample is "yes" or "no"
    (from the request's seed); ``fail_first`` answers 503 first; ``delay`` sleeps before answering;
    ``logprobs=False`` never returns log-probs."""

    def __init__(self, logprobs: bool = True, fail_first: int = 0, delay: float = 0.0):
        self.logprobs, self.fail_first, self.delay = logprobs, fail_first, delay
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                if stub.delay:
                    time.sleep(stub.delay)
                if len(stub.requests) <= stub.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                if self.path != "/v1/completions":
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b"no such route")
                    return
                reply = json.dumps({"choices": stub.choices(body)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def choices(self, body: dict) -> list[dict]:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        out = []
        for i, p in enumerate(prompts):
            if body.get("echo"):
                text = p
                lps = [None] + [TOKEN_LP] * (len(p) - 1)
            else:
                text = ("yes", "no")[(body.get("seed", 0) + i) % 2]
                lps = [TOKEN_LP] * len(text)
            choice = {"index": i, "text": text, "finish_reason": "stop"}
            if self.logprobs and body.get("logprobs") is not None:
                choice["logprobs"] = {"tokens": list(text), "token_logprobs": lps,
                                      "text_offset": list(range(len(text)))}
            else:
                choice["logprobs"] = None
            out.append(choice)
        return out

    def __enter__(self) -> "Stub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_http_sample_and_score():
    with Stub() as stub:
        lm = OpenAIBackend(stub.url, "stub-model", timeout=5, retries=0)
        done = lm.sample(["Q: is it red?\nA:", "Q: big?\nA:"], max_tokens=4, stop=["\n"],
                         generator=torch.Generator().manual_seed(0))
        assert {c.text for c in done} <= {"yes", "no"}
        assert all(c.log_prob == pytest.approx(TOKEN_LP * len(c.text)) for c in done)
        assert stub.requests[0]["model"] == "stub-model" and stub.requests[0]["stop"] == ["\n"]
        assert len(stub.requests) == 1  # both prompts in one request
        # scoring: echo the prompt + text and sum the text's token log-probs
        assert lm.log_prob(["Q: x?\nA:"], [" yes"]) == [pytest.approx(4 * TOKEN_LP)]
        assert stub.requests[-1]["echo"] is True


def test_http_backend_inside_inference():
    with Stub() as stub:
        lm = OpenAIBackend(stub.url, "stub", timeout=5, retries=0)

        def ask():
            a = yield sample(String(lm, "Q: red?\nA:", stop="\n", max_tokens=4), "answer")
            yield observe(Categorical({True: 0.9, False: 0.1}), a == "yes", "prefers_yes")
            return a

        post = infer(ask, "importance", 8, seed=0)
        assert set(post.values("answer")) == {"yes", "no"}
        assert post.marginal()["yes"] == pytest.approx(0.9, abs=1e-9)  # 4 yes, 4 no, weights 0.9 vs 0.1
        for t in post.traces:
            assert t.sites["answer"].log_prob == pytest.approx(TOKEN_LP * len(t["answer"]))


def test_http_without_logprobs_says_scoring_needs_them():
    with Stub(logprobs=False) as stub:
        lm = OpenAIBackend(stub.url, "stub", timeout=5, retries=0)
        done = lm.sample(["p"], max_tokens=3)
        assert done[0].log_prob is None and done[0].text in ("yes", "no")

        def check():
            yield observe(String(lm, "Q: red?\nA:", max_tokens=4), "yes", "answer")

        with pytest.raises(ScoringUnavailable, match="log-probabilities"):
            infer(check, "importance", 2)

        def forward_only():
            a = yield sample(String(lm, "Q: red?\nA:", max_tokens=4), "answer")
            return a

        post = infer(forward_only, "forward", 3)  # forward sampling needs no scores
        assert len(post) == 3 and math.isnan(post.traces[0].sites["answer"].log_prob)
        with pytest.raises(ValueError, match="log-prob"):
            infer(forward_only, "beam", 2)


def test_http_retries_with_backoff():
    with Stub(fail_first=2) as stub:
        lm = OpenAIBackend(stub.url, "stub", timeout=5, retries=3, backoff=0.01)
        t0 = time.perf_counter()
        assert lm.sample(["p"], max_tokens=2)[0].text in ("yes", "no")
        assert len(stub.requests) == 3  # two 503s, then success
        assert time.perf_counter() - t0 >= 0.01 + 0.02  # waited backoff·2^0 + backoff·2^1
    with Stub(fail_first=10) as stub:
        lm = OpenAIBackend(stub.url, "stub", timeout=5, retries=1, backoff=0.0)
        with pytest.raises(BackendUnavailable, match="after 2 attempt.*HTTP 503"):
            lm.sample(["p"])
        assert len(stub.requests) == 2


def test_http_timeout_and_unreachable_endpoint():
    with Stub(delay=1.0) as stub:
        lm = OpenAIBackend(stub.url, "stub", timeout=0.2, retries=1, backoff=0.0)
        t0 = time.perf_counter()
        with pytest.raises(BackendUnavailable, match="timeout 0.2 s"):
            lm.sample(["p"])
        assert time.perf_counter() - t0 < 1.5
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lm = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "stub", timeout=1, retries=2, backoff=0.0)
    with pytest.raises(BackendUnavailable, match=r"cannot reach http://127\.0\.0\.1:\d+/v1/completions after 3"):
        lm.sample(["p"])


def test_http_client_errors_are_not_retried():
    with Stub() as stub:
        lm = OpenAIBackend(stub.url.replace("/v1", "/v2"), "stub", timeout=5, retries=3, backoff=0.0)
        with pytest.raises(BackendError, match="HTTP 404"):
            lm.sample(["p"])
        assert len(stub.requests) == 1
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend("127.0.0.1:8000", "m")


def test_hf_backend_from_a_local_directory(tmp_path):
    pytest.importorskip("transformers")
    from workbench.methods.cascades import HFBackend
    from workbench.lib.lm import tiny_gpt2

    words = ["yes", "no", "red", "blue", "is", "it", "?"]
    path = tiny_gpt2(str(tmp_path / "m"), words, n_layer=1, n_embd=16, n_head=2, n_positions=32)
    lm = HFBackend.from_directory(path)
    assert lm.name == "hf:m"

    def ask():
        a = yield sample(String(lm, "is it red ?", max_tokens=3), "answer")
        return a

    post = infer(ask, "forward", 6, seed=0)
    for t in post.traces:
        site = t.sites["answer"]
        assert site.log_prob == pytest.approx(site.dist.log_prob(site.value), abs=1e-4)
    with pytest.raises(FileNotFoundError, match="local directory"):
        HFBackend.from_directory(str(tmp_path / "missing"))
