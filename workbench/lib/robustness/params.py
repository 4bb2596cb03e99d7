"""The declared parameters of the robustness recipes, as groups a method's config composes.

:class:`SuiteParams` is the shared protocol (data, classifier, optimiser, loop, training, evaluation, claims);
:class:`MixingParams` the noisy feature mixing of NFM Eq. (2) (re-defaulted per method with
``MixingParams.with_defaults``); :class:`NFMNoiseParams` NFM's noise levels beside NoisyMix's in one config;
:class:`AugMixParams` AugMix (Hendrycks et al. 2020) and its Jensen–Shannon weight::

    class NFMConfig(MixingParams.with_defaults(add_noise=0.4, mult_noise=0.2), SuiteParams, Config): ...
"""
from __future__ import annotations

from workbench.core.params import ConfigError, LoopParams, OptimParams, Param, ParamGroup
from workbench.lib.data.catalog import ImageDataParams, image_datasets

__all__ = ["SuiteData", "ClassifierParams", "TrainingParams", "EvalParams", "ClaimParams", "SuiteParams",
           "MixingParams", "NFMNoiseParams", "AugMixParams", "NORMALISE", "AUGMENT", "AUGMIX_RECIPES",
           "check_augmix_recipes"]

#: how inputs are standardised inside the model (see :mod:`~workbench.lib.robustness.inputs`)
NORMALISE = ("dataset", "fixed", "none")
#: the standard augmentation of every recipe: none, random crop, random crop + horizontal flip
AUGMENT = ("none", "crop", "crop_flip")
#: the recipes that train on AugMix views (they need images)
AUGMIX_RECIPES = ("augmix", "augmix_jsd", "noisymix")


class SuiteData(ImageDataParams):
    """Any image dataset of the catalog, or two_moons (2-D points: decision boundaries instead of corruptions)."""

    title = "data"
    dataset: str = Param("digits", choices=image_datasets() + ("two_moons",),
                         doc="training data (two_moons: 2-D points, decision boundaries instead of corruptions)")
    train_size: int = Param(0, bounds=(0, 10_000_000), unit="images",
                            doc="training examples used: a fixed random subset of this size (0: all)")
    label_noise: float = Param(0.0, bounds=(0.0, 0.5), doc="fraction of training labels replaced by random ones")


class ClassifierParams(ParamGroup):
    """The classifier every recipe trains (the same initial weights for all)."""

    title = "model"
    arch: str = Param("auto", choices=("auto", "mlp", "cnn", "resnet"),
                      doc="classifier (auto: cnn for images, mlp for points; resnet: PreActResNet)")
    width: int = Param(0, bounds=(0, 1024), doc="model width (0: the architecture's default)")
    blocks: int = Param(2, bounds=(1, 4), doc="PreActResNet: blocks per stage, 4 stages (2: PreActResNet-18)")
    normalise: str = Param("dataset", choices=NORMALISE,
                           doc="inputs standardised inside the model, (x − mean)/std: per channel with the training "
                               "set's mean and std (NFM), with mean = std = 0.5 (NoisyMix's code), or not at all; input "
                               "mixing and NFM's white noise live in that space")


SuiteOptim = OptimParams.with_defaults(lr=0.05, weight_decay=5e-4,
                                       docs={"lr": "SGD learning rate (peak of the schedule)",
                                             "weight_decay": "SGD weight decay"})
SuiteLoop = LoopParams.with_defaults(steps=500, batch_size=128, eval_every=100,
                                     docs={"steps": "optimizer steps per recipe (same for all)",
                                           "eval_every": "clean accuracy on the fixed test subset (a training "
                                                         "curve) logged every N steps"})


class TrainingParams(ParamGroup):
    """The training protocol shared by every recipe."""

    title = "training"
    augment: str = Param("none", choices=AUGMENT,
                         doc="standard augmentation of every recipe (the papers: random crop + horizontal flip)")
    schedule: str = Param("cosine", choices=("cosine", "step"),
                          doc="learning-rate schedule: cosine to 0 (NoisyMix), or ×0.1 at 50%, 75% and 90% of the "
                              "steps (NFM: epochs 100, 150, 180 of 200)")
    momentum: float = Param(0.9, bounds=(0.0, 0.999), doc="SGD momentum (Nesterov when > 0)")
    prefetch: bool = Param(True, doc="prepare the next batch (crop/flip, AugMix views) in a worker thread while a "
                                     "step trains (same numbers either way)")


class EvalParams(ParamGroup):
    """What the final evaluation measures and on how many images."""

    title = "evaluation"
    eval_limit: int = Param(0, bounds=(0, 1_000_000), unit="images",
                            doc="test images for the corruption benchmark and the noise curves (0: all); the clean "
                                "accuracy always uses the full test set")
    corruption_set: str = Param("all", choices=("all", "standard", "noise"),
                                doc="corruptions evaluated: the 15 standard + 4 extra, the 15 standard, or none "
                                    "(NFM's noise curves are always measured)")
    curve_images: int = Param(1000, bounds=(1, 1_000_000), unit="images",
                              doc="size of the fixed test subset of the training curve")
    baseline_run: str = Param("", doc="a stored robustness run whose 'baseline' corruption table normalises "
                                      "mce_vs_run ('' : none)")


class ClaimParams(ParamGroup):
    """How the claims are decided."""

    title = "claims"
    margin: float = Param(0.02, bounds=(0.0, 1.0),
                          doc="non-inferiority margin of the clean-accuracy claims (accuracy points as a fraction)")


class SuiteParams(ClaimParams, EvalParams, TrainingParams, SuiteLoop, SuiteOptim, ClassifierParams, SuiteData):
    """Every parameter of the shared robustness protocol; a method's config adds its recipes and mixing (bases in
    reverse, so that forms list data, model, optimiser, loop, training, evaluation, claims in that order)."""

    def check(self) -> None:
        super().check()  # Config.check, later in a config's MRO
        if self.batch_size < 2:
            raise ConfigError(f"parameter 'batch_size' = {self.batch_size} is out of range; allowed range "
                              "[2, 65536] (batch normalisation and mixing need two examples)", "batch_size")
        if self.dataset == "two_moons" and self.arch in ("cnn", "resnet"):
            raise ConfigError("arch must be 'mlp' or 'auto' for two_moons (2-D points)", "arch")
        if self.dataset == "two_moons" and self.augment != "none":
            raise ConfigError("parameter 'augment' must be 'none' for two_moons (2-D points)", "augment")


class MixingParams(ParamGroup):
    """Noisy feature mixing (NFM Eq. (2)): λ ~ Beta(α, α), σ_add, σ_mult and the noise sparsity (NoisyMix)."""

    title = "mixing"
    alpha: float = Param(1.0, bounds=(0.0, 10.0), step=0.1, doc="λ ~ Beta(α, α) mixing concentration (0: no mixing)")
    add_noise: float = Param(0.4, bounds=(0.0, 5.0), step=0.05,
                             doc="σ_add, additive noise level (NoisyMix: ×1, ×2, ×3 per third)")
    mult_noise: float = Param(0.2, bounds=(0.0, 5.0), step=0.05, doc="σ_mult, multiplicative noise level")
    sparsity: float = Param(0.0, bounds=(0.0, 1.0), step=0.05, doc="probability of dropping each noise element")


class NFMNoiseParams(ParamGroup):
    """NFM's own noise levels where one config also holds NoisyMix's (``robustness_compare``)."""

    title = "NFM noise"
    nfm_add_noise: float = Param(0.4, bounds=(0.0, 5.0), step=0.05, doc="NFM's σ_add (NFM §5: 0.4)")
    nfm_mult_noise: float = Param(0.2, bounds=(0.0, 5.0), step=0.05, doc="NFM's σ_mult (NFM §5: 0.2)")


class AugMixParams(ParamGroup):
    """AugMix (Hendrycks et al. 2020, Algorithm 1) and the weight γ of its Jensen–Shannon loss (Eq. (1))."""

    title = "AugMix"
    augmix_severity: int = Param(3, bounds=(1, 10), doc="AugMix op severity")
    augmix_width: int = Param(3, bounds=(1, 8), doc="AugMix chains per image")
    augmix_depth: int = Param(-1, choices=(-1, 1, 2, 3), doc="ops per chain (-1: uniform in 1..3)")
    all_ops: bool = Param(False, doc="also use colour/contrast/brightness/sharpness (overlap the test corruptions)")
    jsd_weight: float = Param(12.0, bounds=(0.0, 100.0), soft=(0.0, 30.0),
                              doc="γ, weight of the Jensen–Shannon stability loss")


def check_augmix_recipes(dataset: str, variants: tuple[str, ...]) -> None:
    """AugMix recipes need images: a clear error naming ``variants`` on two_moons."""
    wanted = [v for v in AUGMIX_RECIPES if v in variants]
    if dataset == "two_moons" and wanted:
        raise ConfigError(f"parameter 'variants': {', '.join(wanted)} need an image dataset, not two_moons (dataset)",
                          "variants")
