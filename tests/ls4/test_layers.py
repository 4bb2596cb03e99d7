"""S4 layers: convolution mode equals recurrent step mode in float64 for every layer type; causality; Δ init;
the state-space parameters' own optimizer group."""
import math

import pytest
import torch

from workbench.methods.ls4.layers import SSM, S4Block, S4Stack, param_groups, stepping

TOL = 1e-10


def _run_steps(module, u, aux=None):
    state = module.default_state(u.shape[0])
    outs = []
    with stepping(module):
        for t in range(u.shape[1]):
            if isinstance(module, SSM):
                y, state = module.step([u[:, t]] + ([aux[:, t]] if aux is not None else []), state)
            else:
                y, state = module.step(u[:, t], state, None if aux is None else aux[:, t])
            outs.append(y)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("kind", ["s4d", "dplr"])
@pytest.mark.parametrize("n_inputs", [1, 2])
def test_ssm_convolution_equals_recurrence(kind, n_inputs):
    torch.manual_seed(0)
    ssm = SSM(4, 6, kind, n_inputs=n_inputs).double()
    with torch.no_grad():  # spread Δ so slow and fast channels are both exercised
        ssm.log_dt.copy_(torch.log(torch.tensor([1e-3, 1e-2, 0.1, 0.5], dtype=torch.float64)))
    u = torch.randn(3, 70, 4, dtype=torch.float64)
    aux = torch.randn(3, 70, 4, dtype=torch.float64) if n_inputs == 2 else None
    conv = ssm(u) if aux is None else ssm(u, aux)
    assert (conv - _run_steps(ssm, u, aux)).abs().max() < TOL


@pytest.mark.parametrize("kind", ["s4d", "dplr"])
@pytest.mark.parametrize("joint", [False, True])
def test_block_and_stack_convolution_equal_recurrence(kind, joint):
    torch.manual_seed(1)
    block = S4Block(5, 4, kind, joint=joint).double()
    u, aux = torch.randn(2, 40, 5, dtype=torch.float64), torch.randn(2, 40, 5, dtype=torch.float64)
    a = aux if joint else None
    assert (block(u, a) - _run_steps(block, u, a)).abs().max() < TOL
    stack = S4Stack(3, 6, 2, layers=3, state=4, kind=kind, aux_in=2 if joint else 0).double()
    u, aux = torch.randn(2, 40, 3, dtype=torch.float64), torch.randn(2, 40, 2, dtype=torch.float64)
    a = aux if joint else None
    assert (stack(u, a) - _run_steps(stack, u, a)).abs().max() < TOL


@pytest.mark.parametrize("kind", ["s4d", "dplr"])
def test_outputs_do_not_depend_on_later_inputs(kind):
    torch.manual_seed(2)
    stack = S4Stack(2, 8, 3, layers=2, state=4, kind=kind, aux_in=2).double()
    u, aux = torch.randn(2, 30, 2, dtype=torch.float64), torch.randn(2, 30, 2, dtype=torch.float64)
    y = stack(u, aux)
    for t in (0, 11, 28):
        u2, aux2 = u.clone(), aux.clone()
        u2[:, t + 1:] += 5 * torch.randn_like(u2[:, t + 1:])
        aux2[:, t + 1:] -= 3.0
        y2 = stack(u2, aux2)
        assert (y2[:, : t + 1] - y[:, : t + 1]).abs().max() < TOL
        assert (y2[:, t + 1:] - y[:, t + 1:]).abs().max() > 1e-3


def test_log_dt_is_uniform_in_the_declared_range():
    torch.manual_seed(3)
    ssm = SSM(4000, 2, "s4d")
    dt = ssm.dt()
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1
    lo, hi = math.log(1e-3), math.log(1e-1)
    assert abs(ssm.log_dt.detach().mean().item() - (lo + hi) / 2) < 0.1  # uniform in log space: mean at the midpoint


def test_state_space_parameters_get_their_own_rate_and_no_weight_decay():
    stack = S4Stack(2, 4, 2, layers=2, state=3, kind="dplr", aux_in=1)
    groups = param_groups(stack, lr=1e-2, ssm_lr=1e-3, weight_decay=0.1)
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in stack.parameters())  # each exactly once
    ssm_group = [g for g in groups if g["lr"] == 1e-3]
    assert len(ssm_group) == 1 and ssm_group[0]["weight_decay"] == 0.0
    names = {n.split(".")[-1] for n, p in stack.named_parameters() if any(p is q for q in ssm_group[0]["params"])}
    assert names == {"log_dt", "a_log_re", "a_im", "P", "B"}
    opt = torch.optim.AdamW(groups)
    assert len(opt.param_groups) == len(groups)


def test_stepping_cache_is_dropped_after_sampling():
    ssm = SSM(2, 3, "dplr")
    with stepping(ssm):
        assert ssm._cache is not None
    assert ssm._cache is None
    with pytest.raises(ValueError, match="kind"):
        SSM(2, 3, "s5")
