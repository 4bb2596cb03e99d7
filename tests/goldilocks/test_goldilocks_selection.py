"""Selectors, irreducible-loss table, noise settings and replay, on tiny synthetic data."""
import pytest
import torch
from torch import nn

from workbench.methods.goldilocks import (
    SELECTORS,
    Candidates,
    IndexedDataset,
    IrreducibleLossTable,
    IrreducibleTrainer,
    apply_noise,
    duplicate_points,
    fit_irreducible,
    make_selector,
    per_point_loss,
    reducible_loss_select,
    split_holdout,
    structured_label_noise,
    uniform_label_noise,
)

C = 4


class Tiny(nn.Module):
    """A stages/head classifier like the workbench models."""

    def __init__(self, d: int = 6, hidden: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.stages = nn.ModuleList([nn.Sequential(nn.Linear(d, hidden), nn.ReLU())])
        self.head = nn.Linear(hidden, C)

    def forward(self, x):
        for s in self.stages:
            x = s(x)
        return self.head(x)


def blobs(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(C, (n,), generator=g)
    centres = torch.randn(C, 6, generator=torch.Generator().manual_seed(123)) * 3
    x = centres[y] + torch.randn(n, 6, generator=g)
    return x, y


def candidates(x, y, il=None, n=32, seed=0):
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return Candidates(idx, x[idx], y[idx], None if il is None else il[idx])


def test_every_selector_runs_and_returns_k_distinct_points():
    x, y = blobs(200)
    il = torch.rand(200)
    model = Tiny()
    cand = candidates(x, y, il)
    seq = torch.arange(30).view(3, 10)
    for name in SELECTORS:
        sel = make_selector(name, sequence=seq, temperature=0.5, mc_samples=4)
        out = sel.select(model, cand, 8, step=1, generator=torch.Generator().manual_seed(0))
        assert out.index.numel() == 8, name
        assert out.index.unique().numel() == 8, name
        if name == "replay":
            assert out.index.tolist() == list(range(10, 18))
        else:
            assert set(out.index.tolist()) <= set(cand.index.tolist()), name
            assert torch.equal(cand.index[out.position], out.index), name
    with pytest.raises(ValueError, match="selection"):
        make_selector("nope")


def test_selectors_restore_model_mode_and_eval_flag():
    x, y = blobs(64)
    model = Tiny().train()
    cand = candidates(x, y, torch.zeros(64))
    make_selector("rho_loss", eval_mode=True).select(model, cand, 4)
    assert model.training
    model.eval()
    make_selector("train_loss").select(model, cand, 4)
    assert not model.training


def test_rho_loss_selector_equals_functional_rule():
    x, y = blobs(100)
    il = torch.rand(100)
    model = Tiny()
    cand = candidates(x, y, il, n=40)
    out = make_selector("rho_loss").select(model, cand, 5)
    with torch.no_grad():
        train_loss = per_point_loss(model(cand.x), cand.y)
    assert out.position.tolist() == reducible_loss_select(train_loss, cand.irreducible_loss, 5).tolist()


def test_split_holdout_is_a_deterministic_partition():
    a, b = split_holdout(101, 0.5, torch.Generator().manual_seed(3))
    a2, b2 = split_holdout(101, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert len(b) == 50 and sorted(torch.cat([a, b]).tolist()) == list(range(101))
    with pytest.raises(ValueError, match="holdout_fraction"):
        split_holdout(10, 1.0, torch.Generator())


def test_precomputed_irreducible_losses_match_live_and_best_checkpoint_is_kept():
    x, y = blobs(300, seed=1)
    train_idx, hold_idx = split_holdout(300, 0.5, torch.Generator().manual_seed(0))
    model = Tiny(seed=2)
    trainer = IrreducibleTrainer(model, x[train_idx], y[train_idx], lr=1e-2)
    fit_irreducible(trainer, x[hold_idx], y[hold_idx], range(60), 32, torch.Generator().manual_seed(0), eval_every=10)
    assert len(trainer.history) == 6
    assert trainer.best_loss == min(trainer.history)
    ds = IndexedDataset(x[train_idx], y[train_idx])
    table = IrreducibleLossTable.compute(model, ds.x, ds.y, batch_size=17)
    # restored weights are the best checkpoint
    assert abs(float(table.losses.mean()) - trainer.best_loss) < 1e-5
    index, xb, yb = ds.batch(torch.tensor([5, 0, 77, 5, 140]))
    model.eval()
    with torch.no_grad():
        live = per_point_loss(model(xb), yb)
    assert torch.allclose(table[index], live, atol=1e-6)
    i, xi, yi = ds[77]
    assert i == 77 and torch.equal(xi, x[train_idx][77])


def test_perfect_irreducible_model_never_selects_corrupted_points():
    n = 400
    true_y = torch.randint(C, (n,), generator=torch.Generator().manual_seed(0))
    noisy, corrupted = uniform_label_noise(true_y, 0.2, C, torch.Generator().manual_seed(1))
    x = torch.nn.functional.one_hot(true_y, C).float()
    oracle = nn.Linear(C, C, bias=False)  # perfect on clean points: logits 30·onehot(true label)
    with torch.no_grad():
        oracle.weight.copy_(30 * torch.eye(C))
    table = IrreducibleLossTable.compute(oracle, x, noisy)
    assert (table.losses[~corrupted] < 1e-6).all() and (table.losses[corrupted] > 25).all()
    target = nn.Sequential(nn.Linear(C, 8), nn.Tanh(), nn.Linear(8, C))
    sel = make_selector("rho_loss")
    g = torch.Generator().manual_seed(2)
    for step in range(20):
        idx = torch.randperm(n, generator=g)[:64]
        cand = Candidates(idx, x[idx], noisy[idx], table[idx])
        k = min(16, int((~corrupted[idx]).sum()))
        out = sel.select(target, cand, k)
        assert not corrupted[out.index].any()
    # training-loss selection, by contrast, does pick corrupted points
    picked = make_selector("train_loss").select(target, Candidates(torch.arange(n), x, noisy, None), 40).index
    assert corrupted[picked].any()


def test_replay_reproduces_the_recorded_order():
    x, y = blobs(120)
    il = torch.rand(120)
    model = Tiny()
    sel = make_selector("rho_loss")
    recorded = []
    for step in range(5):
        recorded.append(sel.select(model, candidates(x, y, il, seed=step), 6).index)
    seq = torch.stack(recorded)
    replay = make_selector("replay", sequence=seq)
    for step in range(5):
        assert torch.equal(replay.select(model, None, 6, step=step).index, seq[step])
    with pytest.raises(ValueError, match="past its end"):
        replay.select(model, None, 6, step=5)
    assert torch.equal(make_selector("replay", sequence=seq, cycle=True).select(model, None, 6, step=7).index, seq[2])


def test_uniform_label_noise_is_exact_and_recorded():
    y = torch.arange(1000) % 10
    noisy, corrupted = uniform_label_noise(y, 0.2, 10, torch.Generator().manual_seed(0))
    assert int(corrupted.sum()) == 200
    assert (noisy[corrupted] != y[corrupted]).all() and torch.equal(noisy[~corrupted], y[~corrupted])
    again, _ = uniform_label_noise(y, 0.2, 10, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    with pytest.raises(ValueError, match="noise_rate"):
        uniform_label_noise(y, 1.5, 10, torch.Generator())


def test_structured_noise_follows_the_class_mapping():
    y = torch.arange(500) % 5
    noisy, corrupted = structured_label_noise(y, 0.1, 5, torch.Generator().manual_seed(0))
    for c in range(5):
        in_c = y == c
        assert int(corrupted[in_c].sum()) == 10
        assert (noisy[in_c & corrupted] == (c + 1) % 5).all()


def test_duplicates_and_ambiguous_points_are_recorded():
    x, y = blobs(100)
    x2, y2, dup = duplicate_points(x, y, 0.3, torch.Generator().manual_seed(0))
    assert int(dup.sum()) == 30
    kept = x[~dup]
    for i in dup.nonzero().flatten().tolist():
        assert (kept == x2[i]).all(-1).any()
    data = apply_noise(x, y, C, kind="uniform", rate=0.1, ambiguous_rate=0.1, duplicate_rate=0.1, generator=torch.Generator().manual_seed(0))
    assert int(data.corrupted.sum()) == 10 and int(data.ambiguous.sum()) == 10 and int(data.duplicated.sum()) == 10
    assert torch.equal(data.corrupted, data.y != data.true_y)


def test_mc_dropout_bald_is_zero_without_dropout_and_positive_with_it():
    x, y = blobs(50)
    model = Tiny()
    cand = candidates(x, y, n=20)
    g = torch.Generator().manual_seed(0)
    none = make_selector("bald", dropout=0.0, mc_samples=5).select(model, cand, 3, generator=g)
    assert torch.allclose(none.scores, torch.zeros(20), atol=1e-6)
    some = make_selector("bald", dropout=0.5, mc_samples=5).select(model, cand, 3, generator=g)
    assert (some.scores > 1e-6).all()
    # entropy with no dropout is the entropy of the model's softmax
    ent = make_selector("entropy", dropout=0.0, mc_samples=3).select(model, cand, 3, generator=g)
    with torch.no_grad():
        p = model(cand.x).softmax(-1)
    assert torch.allclose(ent.scores, -(p * p.log()).sum(-1), atol=1e-5)


def test_fused_rho_loss_path_equals_the_generic_score_then_choose_path_with_ties():
    x, y = blobs(100, seed=3)
    model = Tiny(seed=1)
    cand = candidates(x, y, torch.zeros(100), n=48)
    with torch.no_grad():
        loss = per_point_loss(model(cand.x), cand.y)
    # irreducible losses that tie many reducible losses exactly (Eq. 3: score = train − irreducible)
    cand.irreducible_loss = loss - torch.tensor([0.5, 0.25, 1.0])[torch.arange(48) % 3]
    sel = make_selector("rho_loss")
    fused = sel.select(model, cand, 20)
    generic = super(type(sel), sel).select(model, cand, 20)  # Selector.select: score → choose
    for a, b in ((fused.position, generic.position), (fused.index, generic.index), (fused.scores, generic.scores),
                 (fused.train_loss, generic.train_loss)):
        assert torch.equal(a, b)
    # ties (score 1.0 at positions 2, 5, 8, ...) go to the earlier position, after every higher score
    assert fused.position[:16].tolist() == list(range(2, 48, 3))
    assert fused.position[16:].tolist() == [0, 3, 6, 9]
    uniform = make_selector("uniform").select(model, cand, 5)
    assert torch.equal(uniform.index, cand.index[:5]) and uniform.position.tolist() == list(range(5))


def test_draws_flag_says_which_selectors_use_the_generator():
    x, y = blobs(80, seed=4)
    model = Tiny(seed=3)  # no dropout of its own: the MC-dropout selectors draw their masks from the generator
    cand = candidates(x, y, torch.rand(80), n=40)
    seq = torch.arange(40).view(4, 10)
    for name, cls in SELECTORS.items():
        sel = make_selector(name, sequence=seq, temperature=5.0, mc_samples=4, dropout=0.5)
        runs = [sel.select(model, cand, 10, step=1, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
        same = torch.equal(runs[0].index, runs[1].index) and (
            runs[0].scores is None or torch.equal(runs[0].scores, runs[1].scores))
        assert same != cls.draws, name  # a selector that draws must say so: train.py gives it a stream only then
        if not cls.draws:
            assert torch.equal(sel.select(model, cand, 10, step=1, generator=None).index, runs[0].index), name


def test_loss_block_sum_accumulates_in_place_without_touching_the_callers_loss():
    from workbench.methods.goldilocks.train import MethodRecord

    rec = MethodRecord(C)
    losses = [torch.tensor(1.0, requires_grad=True) * 1.0, torch.tensor(2.0), torch.tensor(6.0)]
    for loss in losses:
        rec.add_loss(loss)
    assert rec.take_loss() == 3.0 and rec.take_loss() is None
    assert [float(v.detach()) for v in losses] == [1.0, 2.0, 6.0]  # the sum never aliases a step's loss
    rec.add_loss(torch.tensor(4.0))
    state = rec.state_dict()
    restored = MethodRecord(C)
    restored.load_state_dict(state)  # a float sum from the checkpoint, then tensors
    restored.add_loss(torch.tensor(2.0))
    assert restored.take_loss() == 3.0


def test_score_buffer_rows_hold_candidate_and_selected_scores():
    from workbench.methods.goldilocks.train import _ScoreBuffer

    buf = _ScoreBuffer()
    scores = torch.tensor([0.5, -1.0, 2.0, 0.0])
    for _ in range(3):
        buf.add(scores, torch.tensor([2, 0]))
    assert torch.equal(buf.sel[:3], torch.tensor([[2.0, 0.5]] * 3)) and torch.equal(buf.cand[1], scores)
    hist = buf.take(step=3, bins=4)
    assert hist["steps"] == 3 and sum(hist["candidates"]) == 12 and sum(hist["selected"]) == 6
    buf.add(scores.double(), torch.tensor([1, 3]))  # another dtype is cast into the buffer
    assert buf.sel[0].tolist() == [-1.0, 0.0]
