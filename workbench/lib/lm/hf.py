"""The :class:`~workbench.lib.lm.core.CausalLM` interface over a Hugging Face ``AutoModelForCausalLM``.

Needs the optional ``transformers`` package (the ``hf`` extra). Models load from a local directory
or the hub; on CUDA they load in bf16 when the GPU supports it, otherwise float32.
"""
from __future__ import annotations

import os

from typing import Any, Sequence

import torch
from torch import Tensor

from workbench.lib.lm.core import CausalLM
from workbench.lib.lm.model import ModelOutput, positions_from_mask


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the Hugging Face backend needs `transformers` (pip install 'workbench[hf]')") from exc
    return transformers


class HFLM(CausalLM):
    """A Hugging Face causal LM and its tokenizer behind the common scoring/sampling interface.

    Dropout is switched off unless ``disable_dropout=False``. Prompts are encoded with the
    tokenizer's special tokens (``<bos>`` where it adds one; a
    tokenizer that adds nothing gets its bos, else eos, token in front of an empty prompt);
    completions without. Positions are passed explicitly from the attention mask.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, disable_dropout: bool = True,
                 fuse_activations: bool = True):
        super().__init__()
        if disable_dropout:  # as TRL does: the policy must equal the reference at the start of alignment
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        if fuse_activations:
            fuse_gelu(model)
        self.net = model
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no eos token")
        self.eos_id = int(eos)
        self.pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else self.eos_id
        bos = tokenizer.bos_token_id
        self.bos_id = int(bos) if bos is not None else self.eos_id
        cfg = model.config
        self.context = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        self.hidden_size = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | torch.device | None = None,
                        dtype: torch.dtype | str | None = "auto", disable_dropout: bool = True,
                        **kwargs: Any) -> "HFLM":
        """Load model + tokenizer from a local directory or a hub id.

        dtype "auto": bf16 on a CUDA device that supports it, else float32.
        """
        tf = _require_transformers()
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if dtype == "auto":
            bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if bf16 else torch.float32
        check_model(name_or_path)
        tokenizer = tf.AutoTokenizer.from_pretrained(name_or_path)
        model = tf.AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, **kwargs)
        return cls(model, tokenizer, disable_dropout=disable_dropout).to(device)

    @property
    def banned_ids(self) -> list[int]:
        return sorted(set(int(i) for i in self.tokenizer.all_special_ids) - {self.eos_id})

    def encode_prompt(self, prompt: str) -> list[int]:
        ids = list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        return ids if ids else [self.bos_id]

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, return_hidden: bool = False) -> ModelOutput:
        out = self.net(
            input_ids=input_ids,
            attention_mask=attention_mask.long(),
            position_ids=positions_from_mask(attention_mask),
            output_hidden_states=return_hidden,
            use_cache=False,
        )
        hidden = out.hidden_states[-1] if return_hidden else None
        return ModelOutput(logits=out.logits, hidden=hidden)

    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor, cache: Any = None) -> tuple[Tensor, Any]:
        """Incremental decoding with the model's key/value cache (positions from the attention mask)."""
        positions = positions_from_mask(attention_mask)
        if cache is None:
            out = self.net(input_ids=input_ids, attention_mask=attention_mask.long(), position_ids=positions,
                           use_cache=True)
        else:
            out = self.net(input_ids=input_ids[:, -1:], attention_mask=attention_mask.long(),
                           position_ids=positions[:, -1:], past_key_values=cache, use_cache=True)
        return out.logits[:, -1], out.past_key_values

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def tiny_gpt2(directory: str, words: Sequence[str], n_layer: int = 2, n_embd: int = 32, n_head: int = 2,
              n_positions: int = 64, seed: int = 0) -> str:
    """Build and save a randomly initialised GPT-2-shaped model with a word-level tokenizer (offline).

    For tests and benchmarks: no download. Returns ``directory``, loadable by :meth:`HFLM.from_pretrained`.
    """
    tf = _require_transformers()
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + [w for w in dict.fromkeys(words) if w not in specials])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins word-level tokens with spaces
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                      eos_token="<eos>", unk_token="<unk>")
    config = tf.GPT2Config(vocab_size=len(vocab), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                           n_head=n_head, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation; the caller's global generator is left alone
        torch.manual_seed(seed)
        model = tf.GPT2LMHeadModel(config)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def fuse_gelu(model: torch.nn.Module) -> int:
    """Replace Hugging Face's tanh-approximated GELU modules (``gelu_new``: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))),
    written as five elementwise ops) by PyTorch's fused ``GELU(approximate="tanh")``, the same function in one kernel
    (equal to within float rounding, ~1e-7); a third of a small GPT-2's forward time on a CPU. Returns the count."""
    try:
        from transformers.activations import GELUTanh, NewGELUActivation
    except ImportError:  # pragma: no cover - an older or newer transformers without these names
        return 0
    count = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) in (NewGELUActivation, GELUTanh):
                setattr(parent, name, torch.nn.GELU(approximate="tanh"))
                count += 1
    return count


def check_model(name_or_path: str) -> None:
    """Raise :class:`~workbench.core.errors.ModelNotFound` (one line) unless ``name_or_path`` is a loadable Hugging Face
    model here: a local directory with its config, or a hub id that is cached or reachable (reads only the config)."""
    from workbench.core.errors import ModelNotFound

    from workbench.lib.data.sources import hub_offline, hub_reachable

    tf = _require_transformers()
    local_only = os.path.isdir(name_or_path) or hub_offline() or not hub_reachable()  # no retry loop offline
    try:
        tf.AutoConfig.from_pretrained(name_or_path, local_files_only=local_only)
    except Exception as err:  # noqa: BLE001 - OSError, ValueError...: one line naming the model
        lines = str(err).strip().splitlines()
        reason = lines[0][:200] if lines else type(err).__name__
        raise ModelNotFound(f"model = {name_or_path!r} cannot be loaded ({reason}); give a local directory holding a "
                            "Hugging Face causal LM (config.json, weights, tokenizer), or a hub id when online") from err
