"""Runs out of the store and back: MLflow (read back through MLflow's own client, from a local file store),
TensorBoard (read back with TensorBoard's event reader), exported directories and store-to-store imports, the live
MLflow mirror, and the ``workbench runs`` commands for them. On SQLite and on PostgreSQL."""
from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from tests.spine import toy  # noqa: F401  (registers "toy")
from workbench import runs
from workbench.core.cli import main
from workbench.store.store import Store


def make_run(store: Store, status: str = "completed") -> str:
    """A finished run with everything a run can hold: metrics at irregular steps, NaN, every artifact kind,
    claims, a summary, a smoke flag."""
    rid = store.create_run("toy", {"seed": 3, "lr": 0.05, "dims": [4, 8], "opt": {"name": "sgd", "momentum": 0.9}},
                           smoke=True)
    t0 = time.time() - 100
    rows = [(s, "train/loss", 1.0 / (s + 1), t0 + s) for s in range(0, 40, 3)]
    rows += [(s, "test/accuracy", 0.5 + s / 100, t0 + s + 0.5) for s in (10, 20, 30)]
    rows += [(39, "grad norm(l2)", math.nan, t0 + 40)]
    store.add_metrics(rid, rows)
    store.add_artifact(rid, "confusion", np.arange(9).reshape(3, 3))
    store.add_artifact(rid, "per_class", [{"cls": "a", "acc": 0.9}, {"cls": "b", "acc": 0.7}])
    store.add_artifact(rid, "info", {"note": "x", "values": [1, 2]})
    store.add_artifact(rid, "log", "hello\nworld")
    store.add_artifact(rid, "samples", np.ones((2, 2)), step=10)
    store.add_artifact(rid, "samples", np.zeros((2, 2)), step=20)
    store.add_artifact(rid, "checkpoint", {"w": torch.ones(2)}, kind="checkpoint", meta={"next_step": 40})
    for record in claim_records():
        store.add_claim(rid, record)
    store.finish(rid, status, "ValueError: boom" if status == "failed" else None,
                 {"train/loss": 0.025, "test/accuracy": 0.8, "extra": 7})
    return rid


def claim_records() -> list[dict]:
    """Claims of every shape: holds over seeds, fails on a bootstrap, inconclusive with an unbounded interval,
    not evaluated (smoke), and a schema-v4 record (a measured value and a verdict only)."""
    from workbench.core.claims import Effect, exceeds, superior

    return [
        superior("loss falls", "SGD", "init", Effect.paired([0.5, 0.6, 0.55], [0.1, 0.2, 0.1]), detail="x40",
                 paper="Fig. 2").to_record(),
        superior("beats baseline", "ours", "baseline", Effect(-0.05, -0.08, -0.02, samples=400,
                                                               how="bootstrap")).to_record(),
        exceeds("ratio above one", Effect.paired([1.2]), 1.0, method="LS4").to_record(),
        superior("smoke only", "A", "B", Effect.normal(0.1, 0.01)).not_evaluated("not evaluated (smoke run)")
        .to_record(),
        {"claim": "old verdict", "measured": "0.80 vs 0.85", "holds": False, "detail": "v4"},
    ]


# -- exported directories and imports ---------------------------------------------------------------------------
def same_run(a: Store, b: Store, rid: str) -> None:
    ra, rb = a.get(rid), b.get(rid)
    assert {k: v for k, v in ra.items()} == {k: v for k, v in rb.items()}
    ma, mb = [tuple(r)[1:] for r in a.metrics(rid)], [tuple(r)[1:] for r in b.metrics(rid)]
    assert ma == mb and ma[-1][2] is None  # NaN is NULL on both backends
    assert a.claims(rid) == b.claims(rid)
    key = lambda r: (r["name"], r["kind"], r["step"], json.dumps(r["meta"]), r["created_at"])  # noqa: E731
    assert sorted(map(key, a.artifacts(rid))) == sorted(map(key, b.artifacts(rid)))
    for row in a.artifacts(rid):
        assert a.artifact_bytes(row) == b.artifact_bytes(b.artifact_row(rid, row["name"], row["step"]))


def test_export_dir_then_import_into_the_other_backend(store, other_url, tmp_path):
    rid = make_run(store)
    out = runs.export_run(rid[:-1], "dir", tmp_path / "bundles", store=store)
    assert out == tmp_path / "bundles" / rid and (out / "run.json").exists() and (out / "metrics.parquet").exists()
    target = Store(other_url)
    assert runs.import_runs(tmp_path / "bundles", store=target) == [(rid, "imported")]
    same_run(store, target, rid)
    assert runs.import_runs(out, store=target) == [(rid, "exists")]  # twice is harmless
    assert target.load_artifact(rid, "per_class").to_dict(orient="records") == [{"cls": "a", "acc": 0.9},
                                                                                 {"cls": "b", "acc": 0.7}]


def test_a_schema_v4_bundle_imports_with_outcomes(store, other_url, tmp_path):
    """A run exported before claims had outcomes (claims.json: claim, measured, holds, detail) reads as the v5
    migration reads a v4 store."""
    rid = make_run(store)
    out = runs.export_run(rid, "dir", tmp_path / "old", store=store)
    (out / "claims.json").write_text(json.dumps([
        {"claim": "a", "measured": "1", "holds": True, "detail": ""},
        {"claim": "b", "measured": "2", "holds": False, "detail": "worse"},
        {"claim": "c", "measured": "3", "holds": None, "detail": "not evaluated (smoke run)"},
        {"claim": "d", "measured": "4", "holds": None, "detail": "ranges do not overlap"}]))
    target = Store(other_url)
    runs.import_runs(out, store=target)
    got = target.claims(rid)
    assert [c["outcome"] for c in got] == ["holds", "fails", "not evaluated", "inconclusive"]
    assert [c["holds"] for c in got] == [True, False, None, None]
    assert got[3]["reason"] == "ranges do not overlap" and got[3]["detail"] == "ranges do not overlap"
    assert got[2]["detail"].startswith("not evaluated (smoke run)") and got[1]["detail"] == "worse"
    assert all(c["rule"] and c["effect"] is None and c["measured"] for c in got)


def test_import_from_another_store_url(store, other_url):
    """Move a laptop's runs into the team's store: finished runs copied whole, live ones left where they run."""
    done, failed, live = make_run(store), make_run(store, "failed"), store.create_run("toy", {})
    target = Store(other_url)
    result = dict(runs.import_runs(store.url, store=target))
    assert result == {done: "imported", failed: "imported", live: "running"}
    same_run(store, target, done)
    assert target.get(failed)["error"] == "ValueError: boom"
    assert dict(runs.import_runs(store, store=target, run_ids=[live[:-1]], include_running=True)) == {live: "imported"}
    with pytest.raises(KeyError, match="no run with id 'nope'"):
        runs.import_runs(store, store=target, run_ids=["nope"])
    with pytest.raises(ValueError, match="same store"):
        runs.import_runs(store.url, store=store)


def test_an_interrupted_import_is_cleared_and_done_again(store, other_url, monkeypatch):
    rid = make_run(store)
    target = Store(other_url)
    real = target.add_claim

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(target, "add_claim", broken)
    with pytest.raises(OSError):
        runs.import_runs(store, store=target)
    assert not target.exists(rid) and len(target.metrics(rid)) > 0  # pieces, but no run record
    monkeypatch.setattr(target, "add_claim", real)
    assert runs.import_runs(store, store=target) == [(rid, "imported")]
    same_run(store, target, rid)


# -- MLflow ------------------------------------------------------------------------------------------------------
@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow export: pip install 'workbench[mlflow]'")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def read_mlflow(uri: str, mlflow_id: str, tmp_path: Path) -> dict:
    from mlflow.tracking import MlflowClient

    cl = MlflowClient(uri)
    run = cl.get_run(mlflow_id)
    history = {k: [(m.step, m.value, m.timestamp) for m in cl.get_metric_history(mlflow_id, k)]
               for k in run.data.metrics}
    local = Path(cl.download_artifacts(mlflow_id, "", str(tmp_path / f"dl-{mlflow_id}")))
    files = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()}
    return {"run": run, "history": history, "dir": local, "files": files}


def check_mlflow_run(got: dict, store: Store, rid: str, status: str = "FINISHED") -> None:
    run, rec = got["run"], store.get(rid)
    assert run.info.status == status and run.info.run_name == rid
    assert run.info.start_time == round(rec["created_at"] * 1000) and run.info.end_time == round(rec["ended_at"] * 1000)
    assert run.data.params == {"seed": "3", "lr": "0.05", "dims": "[4, 8]", "opt.name": "sgd", "opt.momentum": "0.9"}
    assert run.data.tags["workbench.run_id"] == rid and run.data.tags["workbench.smoke"] == "true"
    for name in ("train/loss", "test/accuracy"):  # every point: step, value, time
        want = [(r["step"], r["value"], round(r["time"] * 1000)) for r in store.metrics(rid, [name])]
        assert got["history"][name] == want
    assert math.isnan(got["history"]["grad norm_l2_"][0][1])  # a name MLflow refuses, made safe; NaN kept
    assert got["history"]["extra"] == [(39, 7.0, round(rec["ended_at"] * 1000))]  # a summary value never logged
    files = got["files"]
    assert "claims.json" in files and "workbench/run.json" in files
    assert not any("checkpoint" in f for f in files)  # checkpoints only on request
    table = json.loads((got["dir"] / "claims.json").read_text())
    from workbench.store.interop.to_mlflow import MLFLOW_CLAIM_COLUMNS

    assert table["columns"] == list(MLFLOW_CLAIM_COLUMNS)
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["outcome"] for r in rows] == ["holds", "fails", "inconclusive", "not evaluated", "fails"]
    assert [r["holds"] for r in rows] == [True, False, None, None, False]
    assert rows[0]["method"] == "SGD" and rows[0]["arm"] == "init" and rows[0]["seeds"] == 3
    assert rows[0]["low"] < rows[0]["effect"] < rows[0]["high"] and rows[0]["rule"].startswith("holds if")
    assert rows[2]["low"] is None and "unbounded" in rows[2]["reason"]  # no NaN in the table
    index = {a["name"] + ("" if a["step"] is None else f"@{a['step']}"): a
             for a in json.loads((got["dir"] / "workbench" / "artifacts.json").read_text())}
    assert set(index) == {"confusion", "per_class", "info", "log", "samples@10", "samples@20"}
    conf = np.load(io.BytesIO((got["dir"] / "workbench" / index["confusion"]["file"]).read_bytes()))
    assert conf.tolist() == np.arange(9).reshape(3, 3).tolist()
    assert (got["dir"] / "workbench" / index["log"]["file"]).read_text() == "hello\nworld"
    assert json.loads((got["dir"] / "workbench" / "run.json").read_text())["id"] == rid


def test_export_to_mlflow_reads_back_through_mlflows_client(store, mlflow_uri, tmp_path):
    rid = make_run(store)
    mlflow_id = runs.export_run(rid, "mlflow", store=store, tracking_uri=mlflow_uri)
    check_mlflow_run(read_mlflow(mlflow_uri, mlflow_id, tmp_path), store, rid)
    failed = make_run(store, "failed")
    got = read_mlflow(mlflow_uri, runs.export_run(failed, "mlflow", store=store, tracking_uri=mlflow_uri,
                                                  checkpoints=True), tmp_path)
    assert got["run"].info.status == "FAILED" and got["run"].data.tags["workbench.error"] == "ValueError: boom"
    assert any(f.endswith("checkpoint.pt") for f in got["files"])


def test_live_mlflow_mirror_of_an_engine_run(store, mlflow_uri, tmp_path):
    """``workbench run --mlflow URI``: the writer feeds the sink while the run goes; the end brings the rest."""
    from mlflow.tracking import MlflowClient

    from workbench.store.interop.to_mlflow import MlflowSink

    store.add_sink(MlflowSink.factory(mlflow_uri))
    rid = store.create_run("toy", {"seed": 3})
    writer = store.writer(rid, flush_interval=0.01)
    writer.log(0, {"train/loss": 2.0})
    writer.log(1, {"train/loss": 1.0})
    sink = store._live[rid][0]
    cl, deadline = MlflowClient(mlflow_uri), time.time() + 20
    while len(cl.get_metric_history(sink.mlflow_id, "train/loss")) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert [m.value for m in cl.get_metric_history(sink.mlflow_id, "train/loss")] == [2.0, 1.0]  # live
    assert cl.get_run(sink.mlflow_id).info.status == "RUNNING"
    writer.close()
    store.finish(rid, "stopped")
    assert cl.get_run(sink.mlflow_id).info.status == "KILLED"

    res = workbench.run("toy", {"steps": 12}, progress=False, store=store)  # the engine: nothing to change there
    found = cl.search_runs([cl.get_experiment_by_name("toy").experiment_id],
                           filter_string=f"tags.`workbench.run_id` = '{res.run_id}'")
    got = read_mlflow(mlflow_uri, found[0].info.run_id, tmp_path)
    assert got["run"].info.status == "FINISHED" and "claims.json" in got["files"]
    assert [(s, v) for s, v, _ in got["history"]["train/loss"]] == [
        (r["step"], r["value"]) for r in store.metrics(res.run_id)]


def test_a_failing_mirror_never_stops_the_run(store, tmp_path):
    class Broken:
        def metrics(self, rows):
            raise ConnectionError("tracking server down")

        def finish(self, record):
            raise ConnectionError("still down")

    store.add_sink(lambda st, rid: Broken())
    with pytest.warns(UserWarning, match="tracking server down"):
        res = workbench.run("toy", {"steps": 30}, progress=False, store=store)
    assert res.status == "completed" and len(store.metrics(res.run_id)) == 30


# -- TensorBoard -------------------------------------------------------------------------------------------------
def test_export_to_tensorboard_reads_back_with_its_event_reader(store, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard export: pip install 'workbench[tensorboard]'")
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rid = make_run(store)
    png = io.BytesIO()
    Image.new("RGB", (6, 4), (255, 0, 0)).save(png, format="PNG")
    out = runs.export_run(rid, "tensorboard", tmp_path / "tb", store=store,
                          images=lambda run_id: {"views/confusion": png.getvalue(), "views/gray": np.eye(3)})
    assert out == tmp_path / "tb" / "toy" / rid
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    for name in ("train/loss", "test/accuracy"):
        want = [(r["step"], r["value"], r["time"]) for r in store.metrics(rid, [name])]
        got = [(e.step, e.value, e.wall_time) for e in acc.Scalars(name)]
        assert [g[:1] for g in got] == [w[:1] for w in want]
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], rel=1e-6)  # float32 in event files
        assert [g[2] for g in got] == pytest.approx([w[2] for w in want], abs=1e-3)
    assert math.isnan(acc.Scalars("grad norm(l2)")[0].value)
    texts = acc.Tags()["tensors"]
    assert {"workbench/config/text_summary", "workbench/claims/text_summary", "workbench/status/text_summary"} <= set(
        texts)
    claims = acc.Tensors("workbench/claims/text_summary")[0].tensor_proto.string_val[0].decode()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in claims.splitlines()}
    assert "| claim | method vs arm | effect ± uncertainty | interval | seeds | rule | outcome | detail |" in claims
    assert "| SGD vs init | 0.417 ± 0.072 | [0.345, 0.488] |" in lines["loss falls"] and "| 3 |" in lines["loss falls"]
    assert "| ✔ holds | x40 |" in lines["loss falls"] and "| ✘ fails |" in lines["beats baseline"]
    assert "? inconclusive: the interval is unbounded" in lines["ratio above one"]
    assert "– not evaluated (smoke run)" in lines["smoke only"] and "| 0.80 vs 0.85 |" in lines["old verdict"]
    images = {tag: acc.Images(tag)[0] for tag in acc.Tags()["images"]}
    assert (images["views/confusion"].width, images["views/confusion"].height) == (6, 4)
    assert (images["views/gray"].width, images["views/gray"].height) == (3, 3)


# -- the command line ---------------------------------------------------------------------------------------------
def test_runs_commands_with_store_export_and_import(store, url, other_url, tmp_path, capsys, monkeypatch):
    rid = make_run(store)
    assert main(["runs", "--store", url, "list"]) == 0 and rid in capsys.readouterr().out
    assert main(["runs", "list", "--store", url, "--status", "completed"]) == 0 and rid in capsys.readouterr().out
    assert main(["runs", "export", rid, "--store", url, "--to", "dir", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "b" / rid)
    assert main(["runs", "--store", other_url, "import", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.strip() == f"{rid} imported"
    monkeypatch.setenv("WORKBENCH_STORE", other_url)  # the variable names the store when --store does not
    assert main(["runs", "show", rid[:-1]]) == 0 and '"status": "completed"' in capsys.readouterr().out
    assert main(["runs", "export", rid, "--to", "tensorboard"]) == 2
    assert "needs the directory" in capsys.readouterr().err
    assert main(["runs", "--store", "mysql://x/y", "list"]) == 2
    assert "use a directory, sqlite:///" in capsys.readouterr().err
    if _has("psycopg"):  # a server that does not answer: one line, no traceback
        assert main(["runs", "--store", f"postgresql://me@/db?host={tmp_path}/none&connect_timeout=2", "list"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("workbench runs list: OperationalError: ") and len(err.strip().splitlines()) == 1
    if _has("mlflow"):
        uri = (tmp_path / "mlruns").as_uri()
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        assert main(["runs", "export", rid, "--to", "mlflow", "--tracking-uri", uri, "--experiment", "team"]) == 0
        mlflow_id = capsys.readouterr().out.strip()
        from mlflow.tracking import MlflowClient

        run = MlflowClient(uri).get_run(mlflow_id)
        assert run.data.tags["workbench.run_id"] == rid and run.info.experiment_id == MlflowClient(
            uri).get_experiment_by_name("team").experiment_id


def test_workbench_run_with_store_and_mlflow_flags(url, tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow export: pip install 'workbench[mlflow]'")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    assert main(["run", "toy", "--smoke", "--no-progress", "--store", url, "--mlflow", uri]) == 0
    rid = json.loads(capsys.readouterr().out)["run_id"]
    assert Store(url).get(rid)["status"] == "completed"
    cl = MlflowClient(uri)
    mirrored = cl.search_runs([cl.get_experiment_by_name("toy").experiment_id])
    assert [r.data.tags["workbench.run_id"] for r in mirrored] == [rid] and mirrored[0].info.status == "FINISHED"
    assert main(["run", "toy", "--store", "mysql://x/y"]) == 2 and "use a directory" in capsys.readouterr().err


def _has(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False
