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
from typing import Any

import torch
import torch.nn as nn

from workbench.core.batches import IndexBatches
from workbench.core.context import RunContext, RunState
from workbench.methods.kto import data as D
from workbench.methods.kto import toyworld as W
from workbench.methods.kto.losses import check_kto_weights, csft_prompt, ratio_rule_desirable_weight
from workbench.methods.kto.losses import BAD_TOKEN, GOOD_TOKEN
from workbench.methods.kto.train import (KTO_METHODS, METHODS, PAIRED_METHODS, LossParams, evaluate, fix_kl_pairs,
                                 heldout_metrics, kl_chunks, method_step, precompute_reference, tokenise_paired,
                                 tokenise_unpaired)
from workbench.lib.lm.core import CausalLM, TinyLM
from workbench.lib.lm.tokenizer import WordTokenizer
from workbench.core.params import Config, ConfigError, Param
from workbench.core.registry import Experiment, register

DROP = "kto_drop"  # the comparison's extra run: KTO with drop_share of the desirable rows removed


class KTOConfig(LossParams, Config):
    method: str = Param("all", choices=("all",) + METHODS,
                        doc="alignment loss, or 'all' to compare every loss and check the paper's claims")
    ratio_rule: bool = Param(True, doc="when λ_D·n_D/(λ_U·n_U) falls outside [1, 4/3], set λ_D so that it equals 1")
    lr: float = Param(1e-3, bounds=(1e-6, 1.0), log=True, unit="lr", doc="alignment learning rate (Adam)")
    reference_cache: bool = Param(True, doc="compute the reference's log-probs once (KTO's mismatched pairs fixed "
                                            "per batch, as TRL does); off: a reference forward every step")
    align_steps: int = Param(150, bounds=(1, 1_000_000), unit="steps", doc="optimizer steps per method")
    batch_size: int = Param(32, bounds=(2, 4096), unit="examples", doc="examples (or pairs) per step; KTO needs ≥ 2")
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
    eval_every: int = Param(25, bounds=(1, 1_000_000), unit="steps",
                            doc="evaluate every N alignment steps (each evaluation is a point of the KL frontier)")
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


def _pretrain(cfg: KTOConfig, ctx: RunContext, corpus: list[tuple[str, str]] | None = None) -> TinyLM:
    """The tiny reference: on synthetic reviews (toy world), or on ``corpus``, the user's (prompt, completion)
    training rows, with a word tokenizer built from them (the CSFT control tokens as specials)."""
    if corpus is None:
        tok, context = W.tokenizer(), W.CONTEXT
        reviews = W.generate_reviews(cfg.pretrain_reviews, ctx.generator("pretrain-data"))
    else:
        tok = WordTokenizer.from_corpus([t for row in corpus for t in row], specials=(GOOD_TOKEN, BAD_TOKEN))
        longest = max(len(tok.split(p)) + len(tok.split(c)) for p, c in corpus) + 3  # <bos>, control, <eos>
        context = min(cfg.max_context, longest + cfg.max_new_tokens)
        reviews = corpus
    torch.manual_seed(cfg.seed)
    lm = TinyLM(tok, cfg.n_layer, cfg.d_model, cfg.n_head, context=context).to(ctx.device)
    prompt_ids = [lm.encode_prompt(p)[: context // 2] for p, _ in reviews]
    completion_ids = [(lm.encode(c) + [lm.eos_id])[: context - len(p)] for (_, c), p in zip(reviews, prompt_ids)]
    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
    ctx.track(reference=lm, pretrain_opt=opt)
    batches = ctx.batches(len(reviews), cfg.pretrain_batch, name="pretrain_batches")
    for step in ctx.steps(cfg.pretrain_steps, phase="pretrain"):
        idx = next(batches).tolist()
        # cosine decay to 10%
        for group in opt.param_groups:
            group["lr"] = cfg.pretrain_lr * (0.55 + 0.45 * math.cos(math.pi * step / max(1, cfg.pretrain_steps)))
        with ctx.autocast():
            out = lm.batch_logps(lm.collate([prompt_ids[i] for i in idx], [completion_ids[i] for i in idx]))
        loss = -out.logps.sum() / out.lengths.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.pretrain_steps - 1:
            ctx.log(step, **{"pretrain/loss": loss.item()})
    return lm.eval()


def _toy_feedback(cfg: KTOConfig, ctx: RunContext, reference: CausalLM) -> tuple[Any, Any]:
    """Sample from πref and label by rule: (training rows, held-out rows)."""
    from datasets import Dataset

    prompts = W.prompts(cfg.align_samples)
    samples = reference.sample(prompts, max_new_tokens=cfg.max_new_tokens, generator=ctx.generator("align-data"))
    labels = [W.is_desirable(s.text, cfg.threshold) for s in samples]
    raw = Dataset.from_dict({"prompt": prompts, "completion": [s.text for s in samples], "label": labels})
    return _split_heldout(raw, cfg.heldout, cfg.seed)


def _reward(cfg: KTOConfig, ctx: RunContext) -> tuple[Any, float]:
    """The reward deciding the desirable rate and its threshold: ``cfg.reward`` when given, else the toy rule
    (toy data) or none (user data)."""
    if cfg.reward:
        from workbench.methods.kto.rewards import load_reward

        return load_reward(cfg.reward, device=str(ctx.device)), cfg.reward_threshold
    if cfg.data == "toy":
        return (lambda prompt, completion: W.sentiment_score(completion)), float(cfg.threshold)
    return None, 0.0


def _external_feedback(cfg: KTOConfig):
    """The user's rows as unpaired feedback (paired data split into its two halves)."""
    ds = D.load_feedback(cfg.data, cfg.data_split)
    return D.paired_to_unpaired(ds) if D.feedback_kind(ds) == "paired" else ds


def _split_heldout(ds: Any, share: float, seed: int) -> tuple[Any, Any]:
    """(training rows, held-out rows): a seeded random ``share`` of the rows kept aside (at least one of each kind
    when there are enough)."""
    n = len(ds)
    k = int(round(share * n))
    if k == 0 or n - k < 4:
        return ds, ds.select([])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7)).tolist()
    return ds.select(sorted(order[k:])), ds.select(sorted(order[:k]))


def _reference(cfg: KTOConfig, ctx: RunContext, corpus: list[tuple[str, str]] | None = None) -> CausalLM:
    if cfg.model == "tiny":
        return _pretrain(cfg, ctx, corpus)
    from workbench.lib.lm.hf import HFLM

    lm = HFLM.from_pretrained(cfg.model, device=ctx.device)
    ctx.track(reference=lm)
    return lm.eval()


def _kto_weights(cfg: KTOConfig, n_d: int, n_u: int, ratio_rule: bool) -> tuple[float, float, str]:
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


def run(cfg: KTOConfig, ctx: RunContext) -> dict[str, float]:
    toy = cfg.data == "toy"
    user_rows = None if toy else _split_heldout(_external_feedback(cfg), cfg.heldout, cfg.seed)
    corpus = None if toy else list(zip(user_rows[0]["prompt"], user_rows[0]["completion"]))
    reference = _reference(cfg, ctx, corpus)
    for p in reference.parameters():
        p.requires_grad_(False)

    # ---- feedback data (rebuilt on resume, then overwritten by the checkpointed copy) -------------
    store = ctx.state("data")
    if toy:  # every method sees the same completions: KTO's unpaired rows are the split pairs
        raw, heldout = _toy_feedback(cfg, ctx, reference)
        pairs = D.unpaired_to_paired(raw, seed=cfg.seed)
        unpaired = D.paired_to_unpaired(pairs)
    else:
        raw, heldout = user_rows
        pairs = D.unpaired_to_paired(raw, seed=cfg.seed)
        unpaired = raw
    store["raw"] = raw.to_dict()
    store["pairs"] = pairs.to_dict()
    store["unpaired"] = unpaired.to_dict()
    store["heldout"] = heldout.to_dict()
    store["results"] = {}

    methods = list(METHODS) + [DROP] if cfg.method == "all" else [cfg.method]
    if toy:
        eval_prompts = W.prompts(cfg.eval_samples)
    else:  # cycle through the held-out prompts (the training ones when nothing is held out)
        source_prompts = list(heldout["prompt"]) or list(unpaired["prompt"])
        eval_prompts = (source_prompts * cfg.eval_samples)[: cfg.eval_samples]
    reward, reward_threshold = _reward(cfg, ctx)

    policy = copy.deepcopy(reference)
    for p in policy.parameters():
        p.requires_grad_(True)
    hidden = getattr(reference, "hidden_size", None) or cfg.d_model
    value_head = nn.Linear(hidden, 1).to(ctx.device)
    opt = torch.optim.Adam(list(policy.parameters()) + list(value_head.parameters()), lr=cfg.lr)
    fresh_opt, fresh_value = copy.deepcopy(opt.state_dict()), copy.deepcopy(value_head.state_dict())
    ctx.track(policy=policy, value_head=value_head, opt=opt)

    prepared: dict[str, Any] = {}
    streams: dict[str, IndexBatches] = {}

    def prepare() -> None:
        """Tokenise the (possibly restored) data once per run."""
        from datasets import Dataset

        raw_ds, pair_ds = Dataset.from_dict(store["raw"]), Dataset.from_dict(store["pairs"])
        base = Dataset.from_dict(store["unpaired"])
        if len(pair_ds) < 2 and any(m in PAIRED_METHODS for m in methods):
            raise ValueError(f"only {len(pair_ds)} desirable/undesirable pairs could be formed; raise align_samples "
                             "or change threshold")
        if len(pair_ds) == 0:  # keep the tokenised structure valid for unpaired-only runs
            pair_ds = Dataset.from_dict({"prompt": [], "chosen": [], "rejected": []})
        chosen = D.subsample(base, cfg.desirable_share, cfg.undesirable_share, seed=cfg.seed)
        dropped = D.subsample(base, max(0.01, 1 - cfg.drop_share), 1.0, seed=cfg.seed)
        prepared["paired"] = tokenise_paired(policy, pair_ds["prompt"], pair_ds["chosen"], pair_ds["rejected"])
        for key, ds in (("unpaired", chosen), (DROP, dropped)):
            prepared[key] = tokenise_unpaired(policy, ds["prompt"], ds["completion"], ds["label"])
            prepared[key + "/counts"] = D.counts(ds)
        if cfg.reference_cache:  # fixed mismatched pairs per batch, reference log-probs computed once
            order = torch.Generator().manual_seed(cfg.seed + 4099)
            for key in ("unpaired", DROP):
                if len(prepared[key]) >= 2:
                    chunks = prepared[key + "/chunks"] = kl_chunks(len(prepared[key]), cfg.batch_size, order)
                    fix_kl_pairs(prepared[key], chunks)
                    precompute_reference(reference, prepared[key], chunks)
            n_pairs = len(prepared["paired"])
            if n_pairs:
                precompute_reference(reference, prepared["paired"],
                                     [range(i, min(i + cfg.batch_size, n_pairs)) for i in range(0, n_pairs, cfg.batch_size)])
        held = Dataset.from_dict(store["heldout"])
        if len(held):
            prepared["heldout"] = tokenise_unpaired(policy, held["prompt"], held["completion"], held["label"])
            precompute_reference(reference, prepared["heldout"], [range(i, min(i + 64, len(held)))
                                                                    for i in range(0, len(held), 64)])
        n_raw_d, n_raw = sum(raw_ds["label"]), len(raw_ds)
        store["summary"] = {"samples": n_raw, "reference_desirable_share": n_raw_d / max(1, n_raw),
                            "pairs": len(pair_ds), "unpaired": len(chosen), "dropped_unpaired": len(dropped),
                            "heldout": len(held)}

    settings_for: dict[str, LossParams] = {}

    def settings(method: str) -> LossParams:
        if method not in settings_for:
            lam_d, lam_u, note = cfg.desirable_weight, cfg.undesirable_weight, ""
            if method in KTO_METHODS or method == DROP:
                n_d, n_u = prepared[(DROP if method == DROP else "unpaired") + "/counts"]
                lam_d, lam_u, note = _kto_weights(cfg, n_d, n_u, cfg.ratio_rule or method == DROP)
            settings_for[method] = LossParams.bind(cfg, desirable_weight=lam_d, undesirable_weight=lam_u)
            store["results"].setdefault(method, {})["weights"] = {"desirable": lam_d, "undesirable": lam_u,
                                                                  "note": note}
        return settings_for[method]

    def next_batch(method: str) -> list[int]:
        """The rows of the method's next batch (a fixed chunk for the KTO family with the reference cache)."""
        data_key = DROP if method == DROP else "unpaired"
        if (method in KTO_METHODS or method == DROP) and data_key + "/chunks" in prepared:
            chunks = prepared[data_key + "/chunks"]
            stream = f"chunks/{method}"
            if stream not in streams:
                streams[stream] = ctx.batches(len(chunks), 1, name=stream)
            return list(chunks[int(next(streams[stream])[0])])
        idx = next(indices(method)).tolist()
        if method == "sft":  # desirable rows only
            rows = prepared["unpaired"].desirable.nonzero().flatten().tolist()
            idx = [rows[i] for i in idx]
        return idx

    def indices(method: str) -> IndexBatches:
        if method in PAIRED_METHODS:
            n = len(prepared["paired"])
        elif method == DROP:
            n = len(prepared[DROP])
        elif method == "sft":
            n = int(prepared["unpaired"].desirable.sum())
        else:
            n = len(prepared["unpaired"])
        if n < 2:
            raise ValueError(f"method {method!r} has {n} training rows; it needs at least 2")
        stream = f"batches/{method}"  # created once the data (and so n) is known; checkpointed from then on
        return streams[stream] if stream in streams else streams.setdefault(stream, ctx.batches(n, cfg.batch_size,
                                                                                              name=stream))

    def run_eval(method: str, step: int) -> None:
        pol_prompts = [csft_prompt(p, True) for p in eval_prompts] if method == "csft" else eval_prompts
        policy.eval()
        ev = evaluate(policy, reference, eval_prompts, pol_prompts, ctx.generator(f"eval/{method}/{step}"),
                      cfg.max_new_tokens, reward, reward_threshold, source=method)
        held = heldout_metrics(policy, prepared["heldout"], settings(method).beta) if "heldout" in prepared else {}
        policy.train()
        ctx.log(step, **{f"{method}/eval/reward_rate": ev.reward_rate, f"{method}/eval/kl": ev.kl,
                         f"{method}/eval/kl_se": ev.kl_se, **{f"{method}/heldout/{k}": v for k, v in held.items()}})
        result = store["results"].setdefault(method, {})
        result["final"] = {"reward_rate": ev.reward_rate, "kl": ev.kl, "kl_se": ev.kl_se, "step": step,
                           **{f"heldout/{k}": v for k, v in held.items()}}
        result.setdefault("path", [[0.0, store["reference"]["reward_rate"], 0]]).append([ev.kl, ev.reward_rate, step])
        ctx.artifact("samples", store["reference_rows"] + ev.rows, kind="table")
        if step == cfg.align_steps:
            ctx.artifact(f"samples/{method}", ev.rows, kind="table")

    # ---- reference evaluation ------------------------------------------------------------------
    ref_eval = evaluate(reference, reference, eval_prompts, eval_prompts, ctx.generator("eval/reference"),
                        cfg.max_new_tokens, reward, reward_threshold, source="reference")
    store["reference"] = {"reward_rate": ref_eval.reward_rate, "kl": 0.0}
    store["reference_rows"] = ref_eval.rows

    total = len(methods) * cfg.align_steps
    for step in ctx.steps(total, phase="align"):
        if not prepared:
            prepare()
            ctx.artifact("data_summary", dict(store["summary"]), kind="json")
        method = methods[step // cfg.align_steps]
        local = step % cfg.align_steps
        s = settings(method)
        if local == 0:
            policy.load_state_dict(reference.state_dict())
            value_head.load_state_dict(fresh_value)
            opt.load_state_dict(fresh_opt)
            ctx.log(0, **{f"{method}/eval/reward_rate": store["reference"]["reward_rate"], f"{method}/eval/kl": 0.0})
        idx = next_batch(method)
        data = prepared[DROP] if method == DROP else prepared["unpaired"]
        with ctx.autocast():
            loss, metrics, losses = method_step("kto" if method == DROP else method, policy, reference, data,
                                                prepared["paired"], idx, s, value_head)
        if local == 0 and (method in KTO_METHODS or method == DROP):
            d = data.desirable[idx].to(losses.device)
            half = torch.where(d, 0.5 * s.desirable_weight, 0.5 * s.undesirable_weight).to(losses.dtype)
            store["results"][method]["start_deviation"] = float((losses - half).abs().max())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ctx.log(local + 1, **{f"{method}/{k}": v for k, v in metrics.items()})
        if (local + 1) % cfg.eval_every == 0 or local + 1 == cfg.align_steps:
            run_eval(method, local + 1)

    return _finish(cfg, ctx, store, methods)


def _finish(cfg: KTOConfig, ctx: RunContext, store: RunState, methods: list[str]) -> dict[str, float]:
    results, ref_rate = store["results"], store["reference"]["reward_rate"]
    frontier = [{"method": "reference", "step": 0, "reward_rate": ref_rate, "kl": 0.0}]
    for m in methods:  # every evaluation of every method: the measured (KL, reward rate) path
        frontier += [{"method": m, "step": int(step), "reward_rate": rate, "kl": kl}
                     for kl, rate, step in results.get(m, {}).get("path", [])[1:]]
    ctx.artifact("frontier", frontier, kind="table")
    ctx.artifact("weights", {m: results[m].get("weights") for m in methods if m in results}, kind="json")
    summary: dict[str, float] = {"reference/reward_rate": ref_rate}
    for m in methods:
        for key, value in results.get(m, {}).get("final", {}).items():
            if key != "step":
                summary[f"{m}/{key}"] = value
    rate = {m: results[m]["final"]["reward_rate"] for m in methods if "final" in results.get(m, {})}
    final = {m: results[m]["final"] for m in methods if "final" in results.get(m, {})}

    deviations = {m: results[m]["start_deviation"] for m in methods if "start_deviation" in results.get(m, {})}
    if deviations:
        worst = max(deviations.values())
        tol = 0.0 if ctx.device.type == "cpu" or not cfg.amp else 1e-2
        ctx.claim("At the start (πθ = πref) every KTO loss equals 0.5·λ exactly",
                  f"max |loss − 0.5·λ| = {worst:.2g} over the first batch of {', '.join(deviations)}",
                  worst <= tol, "per-example losses of the first step, before any update")
    has_rate = {m for m, r in rate.items() if not math.isnan(r)}
    if {"kto", "dpo"} <= has_rate:
        margin = 0.2
        ok = rate["kto"] >= ref_rate + margin and rate["dpo"] >= ref_rate + margin
        ctx.claim("KTO and DPO both raise the desirable rate far above the reference's",
                  f"reference {ref_rate:.2f}; KTO {rate['kto']:.2f}; DPO {rate['dpo']:.2f}", ok,
                  f"'far above' = at least +{margin:.2f} absolute after {cfg.align_steps} steps")
        measured, holds, detail = frontier_comparison(results["kto"]["path"][1:], results["dpo"]["path"][1:],
                                                      samples=cfg.eval_samples)
        ctx.claim("At equal sampled KL, KTO matches or beats DPO (paper: KTO ≥ DPO from 1B to 30B)", measured, holds,
                  detail)
    if DROP in has_rate:
        lam = results[DROP]["weights"]["desirable"]
        ok = rate[DROP] >= ref_rate + 0.1
        ctx.claim(f"KTO with {cfg.drop_share:.0%} of the desirable examples dropped still improves clearly",
                  f"reference {ref_rate:.2f} → {rate[DROP]:.2f} (λ_D = {lam:.3g})", ok,
                  "λ_D set by the ratio rule λ_D·n_D = λ_U·n_U; 'clearly' = at least +0.10 absolute")
    accuracy = {m: f["heldout/rewards/accuracy"] for m, f in final.items() if "heldout/rewards/accuracy" in f}
    if "kto" in accuracy:
        margin = final["kto"].get("heldout/rewards/margins", float("nan"))
        ctx.claim("After KTO, the implied reward ranks held-out desirable completions above undesirable ones",
                  f"KTO accuracy {accuracy['kto']:.2f}, margin {margin:.3g}; "
                  + ", ".join(f"{m} {a:.2f}" for m, a in accuracy.items() if m != "kto"),
                  accuracy["kto"] > 0.5,
                  f"{store['summary']['heldout']} held-out rows never trained on; accuracy = share of (desirable, "
                  "undesirable) pairs of a prompt ranked right by β·log πθ/πref (0.5 = chance)")
    return summary


def frontier_comparison(kto: list[list[float]], dpo: list[list[float]], tol: float = 0.05,
                        samples: int = 0) -> tuple[str, bool | None, str]:
    """Compare two measured (KL, reward rate[, step]) paths at matched KL: at every KL where both have measured
    points on either side (the overlap of their measured ranges), each method's rate is interpolated between its
    own neighbouring measurements (never from the reference point). Holds when KTO is above DPO, or below by at
    most ``tol`` or two standard errors of the difference of two rates measured on ``samples`` samples each
    (whichever is larger), at every matched KL; None when the measured KL ranges do not overlap."""
    import numpy as np

    def curve(path: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
        pts = sorted((float(p[0]), float(p[1])) for p in path)
        return np.array([k for k, _ in pts]), np.array([r for _, r in pts])

    (kk, kr), (dk, dr) = curve(kto), curve(dpo)
    if len(kk) == 0 or len(dk) == 0:
        return "no evaluations", None, ""
    lo, hi = max(kk.min(), dk.min()), min(kk.max(), dk.max())
    ranges = f"KTO measured at KL {kk.min():.2f}–{kk.max():.2f}, DPO at {dk.min():.2f}–{dk.max():.2f}"
    if lo > hi:
        return f"no matched KL: {ranges}", None, ("the two measured paths do not overlap in KL; more evaluations "
                                                 "(eval_every) or other β values would give a common range")
    grid = np.unique(np.concatenate([kk[(kk >= lo) & (kk <= hi)], dk[(dk >= lo) & (dk <= hi)]]))
    a, b = np.interp(grid, kk, kr), np.interp(grid, dk, dr)
    gap = a - b
    se = np.sqrt((a * (1 - a) + b * (1 - b)) / samples) if samples else np.zeros_like(gap)
    allowed = np.maximum(tol, 2 * se)
    worst = int(np.argmin(gap + allowed))
    measured = (f"at {len(grid)} matched KL value(s) in [{lo:.2f}, {hi:.2f}]: KTO − DPO reward rate from "
                f"{gap.min():+.2f} to {gap.max():+.2f} (tightest at KL {grid[worst]:.2f}: {gap[worst]:+.2f}, "
                f"allowed −{allowed[worst]:.2f}); {ranges}")
    return measured, bool(np.all(gap >= -allowed)), (
        f"each method's rate interpolated between its own measured checkpoints; a match when KTO is at most "
        f"max({tol}, 2 standard errors of the difference of two rates of {samples} samples) below")


EXPERIMENT = register(Experiment(
    name="kto",
    title="KTO: model alignment as prospect-theoretic optimization",
    description=__doc__.split("\n\n")[0] if __doc__ else "",
    config=KTOConfig,
    run=run,
    smoke={"pretrain_steps": 20, "pretrain_reviews": 256, "align_samples": 128, "align_steps": 3, "batch_size": 8,
           "eval_samples": 16, "eval_every": 3, "d_model": 32, "n_head": 2, "n_layer": 1, "threshold": 1},
    demo={"pretrain_steps": 500, "align_steps": 80, "eval_every": 20, "align_samples": 1024, "eval_samples": 192},
    key_metrics=("*/loss", "*/eval/reward_rate", "*/eval/kl"),
    distributed_note="the policies are trained one after another on one process; data-parallel alignment is "
                     "not implemented",
    preflight=preflight,
))
