"""``kto``: align a language model from binary feedback with KTO and the losses it is compared with.

The toy world (default): pretrain a tiny transformer on synthetic reviews (the reference πref),
sample completions from it, label them with the rule "#positive − #negative ≥ threshold", pair a
desirable with an undesirable completion of the same topic (the paired data for the DPO family) and
split the pairs back into unpaired rows (the data for KTO, SFT, CSFT and offline PPO). Then, from
πref, train one policy per method and measure the desirable rate of its samples and the sampled
KL(πθ‖πref). ``method = "all"`` runs every loss plus KTO with most desirable rows dropped
(``drop_share``, λ_D by the ratio rule) and records the paper's claims.

Any feedback dataset (``data`` = a local JSONL/JSON/Parquet/CSV file or a hub id with (prompt, chosen,
rejected) or (prompt, completion, label) columns) runs the same loop, with a Hugging Face causal LM (``model`` =
a local directory or hub id) or the tiny transformer (a word tokenizer and a reference pretrained on the data's
own completions, offline). A share of the rows (``heldout``) is kept aside: at every evaluation each policy's
implied rewards β·log πθ/πref of the held-out desirable and undesirable completions, their margin and ranking
accuracy, and its log-probs of both are measured, which needs no reward function. With ``reward`` (a Python
callable ``module:function`` over prompt and completion, or a reward model directory) the samples get a
desirable rate too, for user data or the toy world.
"""
from __future__ import annotations

import copy
import math
import warnings
import zlib
from typing import Any, Callable

import torch
import torch.nn as nn

from workbench.core.batches import IndexBatches
from workbench.core.claims import Claim
from workbench.core.context import RunContext, RunState
from workbench.core.params import Config, ConfigError, LoopParams, OptimParams, Param
from workbench.core.registry import Experiment, register
from workbench.lib.lm.core import CausalLM, TinyLM
from workbench.lib.lm.tokenizer import WordTokenizer
from workbench.methods.kto import claims as K
from workbench.methods.kto import data as D
from workbench.methods.kto import toyworld as W
from workbench.methods.kto.losses import BAD_TOKEN, GOOD_TOKEN, check_kto_weights, csft_prompt
from workbench.methods.kto.losses import ratio_rule_desirable_weight
from workbench.methods.kto.model import spec_of
from workbench.methods.kto.train import (EVAL_BLOCK, KTO_METHODS, METHODS, PAIRED_METHODS, LossParams, Paired,
                                         Ranks, Unpaired, adam, evaluate, fix_kl_pairs, heldout_metrics,
                                         heldout_rewards, kl_chunks, method_step, precompute_reference,
                                         prompt_groups, tokenise_paired, tokenise_unpaired)

DROP = "kto_drop"  # the comparison's extra run: KTO with drop_share of the desirable rows removed
Reward = Callable[[str, str], "float | bool"]


class KTOConfig(LossParams,
                OptimParams.with_defaults(lr=1e-3, docs={"lr": "alignment learning rate (Adam)"}),
                LoopParams.with_defaults(steps=150, batch_size=32, eval_every=25, docs={
                    "steps": "alignment optimizer steps per method",
                    "batch_size": "examples (or pairs) per step; KTO needs ≥ 2",
                    "eval_every": "evaluate every N alignment steps (each evaluation is a point of the KL frontier)"}),
                Config):
    method: str = Param("all", choices=("all",) + METHODS,
                        doc="alignment loss, or 'all' to compare every loss and check the paper's claims")
    ratio_rule: bool = Param(True, doc="when λ_D·n_D/(λ_U·n_U) falls outside [1, 4/3], set λ_D so that it equals 1")
    reference_cache: bool = Param(True, doc="compute the reference's log-probs once (KTO's mismatched pairs fixed "
                                            "per batch, as TRL does); off: a reference forward every step")
    desirable_share: float = Param(1.0, bounds=(0.01, 1.0), step=0.01, doc="share of desirable unpaired rows kept")
    undesirable_share: float = Param(1.0, bounds=(0.01, 1.0), step=0.01, doc="share of undesirable unpaired rows kept")
    drop_share: float = Param(0.9, bounds=(0.0, 0.99), step=0.01,
                              doc="comparison only: share of desirable rows dropped in the extra KTO run")
    data: str = Param("toy", doc="'toy' (synthetic reviews) or a local JSONL/JSON/Parquet/CSV file or hub dataset id")
    data_split: str = Param("train", doc="split of a hub dataset")
    model: str = Param("tiny", doc="'tiny' (pretrained here, on the data's completions for user data) or a Hugging "
                                   "Face causal LM: local directory or hub id")
    heldout: float = Param(0.1, bounds=(0.0, 0.5), step=0.05,
                           doc="share of the feedback rows kept aside to measure implied rewards (0: none)")
    reward: str = Param("", doc="desirable rate of samples: '' (the toy rule; none for user data), 'module:function' "
                                "(a callable over prompt and completion) or a reward model directory")
    reward_threshold: float = Param(0.0, bounds=(-1e6, 1e6), soft=(-5.0, 5.0),
                                    doc="a numeric reward ≥ this counts as desirable (bool rewards are the verdict)")
    threshold: int = Param(2, bounds=(-9, 9), doc="toy reward rule: desirable when #positive − #negative ≥ threshold")
    align_samples: int = Param(2048, bounds=(8, 1_000_000), unit="samples",
                              doc="completions sampled from πref and labelled")
    eval_samples: int = Param(256, bounds=(4, 100_000), unit="samples", doc="samples per evaluation")
    max_new_tokens: int = Param(12, bounds=(1, 4096), unit="tokens", doc="longest sampled completion")
    max_context: int = Param(128, bounds=(16, 4096), unit="tokens",
                             doc="tiny model on user data: longest prompt + completion kept (longer rows are cut)")
    pretrain_steps: int = Param(800, bounds=(0, 1_000_000), unit="steps", doc="pretraining steps of the tiny reference")
    pretrain_reviews: int = Param(8000, bounds=(16, 10_000_000), unit="reviews", doc="synthetic reviews to pretrain on")
    pretrain_lr: float = Param(3e-3, bounds=(1e-6, 1.0), log=True, unit="lr", doc="pretraining learning rate (AdamW)")
    pretrain_batch: int = Param(64, bounds=(1, 8192), unit="reviews", doc="pretraining batch size")
    n_layer: int = Param(2, bounds=(1, 24), unit="layers", doc="tiny transformer depth")
    d_model: int = Param(64, bounds=(8, 1024), unit="dims", doc="tiny transformer width")
    n_head: int = Param(4, bounds=(1, 32), unit="heads", doc="attention heads (divides d_model)")

    def check(self) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(f"parameter 'n_head' = {self.n_head} must divide d_model = {self.d_model}", "n_head")
        if self.model == "tiny" and self.data == "toy" and self.max_new_tokens > W.MAX_SAMPLED:
            raise ConfigError(f"parameter 'max_new_tokens' = {self.max_new_tokens} must be ≤ {W.MAX_SAMPLED} for the "
                              "tiny model (its context)", "max_new_tokens")
        if self.model == "tiny" and self.data != "toy" and self.max_new_tokens >= self.max_context:
            raise ConfigError(f"parameter 'max_new_tokens' = {self.max_new_tokens} must be smaller than max_context = "
                              f"{self.max_context}", "max_new_tokens")

        if self.batch_size < 2:
            raise ConfigError(f"parameter 'batch_size' = {self.batch_size} must be ≥ 2 (KTO's KL estimate pairs each "
                              "example with another of its batch)", "batch_size")


def preflight(cfg: KTOConfig) -> None:
    """Before a run is created: the feedback data can be read and the model can be loaded (one-line errors)."""
    if cfg.data != "toy":
        D.load_feedback(cfg.data, cfg.data_split)
    if cfg.model != "tiny":
        from workbench.lib.lm.hf import check_model

        check_model(cfg.model)
    if cfg.reward:
        from workbench.methods.kto.rewards import load_reward

        load_reward(cfg.reward)


# -- phase 1: the reference πref --------------------------------------------------------------------------------
def pretrain(cfg: KTOConfig, ctx: RunContext, corpus: list[tuple[str, str]] | None = None) -> TinyLM:
    """The tiny reference: on synthetic reviews (toy world), or on ``corpus``, the user's (prompt, completion)
    training rows, with a word tokenizer built from them (the CSFT control tokens as specials)."""
    if corpus is None:
        tok, context = W.tokenizer(), W.CONTEXT
        reviews = W.generate_reviews(cfg.pretrain_reviews, ctx.rng("pretrain-data"))
    else:
        tok = WordTokenizer.from_corpus([t for row in corpus for t in row], specials=(GOOD_TOKEN, BAD_TOKEN))
        longest = max(len(tok.split(p)) + len(tok.split(c)) for p, c in corpus) + 3  # <bos>, control, <eos>
        context = min(cfg.max_context, longest + cfg.max_new_tokens)
        reviews = corpus
    with ctx.seeded("reference-init"):
        lm = TinyLM(tok, cfg.n_layer, cfg.d_model, cfg.n_head, context=context).to(ctx.device)
    prompt_ids = [lm.encode_prompt(p)[: context // 2] for p, _ in reviews]
    completion_ids = [(lm.encode(c) + [lm.eos_id])[: context - len(p)] for (_, c), p in zip(reviews, prompt_ids)]
    opt = adam(lm.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01, decoupled=True)
    ctx.track(reference=lm, pretrain_opt=opt)
    ranks = Ranks(ctx.rank, ctx.world_size)
    if min(cfg.pretrain_batch, len(reviews)) < ranks.world_size:
        raise ConfigError(f"parameter 'pretrain_batch' = {cfg.pretrain_batch} must be ≥ the {ranks.world_size} "
                          "processes sharing each batch", "pretrain_batch")
    batches = ctx.batches(len(reviews), cfg.pretrain_batch, name="pretrain_batches")  # this rank's shard
    for step in ctx.steps(cfg.pretrain_steps, phase="pretrain"):
        idx = next(batches).tolist()
        for group in opt.param_groups:  # cosine decay to 10%
            group["lr"] = cfg.pretrain_lr * (0.55 + 0.45 * math.cos(math.pi * step / max(1, cfg.pretrain_steps)))
        with ctx.autocast():
            out = lm.batch_logps(lm.collate([prompt_ids[i] for i in idx], [completion_ids[i] for i in idx]))
        # per token of the global batch: this rank's share, the gradients summed over the ranks
        loss = -out.logps.sum() / ranks.sum(out.lengths.sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ranks.sum_gradients(lm)
        opt.step()
        if step % 10 == 0 or step == cfg.pretrain_steps - 1:
            ctx.log(step, **{"pretrain/loss": ranks.sum(loss.detach()).item()})
    return lm.eval()


def build_reference(cfg: KTOConfig, ctx: RunContext, corpus: list[tuple[str, str]] | None = None) -> CausalLM:
    """πref, frozen: the tiny transformer pretrained here, or a Hugging Face causal LM."""
    if cfg.model == "tiny":
        lm: CausalLM = pretrain(cfg, ctx, corpus)
    else:
        from workbench.lib.lm.hf import HFLM

        lm = HFLM.from_pretrained(cfg.model, device=ctx.device)
        ctx.track(reference=lm)
        lm.eval()
    for p in lm.parameters():
        p.requires_grad_(False)
    return lm


# -- phase 2: the feedback data ---------------------------------------------------------------------------------
def _split_heldout(ds: Any, share: float, generator: torch.Generator) -> tuple[Any, Any]:
    """(training rows, held-out rows): a random ``share`` of the rows kept aside (none when fewer than 4 would
    remain for training)."""
    n = len(ds)
    k = int(round(share * n))
    if k == 0 or n - k < 4:
        return ds, ds.select([])
    order = torch.randperm(n, generator=generator).tolist()
    return ds.select(sorted(order[k:])), ds.select(sorted(order[:k]))


def user_feedback(cfg: KTOConfig, ctx: RunContext) -> tuple[Any, Any]:
    """The user's rows as unpaired feedback (paired data split into its two halves): (training, held-out)."""
    ds = D.load_feedback(cfg.data, cfg.data_split)
    ds = D.paired_to_unpaired(ds) if D.feedback_kind(ds) == "paired" else ds
    return _split_heldout(ds, cfg.heldout, ctx.rng("heldout-split"))


def toy_feedback(cfg: KTOConfig, ctx: RunContext, reference: CausalLM) -> tuple[Any, Any]:
    """Sample from πref and label by rule: (training rows, held-out rows)."""
    prompts = W.prompts(cfg.align_samples)
    samples = reference.sample(prompts, max_new_tokens=cfg.max_new_tokens, generator=ctx.rng("align-data"))
    labels = [W.is_desirable(s.text, cfg.threshold) for s in samples]
    raw = D.from_rows({"prompt": prompts, "completion": [s.text for s in samples], "label": labels})
    return _split_heldout(raw, cfg.heldout, ctx.rng("heldout-split"))


def build_feedback(cfg: KTOConfig, ctx: RunContext, reference: CausalLM,
                   user_rows: tuple[Any, Any] | None) -> RunState:
    """The run's data as a checkpointed state (rebuilt on resume, then replaced by the checkpointed copy when the
    alignment phase resumes): raw rows, pairs for the DPO family, unpaired rows for the rest, held-out rows."""
    store = ctx.state("data")
    if user_rows is None:  # every method sees the same completions: KTO's unpaired rows are the split pairs
        raw, heldout = toy_feedback(cfg, ctx, reference)
        pairs = D.unpaired_to_paired(raw, generator=ctx.rng("pairs"))
        unpaired = D.paired_to_unpaired(pairs)
    else:
        raw, heldout = user_rows
        pairs = D.unpaired_to_paired(raw, generator=ctx.rng("pairs"))
        unpaired = raw
    store.update(raw=raw.to_dict(), pairs=pairs.to_dict(), unpaired=unpaired.to_dict(), heldout=heldout.to_dict(),
                 results={})
    return store


def _reward(cfg: KTOConfig, ctx: RunContext) -> tuple[Reward | None, float]:
    """The reward deciding the desirable rate and its threshold: ``cfg.reward`` when given, else the toy rule
    (toy data) or none (user data)."""
    if cfg.reward:
        from workbench.methods.kto.rewards import load_reward

        return load_reward(cfg.reward, device=str(ctx.device)), cfg.reward_threshold
    if cfg.data == "toy":
        return (lambda prompt, completion: W.sentiment_score(completion)), float(cfg.threshold)
    return None, 0.0


def _kto_weights(cfg: KTOConfig, n_d: int, n_u: int, ratio_rule: bool) -> tuple[float, float, str]:
    """(λ_D, λ_U, note): the configured weights, or λ_D from the ratio rule λ_D·n_D = λ_U·n_U (§4.3)."""
    lam_d, lam_u = cfg.desirable_weight, cfg.undesirable_weight
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ratio = check_kto_weights(n_d, n_u, lam_d, lam_u)
    note = ""
    if caught and ratio_rule and n_d > 0:
        lam_d = ratio_rule_desirable_weight(n_d, n_u, lam_u)
        note = f"ratio {ratio:.3g} outside [1, 4/3]: λ_D set to {lam_d:.3g} by the ratio rule"
    elif caught:
        note = str(caught[0].message)
    return lam_d, lam_u, note


# -- phase 3: align each method ---------------------------------------------------------------------------------
class Aligner:
    """One policy, value head and optimiser (tracked) trained from πref by one method after another, the
    tokenised data, the batch streams and the evaluations."""

    def __init__(self, cfg: KTOConfig, ctx: RunContext, reference: CausalLM, store: RunState, methods: list[str]):
        self.cfg, self.ctx, self.reference, self.store, self.methods = cfg, ctx, reference, store, methods
        self.ranks = Ranks(ctx.rank, ctx.world_size)
        if cfg.data == "toy":
            self.eval_prompts = W.prompts(cfg.eval_samples)
        else:  # cycle through the held-out prompts (the training ones when nothing is held out)
            source = list(store["heldout"]["prompt"]) or list(store["unpaired"]["prompt"])
            self.eval_prompts = (source * cfg.eval_samples)[: cfg.eval_samples]
        self.reward, self.reward_threshold = _reward(cfg, ctx)
        self.policy = copy.deepcopy(reference)
        for p in self.policy.parameters():
            p.requires_grad_(True)
        hidden = getattr(reference, "hidden_size", None) or cfg.d_model
        with ctx.seeded("value-head-init"):
            self.value_head = nn.Linear(hidden, 1).to(ctx.device)
        self.opt = adam(list(self.policy.parameters()) + list(self.value_head.parameters()), lr=cfg.lr,
                        weight_decay=cfg.weight_decay)
        self.fresh_opt = copy.deepcopy(self.opt.state_dict())
        self.fresh_value = copy.deepcopy(self.value_head.state_dict())
        ctx.track(policy=self.policy, value_head=self.value_head, opt=self.opt)
        self.prepared: dict[str, Any] = {}
        self.streams: dict[str, IndexBatches] = {}
        self._settings: dict[str, LossParams] = {}

    # data, once per process (after a resume restored the data state) --------------------------------------
    def prepare(self) -> None:
        """Tokenise the (possibly restored) data, fix KTO's mismatched pairs and cache the reference's log-probs."""
        cfg, store, prepared = self.cfg, self.store, self.prepared
        raw, pairs = D.from_rows(store["raw"]), D.from_rows(store["pairs"])
        base = D.from_rows(store["unpaired"])
        if len(pairs) < 2 and any(m in PAIRED_METHODS for m in self.methods):
            raise ValueError(f"only {len(pairs)} desirable/undesirable pairs could be formed; raise align_samples "
                             "or change threshold")
        if len(pairs) == 0:  # keep the tokenised structure valid for unpaired-only runs
            pairs = D.from_rows({"prompt": [], "chosen": [], "rejected": []})
        chosen = D.subsample(base, cfg.desirable_share, cfg.undesirable_share, generator=self.ctx.rng("subsample"))
        dropped = D.subsample(base, max(0.01, 1 - cfg.drop_share), 1.0, generator=self.ctx.rng("subsample/drop"))
        prepared["paired"] = tokenise_paired(self.policy, pairs["prompt"], pairs["chosen"], pairs["rejected"])
        for key, ds in (("unpaired", chosen), (DROP, dropped)):
            prepared[key] = tokenise_unpaired(self.policy, ds["prompt"], ds["completion"], ds["label"])
            prepared[key + "/counts"] = D.counts(ds)
        if cfg.reference_cache:  # fixed mismatched pairs per batch, reference log-probs computed once
            self._cache_reference()
        held = D.from_rows(store["heldout"])
        if len(held):
            prepared["heldout"] = tokenise_unpaired(self.policy, held["prompt"], held["completion"], held["label"])
            precompute_reference(self.reference, prepared["heldout"], _spans(len(held), 64), self.ranks)
        n_raw_d, n_raw = sum(raw["label"]), len(raw)
        store["summary"] = {"samples": n_raw, "reference_desirable_share": n_raw_d / max(1, n_raw),
                            "pairs": len(pairs), "unpaired": len(chosen), "dropped_unpaired": len(dropped),
                            "heldout": len(held)}
        self.ctx.artifact("data_summary", dict(store["summary"]), kind="json")
        spec, build = spec_of(self.reference, cfg.model)
        self.ctx.save_model("reference", self.reference, spec, build)

    def _cache_reference(self) -> None:
        """KTO's chunks: each rank caches its shard of every chunk (the shapes of its training forward); pairs
        batch by batch, shared among the ranks; every rank then holds every row's reference log-probs."""
        prepared, bs = self.prepared, self.cfg.batch_size
        for key in ("unpaired", DROP):
            if len(prepared[key]) >= 2:
                chunks = prepared[key + "/chunks"] = kl_chunks(len(prepared[key]), bs, self.ctx.rng(f"kl-chunks/{key}"))
                fix_kl_pairs(prepared[key], chunks)
                precompute_reference(self.reference, prepared[key], chunks, self.ranks, split=True)
        if len(prepared["paired"]):
            precompute_reference(self.reference, prepared["paired"], _spans(len(prepared["paired"]), bs), self.ranks)

    def settings(self, method: str) -> LossParams:
        """The loss settings of ``method``: KTO's λ_D, λ_U from the data's counts (and the ratio rule)."""
        if method not in self._settings:
            cfg = self.cfg
            lam_d, lam_u, note = cfg.desirable_weight, cfg.undesirable_weight, ""
            if method in KTO_METHODS or method == DROP:
                n_d, n_u = self.prepared[_data_key(method) + "/counts"]
                lam_d, lam_u, note = _kto_weights(cfg, n_d, n_u, cfg.ratio_rule or method == DROP)
            self._settings[method] = LossParams.bind(cfg, desirable_weight=lam_d, undesirable_weight=lam_u)
            self.store["results"].setdefault(method, {})["weights"] = {"desirable": lam_d, "undesirable": lam_u,
                                                                       "note": note}
        return self._settings[method]

    def _stream(self, name: str, n: int, batch_size: int) -> IndexBatches:
        """A checkpointed stream of GLOBAL batches, created once the data (and so ``n``) is known: every rank draws
        the same batch (seeded as ``ctx.batches`` seeds the stream ``name``) and takes its shard in
        :meth:`train_step`, where the global batch decides KTO's mismatched pairs and the loss's normaliser."""
        if name not in self.streams:
            stream = IndexBatches(n, batch_size, seed=self.cfg.seed + zlib.crc32(name.encode()))
            self.ctx.track(**{name: stream})
            self.streams[name] = stream
        return self.streams[name]

    def next_batch(self, method: str) -> list[int]:
        """The rows of the method's next global batch (a fixed chunk for the KTO family with the reference cache)."""
        key = _data_key(method)
        if (method in KTO_METHODS or method == DROP) and key + "/chunks" in self.prepared:
            chunks = self.prepared[key + "/chunks"]
            return list(chunks[int(next(self._stream(f"chunks/{method}", len(chunks), 1))[0])])
        unpaired: Unpaired = self.prepared["unpaired"]
        if method in PAIRED_METHODS:
            n = len(self.prepared["paired"])
        elif method == "sft":  # desirable rows only
            n = int(unpaired.desirable.sum())
        else:
            n = len(self.prepared[key])
        if n < 2:
            raise ValueError(f"method {method!r} has {n} training rows; it needs at least 2")
        idx = next(self._stream(f"batches/{method}", n, self.cfg.batch_size)).tolist()
        if method == "sft":
            rows = unpaired.desirable.nonzero().flatten().tolist()
            idx = [rows[i] for i in idx]
        return idx

    # one method's alignment ---------------------------------------------------------------------------------
    def start(self, method: str) -> None:
        """πθ ← πref, a fresh value head and optimiser; the path starts at the reference."""
        self.policy.load_state_dict(self.reference.state_dict())
        self.value_head.load_state_dict(self.fresh_value)
        self.opt.load_state_dict(self.fresh_opt)
        self.ctx.log(0, **{f"{method}/eval/reward_rate": self.store["reference"]["reward_rate"],
                           f"{method}/eval/kl": 0.0})

    def train_step(self, method: str, local: int) -> None:
        """One step on the global batch: each rank computes its shard's rows (a pair stays whole on one rank),
        z₀ and the metrics are reduced over the ranks, the gradients summed (one process: the whole batch)."""
        s, batch = self.settings(method), self.next_batch(method)
        data: Unpaired = self.prepared[_data_key(method)]
        paired: Paired = self.prepared["paired"]
        n, ranks = len(batch), self.ranks
        if n < ranks.world_size:
            raise ValueError(f"a batch of {n} rows cannot be shared by {ranks.world_size} processes; raise batch_size")
        rows = self.ctx.shard(n).rows().tolist()
        idx = [batch[i] for i in rows]
        kl_rows = None  # live reference under torchrun: the global batch's rotation (a partner may be on another rank)
        if ranks.world_size > 1 and data.kl_completion_ids is None:
            kl_rows = [batch[(i - 1) % n] for i in rows]
        with self.ctx.autocast():
            loss, metrics, losses = method_step("kto" if method == DROP else method, self.policy, self.reference,
                                                data, paired, idx, s, self.value_head, ranks, n, kl_rows)
        if local == 0 and (method in KTO_METHODS or method == DROP):  # Eq. 8 at πθ = πref: 0.5·λ per example
            d = data.desirable[idx].to(losses.device)
            half = torch.where(d, 0.5 * s.desirable_weight, 0.5 * s.undesirable_weight).to(losses.dtype)
            self.store["results"][method]["start_deviation"] = float(ranks.max((losses - half).abs().max()))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        ranks.sum_gradients(self.policy, self.value_head)
        self.opt.step()
        self.ctx.log(local + 1, **{f"{method}/{k}": v for k, v in metrics.items()})

    # phase 4: evaluate --------------------------------------------------------------------------------------
    def evaluate_reference(self) -> None:
        """πref's own samples: the frontier's starting point (KL 0) and the claims' reference rate."""
        ev = evaluate(self.reference, self.reference, self.eval_prompts, self.eval_prompts,
                      lambda block: self.ctx.rng(f"eval/reference/{block}"), self.cfg.max_new_tokens, self.reward,
                      self.reward_threshold, source="reference", ranks=self.ranks, block=EVAL_BLOCK)
        self.store["reference"] = {"reward_rate": ev.reward_rate, "kl": 0.0, "desirable": ev.desirable}
        self.store["reference_rows"] = ev.rows

    def evaluate(self, method: str, step: int) -> None:
        """Sample from πθ (a fresh stream per evaluation: nothing to checkpoint), measure the desirable rate and KL̂,
        and the held-out implied rewards; log them and keep them for the frontier and the claims."""
        cfg, ctx = self.cfg, self.ctx
        prompts = self.eval_prompts
        pol_prompts = [csft_prompt(p, True) for p in prompts] if method == "csft" else prompts
        self.policy.eval()
        ev = evaluate(self.policy, self.reference, prompts, pol_prompts,
                      lambda block: ctx.rng(f"eval/{method}/{block}", step), cfg.max_new_tokens, self.reward,
                      self.reward_threshold, source=method, ranks=self.ranks, block=EVAL_BLOCK)
        beta = self.settings(method).beta
        held = (heldout_metrics(self.policy, self.prepared["heldout"], beta, ranks=self.ranks)
                if "heldout" in self.prepared else {})
        result = self.store["results"].setdefault(method, {})
        if step == cfg.steps and "heldout" in self.prepared:  # the claims' per-row implied rewards
            data: Unpaired = self.prepared["heldout"]
            reward = heldout_rewards(self.policy, data, beta, ranks=self.ranks)[1]
            result["heldout_rows"] = {"reward": reward.tolist(), "desirable": data.desirable.tolist(),
                                      "group": prompt_groups(data.prompt_ids).tolist()}
        self.policy.train()
        ctx.log(step, **{f"{method}/eval/reward_rate": ev.reward_rate, f"{method}/eval/kl": ev.kl,
                         f"{method}/eval/kl_se": ev.kl_se, **{f"{method}/heldout/{k}": v for k, v in held.items()}})
        result["final"] = {"reward_rate": ev.reward_rate, "kl": ev.kl, "kl_se": ev.kl_se, "step": step,
                           **{f"heldout/{k}": v for k, v in held.items()}}
        result.setdefault("evals", []).append({"step": step, "kl": ev.kl, "kl_se": ev.kl_se, "rate": ev.reward_rate,
                                               "desirable": ev.desirable, "log_ratio": ev.log_ratio})
        ctx.artifact("samples", self.store["reference_rows"] + ev.rows, kind="table")
        if step == cfg.steps:
            ctx.artifact(f"samples/{method}", ev.rows, kind="table")

    def save(self, method: str) -> None:
        """The aligned policy, reloadable with ``runs.load_model(run_id, method)``."""
        spec, build = spec_of(self.policy, self.cfg.model)
        self.ctx.save_model(method, self.policy, spec, build)


def align(cfg: KTOConfig, ctx: RunContext, aligner: Aligner) -> None:
    """Every method in turn for ``steps`` steps from πref (one resumable phase), evaluated every ``eval_every``."""
    methods = aligner.methods
    for step in ctx.steps(len(methods) * cfg.steps, phase="align"):
        if not aligner.prepared:
            aligner.prepare()
        method, local = methods[step // cfg.steps], step % cfg.steps
        if local == 0:
            aligner.start(method)
        aligner.train_step(method, local)
        if (local + 1) % cfg.eval_every == 0 or local + 1 == cfg.steps:
            aligner.evaluate(method, local + 1)
        if local + 1 == cfg.steps:
            aligner.save(method)


def run(cfg: KTOConfig, ctx: RunContext) -> dict[str, float]:
    if cfg.batch_size < ctx.world_size:
        raise ConfigError(f"parameter 'batch_size' = {cfg.batch_size} must be ≥ the {ctx.world_size} processes "
                          "sharing each batch", "batch_size")
    user_rows = None if cfg.data == "toy" else user_feedback(cfg, ctx)
    corpus = None if user_rows is None else list(zip(user_rows[0]["prompt"], user_rows[0]["completion"]))
    reference = build_reference(cfg, ctx, corpus)
    store = build_feedback(cfg, ctx, reference, user_rows)
    methods = list(METHODS) + [DROP] if cfg.method == "all" else [cfg.method]
    aligner = Aligner(cfg, ctx, reference, store, methods)
    aligner.evaluate_reference()
    align(cfg, ctx, aligner)
    summary = summarise(ctx, store, methods)
    for claim in claims(cfg, ctx, store, methods):
        ctx.claim(claim)
    return summary


# -- phase 5: summary and claims --------------------------------------------------------------------------------
def summarise(ctx: RunContext, store: RunState, methods: list[str]) -> dict[str, float]:
    """The frontier and weights artifacts, and the run's summary (every method's final evaluation)."""
    results, ref_rate = store["results"], store["reference"]["reward_rate"]
    frontier = [{"method": "reference", "step": 0, "reward_rate": ref_rate, "kl": 0.0}]
    for m in methods:  # every evaluation of every method: the measured (KL, reward rate) path
        frontier += [{"method": m, "step": int(e["step"]), "reward_rate": e["rate"], "kl": e["kl"]}
                     for e in results.get(m, {}).get("evals", [])]
    ctx.artifact("frontier", frontier, kind="table")
    ctx.artifact("weights", {m: results[m].get("weights") for m in methods if m in results}, kind="json")
    summary: dict[str, float] = {"reference/reward_rate": ref_rate}
    for m in methods:
        for key, value in results.get(m, {}).get("final", {}).items():
            if key != "step":
                summary[f"{m}/{key}"] = value
    return summary


def claims(cfg: KTOConfig, ctx: RunContext, store: RunState, methods: list[str]) -> list[Claim]:
    """The paper's claims this run can check, each decided by the rules of :mod:`workbench.core.claims`."""
    results, reference = store["results"], store["reference"]
    out: list[Claim] = []
    deviations = {m: results[m]["start_deviation"] for m in methods if "start_deviation" in results.get(m, {})}
    if deviations:  # float rounding only; bfloat16 autocast rounds the log-probs
        out.append(K.start_identity_claim(deviations, 1e-6 if ctx.device.type == "cpu" or not cfg.amp else 1e-2))
    evals = {m: results[m]["evals"] for m in methods
             if results.get(m, {}).get("evals") and not math.isnan(results[m]["evals"][-1]["rate"])}
    if math.isnan(reference["reward_rate"]):
        evals = {}
    for m in ("kto", "dpo"):
        if m in evals:
            out.append(K.rate_gain_claim(f"{m.upper()} raises the desirable rate far above the reference's", m,
                                         evals[m][-1], reference, margin=0.2,
                                         detail=f"'far above' = by more than 0.20 after {cfg.steps} steps"))
    if {"kto", "dpo"} <= set(evals):
        out.append(K.frontier_claim("At equal sampled KL, KTO reaches a higher desirable rate than DPO (paper: KTO ≥ DPO "
                                    "from 1B to 30B)", "kto", "dpo", evals["kto"], evals["dpo"],
                                    generator=ctx.rng("claims/kto-vs-dpo")))
        out.append(K.frontier_claim("At equal sampled KL, KTO is not worse than DPO by more than 0.05 (the paper's "
                                    "'matches')", "kto", "dpo", evals["kto"], evals["dpo"], rule="not_worse",
                                    margin=0.05, generator=ctx.rng("claims/kto-matches-dpo")))
    if DROP in evals:
        lam = results[DROP]["weights"]["desirable"]
        out.append(K.rate_gain_claim(f"KTO with {cfg.drop_share:.0%} of the desirable examples dropped still "
                                     "improves clearly", DROP, evals[DROP][-1], reference, margin=0.1,
                                     detail=f"λ_D = {lam:.3g} by the ratio rule λ_D·n_D = λ_U·n_U; 'clearly' = by "
                                            "more than 0.10"))
        if "dpo" in evals:
            out.append(K.frontier_claim(f"KTO with {cfg.drop_share:.0%} of the desirable examples dropped is not worse "
                                        "than DPO (all data) by more than 0.05 at equal KL (paper §4.3)", DROP, "dpo",
                                        evals[DROP], evals["dpo"], rule="not_worse", margin=0.05,
                                        generator=ctx.rng("claims/drop-vs-dpo")))
    rows = results.get("kto", {}).get("heldout_rows")
    if rows and any(rows["desirable"]) and not all(rows["desirable"]):
        out.append(K.heldout_accuracy_claim(rows["reward"], rows["desirable"], rows["group"],
                                            generator=ctx.rng("claims/heldout")))
    return out


def _data_key(method: str) -> str:
    return DROP if method == DROP else "unpaired"


def _spans(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


EXPERIMENT = register(Experiment(
    name="kto",
    title="KTO: model alignment as prospect-theoretic optimization",
    description=__doc__.split("\n\n")[0] if __doc__ else "",
    config=KTOConfig,
    run=run,
    smoke={"pretrain_steps": 20, "pretrain_reviews": 256, "align_samples": 128, "steps": 3, "batch_size": 8,
           "eval_samples": 16, "eval_every": 3, "d_model": 32, "n_head": 2, "n_layer": 1, "threshold": 1},
    demo={"pretrain_steps": 500, "steps": 80, "eval_every": 20, "align_samples": 1024, "eval_samples": 192},
    key_metrics=("*/loss", "*/eval/reward_rate", "*/eval/kl"),
    distributed=True,
    distributed_note="data-parallel: every rank draws the same global batch and computes its shard (a pair stays "
                     "whole on one rank; the cached reference's log-probs indexed per shard, or the reference run on "
                     "it), KTO's z0 all-reduced to the global batch's estimate, loss normalisers global, gradients "
                     "summed; the tiny reference pretrains data-parallel; evaluation samples blocks of prompts, each "
                     "from its own stream, shared among the ranks and gathered: one process's figures to "
                     "floating-point rounding. The toy world's feedback is sampled on every rank alike. batch_size "
                     "and pretrain_batch must be at least the number of processes",
    ddp_smoke={"eval_samples": 2 * EVAL_BLOCK},  # two sampling blocks: both ranks sample
    preflight=preflight,
))
