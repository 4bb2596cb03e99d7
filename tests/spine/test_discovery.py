"""A new method is one folder, one views file and one notebook, with zero edits to existing files; a third-party
method arrives through the ``workbench.experiments`` entry-point group of an installed package (issue 21)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The whole of a throwaway ninth method: what a new method adds under workbench/methods/<name>/.
NINTH = {
    "methods/ninth/__init__.py": '"""A throwaway ninth method: least squares by gradient descent."""\n'
                                 "from .model import Line\n",
    "methods/ninth/model.py": """
        import torch


        class Line(torch.nn.Module):
            def __init__(self, inputs: int = 3):
                super().__init__()
                self.linear = torch.nn.Linear(inputs, 1)

            def forward(self, x):
                return self.linear(x).squeeze(-1)
        """,
    "methods/ninth/experiment.py": """
        import torch

        from workbench.core.claims import Effect, exceeds
        from workbench.core.context import RunContext
        from workbench.core.params import Config, LoopParams, OptimParams
        from workbench.core.registry import Experiment, register

        from .model import Line


        class NinthConfig(OptimParams.with_defaults(lr=0.1), LoopParams.with_defaults(steps=40, batch_size=16), Config):
            pass


        def run(cfg: NinthConfig, ctx: RunContext) -> dict:
            gen = ctx.generator("data")
            x = torch.randn(128, 3, generator=gen)
            y = x @ torch.tensor([1.0, -1.0, 2.0])
            with ctx.seeded("init"):
                model = Line(3)
            opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
            ctx.track(model=model, opt=opt)
            batches = ctx.batches(len(x), cfg.batch_size)
            losses = []
            for step in ctx.steps(cfg.steps):
                idx = next(batches)
                loss = ((model(x[idx]) - y[idx]) ** 2).mean()
                opt.zero_grad(); loss.backward(); opt.step()
                ctx.log(step, **{"train/loss": loss.item()})
                losses.append(loss.item())
            ctx.save_model("line", model, {"inputs": 3})
            ctx.claim(exceeds("the loss falls below 1", Effect.paired(losses[-5:]), 1.0, better="lower", method="ninth"))
            return {"train/loss": losses[-1]}


        register(Experiment("ninth", NinthConfig, run, title="Ninth", smoke={"steps": 5}))
        """,
    "views/ninth.py": """
        import plotly.graph_objects as go

        from widgets.views import view
        from workbench import runs


        @view("ninth", "loss")
        def loss(run_id):
            df = runs.metrics(run_id, ["train/loss"])
            return go.Figure(go.Scatter(x=df.step, y=df.value)) if len(df) else None
        """,
}

CHECK = """
import sys, workbench, workbench.methods, widgets.views
workbench.methods.__path__.append({methods!r})   # the folder a new method would live in
widgets.views.__path__.append({views!r})
from widgets.views import views_for
from workbench import runs
from workbench.core.cli import main
assert "ninth" in workbench.experiments(), sorted(workbench.experiments())
res = workbench.run("ninth", smoke=True, progress=False)
assert res.status == "completed", res.error
assert [v.title for v in views_for("ninth")] == ["loss"] and views_for("ninth")[0](res.run_id) is not None
assert runs.models(res.run_id) == ["line"] and runs.load_model(res.run_id, "line").linear.in_features == 3
assert runs.claims(res.run_id)[0]["claim"] == "the loss falls below 1"
try:
    main(["run", "ninth", "--help"])
except SystemExit as stop:
    assert stop.code == 0
print("NINTH OK")
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def _python(code: str, tmp_path: Path, extra_path: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join(p for p in (extra_path, str(ROOT)) if p)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_ninth_method_is_one_folder_one_views_file_and_no_edit(tmp_path):
    _write(tmp_path, NINTH)
    out = _python(CHECK.format(methods=str(tmp_path / "methods"), views=str(tmp_path / "views")), tmp_path)
    assert out.returncode == 0 and "NINTH OK" in out.stdout, out.stderr[-3000:]
    assert "ninth" not in [p.name for p in (ROOT / "workbench" / "methods").iterdir()]  # nothing left behind


def test_an_installed_package_registers_through_the_entry_point_group(tmp_path):
    site = tmp_path / "site"
    files = {f"ninth_plugin/{Path(k).name}": v for k, v in NINTH.items() if k.startswith("methods/")}
    files["ninth_plugin/experiment.py"] = files["ninth_plugin/experiment.py"].replace('"ninth"', '"plugin"')
    files["ninth_plugin-0.1.dist-info/METADATA"] = "Metadata-Version: 2.1\nName: ninth-plugin\nVersion: 0.1\n"
    files["ninth_plugin-0.1.dist-info/entry_points.txt"] = "[workbench.experiments]\nplugin = ninth_plugin.experiment\n"
    _write(site, files)
    code = ("import workbench\nfrom workbench import runs\n"
            "assert 'plugin' in workbench.experiments()\n"
            "res = workbench.run('plugin', smoke=True, progress=False)\n"
            "assert res.status == 'completed', res.error\n"
            "assert type(runs.load_model(res.run_id, 'line')).__module__ == 'ninth_plugin.model'\n"
            "print('PLUGIN OK')\n")
    out = _python(code, tmp_path, str(site))
    assert out.returncode == 0 and "PLUGIN OK" in out.stdout, out.stderr[-3000:]
