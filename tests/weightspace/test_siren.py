"""SIRENs: initialisation bounds, two rendering paths agree, batched fitting equals fitting one at a time."""
import math

import torch

from workbench.lib.weightspace import (
    Sine,
    WeightSpace,
    coordinate_grid,
    fit_sirens,
    psnr,
    render,
    render_images,
    siren_init,
    siren_module,
    siren_spec,
)


def test_siren_init_follows_the_papers_bounds():
    spec = siren_spec(1)
    ws = siren_init(spec, torch.Generator().manual_seed(0))
    assert ws.spec.dims == (2, 32, 32, 1)
    assert float(ws.weights[0].abs().max()) <= 1 / 2
    bound = math.sqrt(6 / 32) / 30
    assert float(ws.weights[1].abs().max()) <= bound and float(ws.weights[1].abs().max()) > 0.8 * bound
    assert float(ws.biases[1].abs().max()) <= 1 / math.sqrt(32)


def test_render_equals_the_module_with_sine_activations():
    spec = siren_spec(3)
    ws = WeightSpace.cat([siren_init(spec, torch.Generator().manual_seed(s), dtype=torch.float64) for s in range(2)])
    coords = coordinate_grid(5, 4, torch.float64)
    assert coords.shape == (20, 2) and coords[0].tolist() == [-1.0, -1.0] and coords[-1].tolist() == [1.0, 1.0]
    out = render(ws, coords)
    net = ws.to_mlp(Sine(30.0), index=1)
    assert torch.allclose(out[1], net(coords), atol=1e-12)
    assert torch.allclose(ws.functional_call(siren_module(spec).double(), coords)[1], net(coords), atol=1e-12)
    img = render_images(ws, 5, 4)
    assert img.shape == (2, 3, 5, 4) and float(img.min()) >= 0 and float(img.max()) <= 1


def test_batched_fit_equals_one_at_a_time_and_fits():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64)
    init = siren_init(siren_spec(1, hidden=16), torch.Generator().manual_seed(1), dtype=torch.float64)
    fitted, mse = fit_sirens(images, init, steps=40, lr=1e-3, chunk=2)  # two chunks: 2 + 1 images
    assert fitted.batch_size == 3 and mse.shape == (3,)
    for i in range(3):
        alone, mse_i = fit_sirens(images[i:i + 1], init, steps=40, lr=1e-3)
        assert alone.allclose(fitted[i], atol=1e-12, rtol=0)
        assert abs(float(mse_i[0]) - float(mse[i])) < 1e-14
    start = ((render(init, coordinate_grid(6, 6, torch.float64)) - (images.reshape(3, 36, 1) * 2 - 1)) ** 2).mean()
    assert float(mse.mean()) < 0.1 * float(start)  # noise images get fitted too: 36 pixels, ~600 parameters
    assert float(psnr(mse).min()) > 15


def test_permuted_siren_renders_the_same_image():
    ws = siren_init(siren_spec(1), torch.Generator().manual_seed(0), dtype=torch.float64)
    perms = ws.random_permutations(torch.Generator().manual_seed(1))
    coords = coordinate_grid(8, 8, torch.float64)
    assert torch.allclose(render(ws.permute_all(perms), coords), render(ws, coords), atol=1e-12)
