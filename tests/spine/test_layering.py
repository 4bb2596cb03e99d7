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
    """The folder (or top-level module) of ``workbench`` a module belongs to: ``workbench.nfm.losses`` → nfm."""
    return module.split(".")[1]


def test_folder_dependency_graph_is_acyclic():
    """Folders under workbench/ form an acyclic graph: a method imports shared modules, never the other way
    round, and no two folders import each other (directly or through others)."""
    top = ROOT / "workbench"
    known = {p.stem if p.is_file() else p.name for p in top.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    graph: dict[str, set[str]] = {u: set() for u in known}
    for path in top.rglob("*.py"):
        rel = path.relative_to(top).parts
        if len(rel) == 1 and rel[0] == "__init__.py":
            continue  # the package's own lazy front door
        unit = Path(rel[0]).stem
        for mod in _imports(path):
            target = _unit(mod)
            if target in known and target != unit:
                graph.setdefault(unit, set()).add(target)
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import cycle between folders: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in sorted(graph):
        visit(node)
    # shared machinery never depends on a method
    methods = {"classify", "kto", "goldilocks", "nfm", "noisymix", "robustness_compare", "ls4", "sdebnn",
               "cascades", "nft"} & known
    for shared in ("engine", "context", "params", "registry", "store", "runs", "follow", "data", "nn", "metrics",
                   "batches", "robustness", "lm"):
        if shared in graph:
            assert not graph[shared] & methods, f"{shared} imports the method(s) {graph[shared] & methods}"
