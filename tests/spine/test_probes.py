"""Probes a new user would try, through the command line (``main(argv)`` in-process): each bad value, flag or input
file ends with exit code 2 and exactly one line on stderr, naming what is wrong, before the store is even opened
(its file is never created); boolean parameters are ``--name`` / ``--no-name``."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.core import cli
from workbench.core.params import Config, Param
from workbench.core.registry import Experiment, register
from workbench.store.store import Store

from . import toy  # noqa: F401  (registers "toy")


class ProbeConfig(Config):
    steps: int = Param(2, bounds=(1, 100), doc="steps")
    flag: bool = Param(False, doc="a boolean switch")


def run_probe(cfg: ProbeConfig, ctx) -> dict:
    for step in ctx.steps(cfg.steps):
        ctx.log(step, x=float(step))
    return {"flag": float(cfg.flag)}


register(Experiment("probe_bool", ProbeConfig, run_probe, title="boolean flag probe"))


@pytest.fixture
def db(tmp_path):
    return tmp_path / "store" / "workbench.db"


def one_line(capsys, code: int, argv: list[str]) -> str:
    """Run the CLI; assert its exit code and exactly one line on stderr; return that line."""
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- bad values and flags ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--scale", "bogus"], "parameter 'scale' = 'bogus' is not allowed; allowed: default, demo, paper"),
    (["--steps", "0"], "parameter 'steps' = 0 is out of range"),
    (["--steps"], "argument --steps: expected one argument"),
    (["--nosuch", "1"], "unrecognized arguments: --nosuch 1"),
    (["--lr", "fast"], "parameter 'lr' = 'fast' is not a valid float"),
])
def test_a_bad_value_is_one_line_and_creates_nothing(capsys, db, args, says):
    line = one_line(capsys, 2, ["run", "toy", *args, "--store", f"sqlite:///{db}"])
    assert line.startswith("workbench run: ") and says in line
    assert not db.exists()


def test_boolean_parameters_are_switches(capsys, db):
    url = f"sqlite:///{db}"
    seen = {}
    for args, expected in ((["--flag"], True), (["--no-flag"], False), (["--flag", "true"], True),
                           (["--flag=off"], False), ([], False)):
        assert cli.main(["run", "probe_bool", *args, "--steps", "1", "--no-progress", "--store", url]) == 0
        rid = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
        seen[" ".join(args)] = Store(url).get(rid)["config"]["flag"]
        assert seen[" ".join(args)] is expected, args
    line = one_line(capsys, 2, ["run", "probe_bool", "--flag", "maybe", "--store", url])
    assert "parameter 'flag' = 'maybe' is not a boolean" in line
    line = one_line(capsys, 2, ["run", "probe_bool", "--no-flag", "1", "--store", url])
    assert "unrecognized arguments: 1" in line


def test_help_shows_booleans_as_switches(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "sdebnn", "--help"])
    out = capsys.readouterr().out
    assert "--adjoint, --no-adjoint" in out and "--adjoint BOOL" not in out


def test_runs_subcommand_mistake_is_one_line(capsys):
    assert "invalid choice: 'lst'" in one_line(capsys, 2, ["runs", "lst"])


def test_an_unreachable_store_is_one_line(capsys, tmp_path):
    pytest.importorskip("psycopg")
    line = one_line(capsys, 2, ["run", "toy", "--steps", "1", "--store",
                                f"postgresql://postgres@/x?host={tmp_path}/nosocket"])
    assert line.startswith("workbench run: OperationalError")


# -- input files, read before the run exists ---------------------------------------------------------------------
TSF_HEAD = "@relation probe\n@attribute series_name string\n@frequency daily\n@data\n"


@pytest.mark.parametrize("text, says", [
    (TSF_HEAD + "T1:1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\nT2:1,2,x3,4\n",
     "line 6: value 3 = 'x3' is not a number"),
    ("@relation probe\n@attribute series_name string\nT1:1,2,3\n", "line 3: 'T1:1,2,3' before the @data section"),
    ("@relation probe\n@attribute series_name string\n", "no @data section"),
    (TSF_HEAD + "T1:1,2,3\n", "its longest series has 3 steps, shorter than parameter 'length' = 16"),
    (TSF_HEAD + "T1:2020:1,2,3\n", "line 5: a data line has 2 attribute fields, the header declares 1"),
])
def test_a_bad_tsf_file_names_the_file_and_line(capsys, tmp_path, db, text, says):
    path = tmp_path / "probe.tsf"
    path.write_text(text)
    line = one_line(capsys, 2, ["run", "ls4", "--smoke", "--data", "tsf", "--tsf-path", str(path),
                                "--store", f"sqlite:///{db}"])
    assert str(path) in line and says in line, line
    assert "parameter 'length' = 16 (source" not in line  # the old message blamed length for a bad value
    assert not db.exists()


def _zoo(root, rows: int = 3, layout=None, metrics=None):
    root.mkdir()
    np.save(root / "weights.npy", np.zeros((rows, 12), np.float32))
    pd.DataFrame(layout or [{"varname": "dense/kernel:0", "shape": "(2, 5)", "start_idx": 0},
                            {"varname": "dense/bias:0", "shape": "(2,)", "start_idx": 10}]).to_csv(
        root / "layout.csv", index=False)
    pd.DataFrame(metrics or {"test_accuracy": [0.5] * rows, "step": [1] * rows}).to_csv(root / "metrics.csv",
                                                                                      index=False)
    return root


@pytest.mark.parametrize("make, says", [
    (lambda p: _zoo(p, layout=[{"varname": "dense/kernel:0", "shape": "(3, 5)", "start_idx": 0}]),
     "layout.csv row 2: 'dense/kernel:0' spans columns 0:15 for shape (3, 5); the weights rows have 12 columns"),
    (lambda p: _zoo(p, layout=[{"varname": "dense/gamma:0", "shape": "(2,)", "start_idx": 0}]),
     "layout.csv row 2: variable 'dense/gamma:0' is neither a kernel nor a bias"),
    (lambda p: _zoo(p, metrics={"test_accuracy": [0.5, 0.4]}), "metrics.csv: 2 rows, but"),
    (lambda p: _zoo(p, metrics={"accuracy": [0.5] * 3}), "metrics.csv: no test_accuracy column"),
    (lambda p: (p.mkdir(), (p / "layout.csv").write_text("x\n")), "is not a Small CNN Zoo directory: missing"),
])
def test_a_bad_zoo_names_the_file_and_row(capsys, tmp_path, db, make, says):
    make(tmp_path / "zoo")
    line = one_line(capsys, 2, ["run", "nft", "--smoke", "--zoo-path", str(tmp_path / "zoo"),
                                "--store", f"sqlite:///{db}"])
    assert says in line, line
    assert not db.exists()


@pytest.mark.parametrize("name, rows, says", [
    ("fb.jsonl", [{"prompt": "p", "completion": "c", "label": True}, {"prompt": "p", "completion": "d",
                                                                      "label": 2}],
     "row 2: label = 2 is not a boolean"),
    ("fb.jsonl", [{"prompt": "p", "completion": None, "label": True}], "row 1: column 'completion' = None is not text"),
    ("fb.parquet", [{"prompt": "p", "answer": "c", "label": True}], "needs columns prompt, chosen, rejected"),
])
def test_a_bad_feedback_file_names_the_row(capsys, tmp_path, db, name, rows, says):
    pytest.importorskip("datasets")
    path = tmp_path / name
    frame = pd.DataFrame(rows)
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_json(path, orient="records", lines=True)
    line = one_line(capsys, 2, ["run", "kto", "--smoke", "--data", str(path), "--store", f"sqlite:///{db}"])
    assert str(path) in line and says in line, line
    assert not db.exists()


# -- workbench report ---------------------------------------------------------------------------------------------
def test_report_refuses_an_unknown_parameter(capsys, tmp_path):
    from widgets.cli import report

    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
              "source": ["smoke = False\n", "steps: int = 3\n", "lr, width = 0.1, 8"]},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": "raise SystemExit('the notebook must not run')"}]
    path = tmp_path / "probe.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert report([str(path), "-p", "nosuch", "1", "-o", str(tmp_path / "out.html")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no parameter 'nosuch'" in lines[0]
    assert lines[0].endswith("its parameters cell sets: smoke, steps, lr, width")
    assert not (tmp_path / "out.html").exists()


def test_report_keeps_library_noise_out_of_the_terminal_unless_verbose(capfd):
    """What the kernel process writes on the inherited stderr (its transport warning) and Python warnings are
    hidden; ``--verbose`` shows them."""
    import subprocess
    import sys
    import warnings

    from widgets.cli import _quiet

    noisy = [sys.executable, "-c", "import sys; sys.stderr.write('[IPKernelApp] WARNING | over TCP\\n')"]
    for verbose in (False, True):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with _quiet(not verbose):
                subprocess.run(noisy, check=True)
                warnings.warn("a library warning")
        assert ("over TCP" in capfd.readouterr().err) is verbose and bool(seen) is verbose


def test_report_bad_option_is_one_line(capsys):
    from widgets.cli import report

    with pytest.raises(SystemExit) as exc:
        report(["any.ipynb", "--to", "docx"])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["workbench report: argument --to: invalid choice: 'docx' (choose from 'html', 'pdf')"]
