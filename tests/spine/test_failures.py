"""Failures a user can act on: one clear line on the command line, exit code, the traceback kept in the run's
record, and a consistent store (nothing half-created when the problem is found before the run)."""
import json
import math

import pytest
import torch

import workbench
from workbench import runs
from workbench.core import cli
from workbench.lib import data
from workbench.core.errors import DataCorrupt, DataNotFound, SourceError
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register


@pytest.fixture()
def empty_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data.clear_cache()
    yield tmp_path / "data"
    data.clear_cache()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_dataset_is_one_line_and_nothing_is_created(empty_data_home, capsys):
    before = len(runs.list())
    assert cli.main(["run", "classify", "--dataset", "mnist", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert err.startswith("workbench run: dataset 'mnist' is not available here")
    assert str(empty_data_home / "mnist") in err and "go online" in err  # which place, and what to do
    assert len(runs.list()) == before


def test_corrupt_parquet_names_the_file(empty_data_home, capsys):
    folder = empty_data_home / "digits"
    folder.mkdir(parents=True)
    bad = folder / "train-00000-of-00001.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataCorrupt, match="is not a readable parquet file"):
        data.load("digits")
    before = len(runs.list())
    assert cli.main(["run", "classify", "--dataset", "digits", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert str(bad) in err and "delete or replace it" in err
    assert len(runs.list()) == before


def test_missing_feedback_data_and_model_are_one_line(capsys):
    assert cli.main(["run", "kto", "--data", "nosuch", "--model", "nosuch", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert "data = 'nosuch': no such file" in err and ".jsonl" in err
    assert cli.main(["run", "kto", "--model", "nosuch", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert "model = 'nosuch' cannot be loaded" in err and "local directory" in err


class FailingConfig(Config):
    steps: int = Param(6, bounds=(1, 100), doc="steps")
    fail_at: int = Param(3, bounds=(0, 100), doc="raise at this step")


def _failing(cfg: FailingConfig, ctx) -> dict:
    for step in ctx.steps(cfg.steps):
        ctx.log(step, **{"train/loss": 1.0 / (step + 1)})
        if step == cfg.fail_at:
            raise DataNotFound("dataset 'shard-7' vanished while training: mount the data volume again",
                               details="the long explanation\nover several lines")
    return {}


register(Experiment(name="failing", title="fails mid-run", config=FailingConfig, run=_failing))


def test_failure_mid_run_keeps_metrics_and_the_traceback(capsys):
    assert cli.main(["run", "failing", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    rid = json.loads(captured.out)["run_id"]
    assert captured.err.strip() == (f"run {rid} failed: dataset 'shard-7' vanished while training: mount the data "
                                    f"volume again (traceback: workbench runs show {rid})")
    record = runs.get(rid)
    assert record["status"] == "failed" and "\n" not in record["error"]
    assert "Traceback (most recent call last)" in record["traceback"] and "over several lines" in record["traceback"]
    assert len(runs.metrics(rid)) == 4  # every metric before the failure is kept
    assert cli.main(["runs", "show", rid]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "failed" and "raise DataNotFound" in shown["traceback"]


def test_an_unexpected_exception_is_one_line_too():
    def boom(cfg, ctx):
        raise RuntimeError("boom\nsecond line")

    exp = Experiment(name="boom", config=FailingConfig, run=boom)
    res = workbench.run(exp, progress=False)
    assert res.status == "failed" and res.error == "RuntimeError: boom"
    assert "second line" in res.traceback and runs.get(res.run_id)["traceback"] == res.traceback


def test_source_errors_are_one_line_whatever_the_caller_wrote():
    err = SourceError("a\n  b   c")
    assert str(err) == "a b c"


def test_runs_show_unknown_id_and_strict_json(capsys):
    assert cli.main(["runs", "show", "nonexistent-id"]) == 2
    assert one_line_error(capsys) == "workbench runs show: no run with id 'nonexistent-id'"

    def nan_summary(cfg, ctx):
        ctx.log(0, **{"acc": float("nan")})
        return {"acc": float("nan"), "inf": math.inf, "t": torch.tensor(1.5)}

    res = workbench.run(Experiment(name="nanny", config=FailingConfig, run=nan_summary), progress=False)
    assert cli.main(["runs", "show", res.run_id]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["summary"] == {"acc": None, "inf": None, "t": 1.5}
