import subprocess
import sys


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
