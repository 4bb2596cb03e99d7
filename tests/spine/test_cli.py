import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import runs

from workbench.core import cli

from . import toy  # noqa: F401


def test_run_prints_result_and_records_it(capsys):
    assert cli.main(["run", "toy", "--steps", "4", "--lr", "0.01", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "completed"
    assert runs.get(out["run_id"])["config"]["steps"] == 4


def test_bad_value_is_one_clear_line(capsys):
    assert cli.main(["run", "toy", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert "parameter 'steps' = 0 is out of range; allowed range [1, 10000000]" in err
    assert "Traceback" not in err


def test_unknown_method_and_help(capsys):
    assert cli.main(["run", "nope"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "toy", "--help"])
    assert "--batch-size" in capsys.readouterr().out


def test_runs_subcommands(tmp_path, capsys):
    cli.main(["run", "toy", "--steps", "3", "--no-progress"])
    rid = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
    assert cli.main(["runs", "list", "--method", "toy"]) == 0 and rid in capsys.readouterr().out
    assert cli.main(["runs", "show", rid]) == 0
    assert json.loads(capsys.readouterr().out)["claims"][0]["claim"] == "the loss falls"
    assert cli.main(["runs", "export", rid, str(tmp_path / "m.csv")]) == 0 and (tmp_path / "m.csv").exists()
    assert cli.main(["runs", "delete", rid]) == 0
    capsys.readouterr()
    assert cli.main(["runs", "show", rid]) == 2 and "no run" in capsys.readouterr().err


def test_python_dash_m_workbench_works():
    out = subprocess.run([sys.executable, "-m", "workbench", "experiments"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_gpu_check_script_runs_on_cpu():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "benchmarks/gpu_check.py"), "--device", "cpu", "--only",
                          "classify"], capture_output=True, text=True, timeout=300, cwd=root)
    if "unknown experiment" in out.stderr:
        pytest.skip("classify not registered yet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "classify" in out.stdout and "completed" in out.stdout
