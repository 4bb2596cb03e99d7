"""Helpers of the browser tests: driving JupyterLab, reading a drawn plotly layout, checking its panels."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "wb-test-token"


def open_notebook(page, base: str, name: str) -> None:
    """Open ``name`` (relative to the Lab root) with a fresh layout and wait for its kernel to be idle."""
    page.set_default_timeout(90_000)
    page.goto(f"{base}/lab/tree/{name}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # a fresh JupyterLab may ask which kernel to start: whichever comes first, that dialog or the kernel ready (waiting
    # for a dialog that never came cost 10 s per notebook)
    page.wait_for_function(f"() => ({KERNEL_READY_JS})() || !!document.querySelector('.jp-Dialog')", polling=200,
                           timeout=120_000)
    select = page.locator(".jp-Dialog button", has_text="Select")
    if select.count():
        select.first.click()
    page.wait_for_function(KERNEL_READY_JS, polling=200, timeout=120_000)


#: The notebook's kernel has started and is idle: the execution indicator also says idle before any kernel is
#: attached, while the toolbar still reads "No Kernel".
KERNEL_READY_JS = """() => {
  const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const names = [...document.querySelectorAll('.jp-Toolbar-kernelName')].map(e => e.textContent.trim());
  return !!status && status.getAttribute('data-status') === 'idle' && names.length > 0
    && names.every(n => n && n !== 'No Kernel');
}"""


def run_cell_containing(page, text: str):
    """Select the code cell whose source contains ``text`` and run it (Shift+Enter); returns the cell."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=text)).first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    return cell


#: The rendered layout of a plotly figure in the page: panel domains, panel titles, trace metas.
PLOTLY_LAYOUT_JS = """el => {
  const L = el._fullLayout;
  const axes = Object.keys(L).filter(k => /^xaxis\\d*$/.test(k)).sort();
  return {
    panels: axes.map(k => ({x: L[k].domain, y: L['yaxis' + k.slice(5)].domain})),
    titles: (L.annotations || []).filter(a => a.name === 'panel-title').map(a => a.text.replace(/<\\/?b>/g, '')),
    drawnTitles: el.querySelectorAll('.annotation-text').length,
    metas: el._fullData.map(t => t.meta || ''),
    height: L.height,
  };
}"""


def check_panels(layout: dict) -> list[str]:
    """The problems of a drawn curves figure: overlapping panels, untitled panels, panels ≠ metrics shown."""
    from widgets.curves import panels

    problems = []
    boxes = layout["panels"]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if min(a["x"][1], b["x"][1]) > max(a["x"][0], b["x"][0]) + 1e-9 and \
                    min(a["y"][1], b["y"][1]) > max(a["y"][0], b["y"][0]) + 1e-9:
                problems.append(f"panels overlap: {a} and {b}")
    if len(layout["titles"]) != len(boxes):
        problems.append(f"{len(boxes)} panels but {len(layout['titles'])} titles: {layout['titles']}")
    if layout["drawnTitles"] < len(boxes):
        problems.append(f"only {layout['drawnTitles']} titles drawn for {len(boxes)} panels")
    metrics = list(dict.fromkeys(m.split("::")[1] for m in layout["metas"] if "::" in m))
    expected = list(panels(metrics))
    if sorted(expected) != sorted(layout["titles"]):
        problems.append(f"panels {layout['titles']} but the metrics shown make {expected}")
    return problems


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in Lab's menu bar, then ``item`` in its menu."""
    import re

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def run_all(page) -> None:
    """Run > Run All Cells, as a person does."""
    menu(page, "Run", "Run All Cells")


def save(page) -> None:
    """File > Save Notebook."""
    menu(page, "File", "Save Notebook")


#: true once Run All has ended: the kernel idle and the last code cell run, or a cell failed (Lab stops there;
#: the saved file says which)
ALL_RAN_JS = """() => {
  const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt'))
    .map(p => p.textContent);
  const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']") !== null;
  const failed = Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea-output .ansi-red-fg'))
    .some(el => /(Error|Exception)\\b/.test(el.textContent));
  return idle && prompts.length > 0 && !prompts.some(p => p.includes('*'))
    && (failed || /\\[\\d+\\]/.test(prompts[prompts.length - 1]));
}"""

#: every plotly figure on show (not in a hidden box): its width, the width of the output area holding it, its title
FIGURE_WIDTHS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .js-plotly-plot'))
  .filter(el => el.getClientRects().length > 0).map(el => {
  const area = el.closest('.jp-OutputArea-output') || el.parentElement;
  const L = el._fullLayout || {};
  return {width: el.getBoundingClientRect().width, area: area.getBoundingClientRect().width,
          layoutWidth: L.width || 0, title: ((L.title || {}).text || '').slice(0, 60),
          inWidget: el.closest('.widget-output, .jupyter-widgets') !== null};
})"""

#: text of every widget that failed to draw
BROKEN_WIDGETS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea-output'))
  .map(el => el.innerText).filter(t => /Click to show javascript error|Could not create a view|Error displaying widget/.test(t))
  .map(t => t.slice(0, 200))"""
