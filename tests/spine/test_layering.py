import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_imports_no_notebook_layer():
    """workbench/ (all of it, every method and the registry) never imports widgets, ipywidgets, panel or plotly."""
    code = (
        "import sys, pkgutil, importlib, workbench\n"
        "workbench.experiments()\n"
        "for m in pkgutil.walk_packages(workbench.__path__, 'workbench.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('widgets', 'ipywidgets', 'panel', 'plotly'))\n"
        "print(bad); assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_import_workbench_is_light():
    code = "import sys, workbench; assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # registering every experiment (each CLI command, each demo child) imports torch, not the heavy libraries
    # only some runs use: Hugging Face datasets (pyarrow, pandas) and scipy cost about a second together
    code = ("import sys, workbench; workbench.experiments()\n"
            "heavy = sorted({n.split('.')[0] for n in sys.modules} & {'datasets', 'pyarrow', 'scipy', 'torchdiffeq'})\n"
            "assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_run_imports_no_library_it_does_not_use(tmp_path):
    """A smoke run of classify (digits, its claim's bootstrap interval, the store) imports neither scikit-learn (the
    digits file is read directly), scipy.stats (the t quantile comes from scipy.special) nor pandas (the store's
    DataFrames are built on use): about 2 s less for each process that runs an experiment (demo children, kernels)."""
    import os

    code = ("import sys, workbench\nres = workbench.run('classify', smoke=True, progress=False)\n"
            "assert res.status == 'completed', res.error\n"
            "heavy = sorted(({n.split('.')[0] for n in sys.modules} & {'sklearn', 'pandas'}) | "
            "({'scipy.stats'} & set(sys.modules)))\nassert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr


def _imports(path):
    """Absolute ``workbench.*`` modules a source file imports (relative imports resolved), at any depth."""
    import ast

    tree = ast.parse(path.read_text())
    package = ".".join(path.with_suffix("").relative_to(ROOT).parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + "._"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("workbench.")}


def _unit(module: str) -> str:
    """The room of the house a module lives in: ``core``, ``store``, ``runs``, ``lib.<toolkit>`` or ``methods.<name>``."""
    parts = module.split(".")
    return ".".join(parts[1:3]) if parts[1] in ("lib", "methods") and len(parts) > 2 else parts[1]


def _rooms() -> dict[str, set[str]]:
    """Every room found on disk (no hand-kept list) and the rooms each imports."""
    top = ROOT / "workbench"
    graph: dict[str, set[str]] = {}
    for path in top.rglob("*.py"):
        rel = path.relative_to(top).parts
        if len(rel) == 1 and rel[0] in ("__init__.py", "__main__.py"):
            continue  # the package's own lazy front door
        if rel[0] in ("lib", "methods") and rel[1:] == ("__init__.py",):
            continue  # the floors' own docstring files
        unit = _unit("workbench." + ".".join(Path(*rel).with_suffix("").parts))
        graph.setdefault(unit, set())
        graph[unit] |= {_unit(m) for m in _imports(path) if len(m.split(".")) > 1}
    return {room: targets & set(graph) - {room} for room, targets in graph.items()}


def test_every_room_is_found_on_disk():
    graph = _rooms()
    assert {"core", "store"} <= set(graph)
    methods = {r for r in graph if r.startswith("methods.")}
    lib = {r for r in graph if r.startswith("lib.")}
    assert {"methods.kto", "methods.goldilocks", "methods.nft", "methods.ls4", "methods.cascades",
            "methods.noisymix", "methods.nfm", "methods.sdebnn"} <= methods
    assert {"lib.data", "lib.nn", "lib.lm", "lib.weightspace", "lib.robustness"} <= lib
    assert set(graph) == {"core", "store"} | methods | lib, set(graph) - {"core", "store"} - methods - lib


def test_floors_import_downwards_only():
    """methods -> core and lib (the store only through the run context); lib -> core and other toolkits;
    core -> store; the store (with ``workbench.runs``) imports nothing above it; no method imports another."""
    for room, targets in _rooms().items():
        if room.startswith("methods."):
            allowed = {"core"} | {t for t in targets if t.startswith("lib.")}
        elif room.startswith("lib."):
            allowed = {"core"} | {t for t in targets if t.startswith("lib.")}
        elif room == "core":
            allowed = {"store"}
        else:
            allowed = set()
        assert targets <= allowed, f"{room} imports {sorted(targets - allowed)}"


def test_folder_dependency_graph_is_acyclic():
    graph = _rooms()
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import cycle between folders: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in sorted(graph):
        visit(node)


def test_views_use_only_public_method_apis():
    """A view reads stored runs and calls a method's public names (its package, ``workbench.methods.<name>``),
    never a method's inner modules: what a view can do, a user can do from plain Python."""
    import ast
    import importlib

    bad = []
    for path in sorted((ROOT / "widgets" / "views").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for mod in mods:
                parts = mod.split(".")
                if parts[:2] == ["workbench", "methods"] and len(parts) != 3:
                    bad.append(f"{path.name}: {mod}")
                elif len(parts) == 3 and parts[:2] == ["workbench", "methods"] and isinstance(node, ast.ImportFrom):
                    package = importlib.import_module(mod)
                    public = set(getattr(package, "__all__", [])) | {
                        n for n in dir(package) if isinstance(getattr(package, n), type(package))}
                    bad += [f"{path.name}: {mod}.{a.name} (not public)" for a in node.names if a.name not in public]
    assert not bad, bad
