"""KTO (Ethayarajh et al. 2024) and the human-aware losses it is compared with; the reward-vs-KL frontier
comparison its claims use; the builders that ``runs.load_model`` calls to rebuild a saved reference or policy."""
from workbench.methods.kto.claims import frontier_claim, matched_gap
from workbench.methods.kto.losses import (
    BAD_TOKEN,
    GOOD_TOKEN,
    cdpo_loss,
    check_kto_weights,
    csft_prompt,
    dpo_loss,
    implied_rewards,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    kto_z0_loss,
    mismatched_indices,
    ppo_offline_loss,
    ratio_rule_desirable_weight,
    sft_loss,
    slic_loss,
)
from workbench.methods.kto.model import build_hf_lm, build_tiny_lm
from workbench.methods.kto.train import ranking_accuracy

__all__ = [
    "BAD_TOKEN",
    "GOOD_TOKEN",
    "build_hf_lm",
    "build_tiny_lm",
    "cdpo_loss",
    "check_kto_weights",
    "csft_prompt",
    "dpo_loss",
    "frontier_claim",
    "implied_rewards",
    "ipo_loss",
    "kto_loss",
    "kto_reference_point",
    "kto_z0_loss",
    "matched_gap",
    "mismatched_indices",
    "ppo_offline_loss",
    "ranking_accuracy",
    "ratio_rule_desirable_weight",
    "sft_loss",
    "slic_loss",
]
