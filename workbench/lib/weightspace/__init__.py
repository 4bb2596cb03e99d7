"""Weight spaces of feedforward networks: a typed container, permutation symmetries, model zoos and SIRENs.

Public API::

    from workbench.lib.weightspace import WeightSpace, NetworkSpec
    ws = WeightSpace.from_mlp(torch.nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    ws.permute(0, torch.randperm(8)).to_mlp(nn.ReLU())       # the same function
    zoo = train_zoo(ZooArch("mlp", (64, 16, 16, 10)), x, y, x_test, y_test, n=300, steps=300)
    sirens, mse = fit_sirens(images, siren_init(siren_spec(1)), steps=300)
"""
from .functional import batched_conv2d, batched_linear, batched_mlp, mixed_activation
from .siren import (
    OMEGA_0,
    Sine,
    coordinate_grid,
    fit_sirens,
    image_targets,
    psnr,
    render,
    render_images,
    siren_init,
    siren_module,
    siren_spec,
)
from .space import WeightSpace, parameter_names, weighted_layers
from .spec import NetworkSpec
from .zoo import (
    ARCHS,
    Zoo,
    ZooArch,
    ZooHparams,
    ZooTrainer,
    check_small_cnn_zoo,
    corrupt_labels,
    export_small_cnn_zoo,
    init_weights,
    load_small_cnn_zoo,
    sample_hparams,
    train_zoo,
)

__all__ = [
    "WeightSpace", "NetworkSpec", "parameter_names", "weighted_layers",
    "batched_linear", "batched_mlp", "batched_conv2d", "mixed_activation",
    "OMEGA_0", "Sine", "coordinate_grid", "fit_sirens", "image_targets", "psnr", "render", "render_images",
    "siren_init", "siren_module", "siren_spec",
    "ARCHS", "Zoo", "ZooArch", "ZooHparams", "ZooTrainer", "check_small_cnn_zoo", "corrupt_labels",
    "export_small_cnn_zoo", "init_weights",
    "load_small_cnn_zoo", "sample_hparams", "train_zoo",
]
