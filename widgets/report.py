"""Reports: execute a notebook with parameters (nbclient, like papermill) and export it to a
self-contained HTML or to PDF through headless Chromium printing.

Nothing in a report comes from the network: plotly.js is embedded once by the notebook renderer;
require.js, MathJax and the widget manager (CDN scripts) are left out; the equations of markdown cells are
typeset by KaTeX, inlined from the copy Panel ships, into MathML that the browser draws itself (no web
fonts). ``live_outputs`` fills a saved notebook with this kernel's outputs, so ``%wb_export`` works in the
middle of "Run All", before the notebook is saved."""
from __future__ import annotations

import ast
import copy
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")

#: Our nbconvert template: the lab template minus everything that would load from the network, plus KaTeX.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{{ resources.wb_math | default('') }}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

#: Typeset ``$…$``, ``$$…$$``, ``\(…\)`` and ``\[…\]`` in markdown cells once the page has loaded.
_RENDER_MATH = r"""
document.addEventListener("DOMContentLoaded", function () {
  if (typeof renderMathInElement !== "function") { return; }
  document.querySelectorAll(".jp-RenderedMarkdown, .jp-MarkdownOutput, .wb-math").forEach(function (el) {
    renderMathInElement(el, {
      delimiters: [{left: "$$", right: "$$", display: true}, {left: "\\[", right: "\\]", display: true},
                   {left: "$", right: "$", display: false}, {left: "\\(", right: "\\)", display: false}],
      output: "mathml", throwOnError: false, ignoredClasses: ["jp-OutputArea"]
    });
  });
});
"""


#: Tables of a report: text left-aligned (JupyterLab right-aligns every cell), numbers right-aligned in
#: tabular figures, so a column of numbers lines up and a column of words reads.
TABLE_STYLE = r"""<style>
.jp-RenderedHTMLCommon table td, .jp-RenderedHTMLCommon table th { text-align: left; }
.jp-RenderedHTMLCommon table td.wb-num { text-align: right; font-variant-numeric: tabular-nums; }
.jp-RenderedHTMLCommon table thead tr { text-align: left !important; }
.js-plotly-plot, .plotly-graph-div { width: 100% !important; }
</style>
<script>
document.addEventListener("DOMContentLoaded", function () {
  var number = /^[\s+\u2212-]*[0-9][0-9,.]*(e[+-]?[0-9]+)?\s*[%\u00d7]?\s*$/i;
  document.querySelectorAll(".jp-RenderedHTMLCommon table td").forEach(function (td) {
    if (number.test(td.textContent)) { td.classList.add("wb-num"); }
  });
});
</script>
"""


def katex_dir() -> Path | None:
    """Where the installed KaTeX lives (Panel bundles it), or ``None``."""
    try:
        import panel
    except ImportError:
        return None
    found = sorted((Path(panel.__file__).parent / "dist" / "bundled" / "katex").glob("katex@*/dist/katex.min.js"))
    return found[-1].parent if found else None


def math_script() -> str:
    """Inline ``<script>`` tags that typeset the page's LaTeX offline ("" when KaTeX is not installed)."""
    root = katex_dir()
    if root is None or not (root / "contrib" / "auto-render.min.js").exists():
        return ""
    katex = (root / "katex.min.js").read_text(encoding="utf-8")
    auto = (root / "contrib" / "auto-render.min.js").read_text(encoding="utf-8")
    return f"<script>{katex}</script>\n<script>{auto}</script>\n<script>{_RENDER_MATH}</script>"

_REMOTE_SCRIPT = re.compile(r"<script[^>]+src=[\"']?(https?:)?//", re.I)
_REMOTE_LINK = re.compile(r"<link[^>]+href=[\"']?(https?:)?//", re.I)


def remote_resources(html: str) -> list[str]:
    """Script or stylesheet tags that would load from the network (an offline report has none)."""
    return [m.group(0) for m in _REMOTE_SCRIPT.finditer(html)] + [m.group(0) for m in _REMOTE_LINK.finditer(html)]


def parse_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value: a Python literal when it is one (3, 0.1, True, 'x', [1, 2]), else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> Any:
    """Add a cell tagged ``injected-parameters`` after the ``parameters`` cell (papermill's convention)."""
    import nbformat

    if not parameters:
        return nb
    lines = ["# Parameters (injected)"] + [f"{k} = {v!r}" for k, v in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    index = next((i + 1 for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    cells.insert(index, cell)
    nb.cells = cells
    return nb


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_notebook(path: str | Path, parameters: dict[str, Any] | None = None, timeout: int = 900,
                     kernel_name: str = "python3", cwd: str | Path | None = None) -> Any:
    """Run every cell of the notebook at ``path`` with ``parameters`` injected; return the executed notebook.

    The kernel runs headless (``WORKBENCH_HEADLESS=1``: runs block and leave static figures) and talks to us over
    local sockets (IPC transport: nothing listens on a TCP port, and the kernel prints no warning about an
    unencrypted one). A failing cell raises ``nbclient.exceptions.CellExecutionError`` naming the cell.
    """
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    path = Path(path)
    nb = inject_parameters(nbformat.read(path, as_version=4), dict(parameters or {}))
    with tempfile.TemporaryDirectory(prefix="wb-kernel-") as sockets:
        km = KernelManager(kernel_name=kernel_name, transport="ipc", ip=str(Path(sockets) / "k"))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=kernel_name, store_widget_state=False,
                                resources={"metadata": {"path": str(cwd or path.parent)}})
        try:
            with _env(WORKBENCH_HEADLESS="1", PYDEVD_DISABLE_FILE_VALIDATION="1"):
                client.execute()
        finally:  # the client shuts down only kernels it made itself
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return nb


def to_html(nb: Any, no_input: bool = False) -> str:
    """Self-contained HTML of an executed notebook (no request leaves the page)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"wb_offline.html.j2": _TEMPLATE})],
                            template_file="wb_offline.html.j2", exclude_input=no_input,
                            exclude_input_prompt=no_input, exclude_output_prompt=no_input)
    from .render import for_export

    nb = copy.deepcopy(nb)
    for_export(nb)  # a notebook saved from Lab holds figures as JSON only: give them HTML and plotly.js once
    nb.metadata.pop("widgets", None)  # live widget state (megabytes of JS per plot) has no place in a report
    for cell in nb.cells:  # no widget manager in a report: show each widget's HTML fallback instead
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIME in data and len(data) > 1:
                data.pop(WIDGET_MIME)
    body, _ = exporter.from_notebook_node(nb, resources={"wb_math": math_script() + TABLE_STYLE})
    return body


def live_outputs(nb: Any, shell: Any) -> int:
    """Fill the code cells of ``nb`` (a saved notebook) with the outputs this IPython kernel recorded for them
    (:mod:`widgets.record`, installed by ``%load_ext widgets``); returns how many cells were filled.

    A cell is matched with the latest execution of this session whose source is the same; cells the kernel
    never ran (or ran before ``%load_ext widgets``) keep the outputs saved in the file.
    """
    import nbformat

    from .record import recorder

    rec = recorder(shell)
    if rec is None:
        return 0
    filled = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        found = rec.outputs(cell.source)
        if found is None:
            continue
        outputs, count = found
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        cell.execution_count = count
        filled += 1 if outputs else 0
    return filled


def chromium_path() -> str | None:
    """Debian's Chromium (``$WORKBENCH_CHROMIUM``, default /usr/bin/chromium), or ``None`` when not installed."""
    return shutil.which(CHROMIUM) or shutil.which("chromium") or shutil.which("chromium-browser")


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, timeout: int = 120) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium (plots are drawn before printing)."""
    chromium = chromium_path()
    if not chromium:
        raise RuntimeError(f"PDF export needs Chromium at {CHROMIUM} (apt-get install chromium), or use --to html")
    pdf_path = Path(pdf_path).resolve()
    with tempfile.TemporaryDirectory(prefix="wb-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               "--virtual-time-budget=10000", "--run-all-compositor-stages-before-draw",
               f"--print-to-pdf={pdf_path}", Path(html_path).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not pdf_path.exists() or pdf_path.stat().st_size == 0:
        raise RuntimeError(f"Chromium did not write {pdf_path} (exit {proc.returncode}): {proc.stderr[-800:]}")
    return pdf_path


def export_notebook(notebook: str | Path, out: str | Path | None = None, to: str = "html",
                    no_input: bool = False) -> Path:
    """Export an already-executed notebook (as saved) to HTML or PDF."""
    import nbformat

    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    return write_report(nb, default_out(notebook, out, to), to=to, no_input=no_input)


def write_report(nb: Any, out: Path, to: str = "html", no_input: bool = False) -> Path:
    if to not in ("html", "pdf"):
        raise ValueError(f"--to must be html or pdf, got {to!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html = to_html(nb, no_input=no_input)
    if to == "html":
        out.write_text(html, encoding="utf-8")
        return out
    with tempfile.TemporaryDirectory(prefix="wb-report-") as tmp:
        page = Path(tmp) / (out.stem + ".html")
        page.write_text(html, encoding="utf-8")
        return html_to_pdf(page, out)


def report(notebook: str | Path, parameters: dict[str, Any] | None = None, out: str | Path | None = None,
           to: str = "html", no_input: bool = False, timeout: int = 900) -> Path:
    """Execute ``notebook`` with ``parameters`` and write the report; returns its path."""
    notebook = Path(notebook)
    if not notebook.exists():
        raise FileNotFoundError(f"no notebook at {notebook}")
    nb = execute_notebook(notebook, parameters, timeout=timeout)
    return write_report(nb, default_out(notebook, out, to), to=to, no_input=no_input)


def default_out(notebook: Path, out: str | Path | None, to: str) -> Path:
    """``out``, or ``reports/<notebook>.<html|pdf>``."""
    return Path(out) if out else Path("reports") / f"{notebook.stem}.{to}"
