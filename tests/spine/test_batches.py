import torch

from workbench.core.batches import IndexBatches


def test_epochs_cover_everything_once():
    b = IndexBatches(10, 3, seed=1)
    seen = torch.cat([next(b) for _ in range(3)])
    assert sorted(seen.tolist()) == sorted(set(seen.tolist())) and len(seen) == 9
    assert b.steps_per_epoch == 3
    nxt = next(b)  # new epoch, new permutation
    assert b.epoch == 1 and len(nxt) == 3


def test_state_round_trip_reproduces_the_stream():
    a = IndexBatches(17, 4, seed=5)
    for _ in range(7):
        next(a)
    state = a.state_dict()
    expected = [next(a).tolist() for _ in range(6)]
    b = IndexBatches(17, 4, seed=5)
    b.load_state_dict(state)
    assert [next(b).tolist() for _ in range(6)] == expected


def test_shards_partition_the_global_batch():
    full = IndexBatches(20, 6, seed=2)
    shards = [IndexBatches(20, 6, seed=2, rank=r, world_size=2) for r in range(2)]
    for _ in range(5):
        g = next(full)
        parts = [next(s) for s in shards]
        assert sorted(torch.cat(parts).tolist()) == sorted(g.tolist())


def test_run_state_restores_in_place_so_earlier_references_stay_live():
    from workbench.core.context import RunState

    state = RunState({"rows": [], "meta": {"seen": []}})
    rows, seen = state["rows"], state["meta"]["seen"]  # taken before the phase resumes
    saved = RunState({"rows": [1, 2], "meta": {"seen": ["a"]}, "extra": 3}).state_dict()
    state.load_state_dict(saved)
    rows.append(3)
    assert state["rows"] == [1, 2, 3] and seen == ["a"] and state["extra"] == 3
    state.load_state_dict({"rows": []})
    assert "meta" not in state and rows == []
