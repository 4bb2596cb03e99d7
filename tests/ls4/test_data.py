"""Time-series sources: seeded sharp-transition generators, the Monash .tsf reader, packaged series, and errors that
say what to install or where to put a file."""
import builtins

import numpy as np
import pytest
import torch

from workbench.methods.ls4 import data as D


def test_generators_are_seeded_and_sharp():
    for kind in D.SYNTHETIC:
        a = D.synthetic(kind, 16, 50, torch.Generator().manual_seed(1))
        b = D.synthetic(kind, 16, 50, torch.Generator().manual_seed(1))
        c = D.synthetic(kind, 16, 50, torch.Generator().manual_seed(2))
        assert a.shape == (16, 50, 1) and torch.equal(a, b) and not torch.equal(a, c)
        jumps = (a[:, 1:] - a[:, :-1]).abs()
        assert jumps.max() > 1.5  # a transition of (nearly) the full range within one step
    sq = D.square_wave(8, 60, torch.Generator().manual_seed(0))
    assert set(sq.unique().tolist()) == {-1.0, 1.0}
    tel = D.telegraph(400, 200, torch.Generator().manual_seed(0), rate=(0.05, 0.05))
    assert abs((tel[:, 1:] != tel[:, :-1]).double().mean().item() - 0.05) < 0.005
    saw = D.sawtooth(4, 80, torch.Generator().manual_seed(0))
    d = saw[:, 1:] - saw[:, :-1]
    assert (d > 0).double().mean() > 0.8 and d.min() < -1.5  # slow rises, sudden drops
    with pytest.raises(ValueError, match="unknown synthetic"):
        D.synthetic("sine", 2, 10, torch.Generator())


def test_load_split_and_missing_values():
    ts = D.load("square", n=40, length=20, generator=torch.Generator().manual_seed(3), noise=0.1, missing_rate=0.3)
    assert ts.x.shape == (40, 20, 1) and ts.mask.dtype == torch.bool
    assert abs(ts.mask.float().mean().item() - 0.7) < 0.05 and (ts.x[~ts.mask] == 0).all()
    train, test = D.split(ts, 0.25, torch.Generator().manual_seed(3))
    assert len(train) == 30 and len(test) == 10
    again = D.split(D.load("square", n=40, length=20, generator=torch.Generator().manual_seed(3), noise=0.1,
                           missing_rate=0.3), 0.25, torch.Generator().manual_seed(3))[1]
    assert torch.equal(test.x, again.x)
    with pytest.raises(ValueError, match="unknown time-series source"):
        D.load("weather")


TSF = """# a tiny Monash-style file
@relation tiny
@attribute series_name string
@attribute start_timestamp date
@frequency daily
@horizon 7
@missing true
@equallength false
@data
T1:2020-01-01 00-00-00:1,2,3,4,5,6,7,8,9,10
T2:2020-01-01 00-00-00:5,?,4,3,2,1,0,1,2,3,4,5
"""


def test_tsf_reader_and_windows(tmp_path):
    path = tmp_path / "tiny.tsf"
    path.write_text(TSF)
    series, meta = D.read_tsf(path)
    assert [s["series_name"] for s in series] == ["T1", "T2"] and meta["frequency"] == "daily"
    assert meta["horizon"] == "7" and meta["attributes"][1] == ("start_timestamp", "date")
    assert series[0]["values"].tolist() == list(range(1, 11)) and np.isnan(series[1]["values"][1])
    ts = D.load("tsf", n=6, length=5, generator=torch.Generator().manual_seed(0), tsf_path=str(path))
    assert ts.x.shape == (6, 5, 1) and not ts.mask.all()  # the '?' stays missing
    with pytest.raises(D.MissingSource, match="forecastingdata.org"):
        D.read_tsf(tmp_path / "absent.tsf")
    with pytest.raises(ValueError, match="length"):
        D.load("tsf", n=2, length=50, tsf_path=str(path))


def test_packaged_series_say_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_statsmodels(name, *args, **kwargs):
        if name.startswith("statsmodels"):
            raise ImportError("no statsmodels here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_statsmodels)
    with pytest.raises(D.MissingSource, match="pip install statsmodels"):
        D.load("co2", n=4, length=16)


def test_packaged_series_when_installed():
    pytest.importorskip("statsmodels")
    co2 = D.load("co2", n=30, length=32)
    assert co2.x.shape == (30, 32, 1) and co2.channels == ["co2"]
    macro = D.load("macrodata", n=10, length=24)
    assert macro.x.shape == (10, 24, 5) and macro.mask.all()
    full = D.packaged_series("co2")[0]
    assert np.isnan(full).sum() == 59  # the weeks Mauna Loa did not report stay missing
