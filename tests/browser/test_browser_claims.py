"""The claims table as a reader sees it in Chromium: its columns, the outcome colours (inconclusive amber, never the
red of fails), every reason and interval visible, nothing cut or scrolling sideways at a laptop's and a narrow
width, and a clean console."""
from __future__ import annotations

import pytest

from widgets.labels import OUTCOME_COLOURS, claims_html
from workbench.core.claims import Effect, exceeds, not_worse, superior

LONG = ("At equal sampled KL, KTO reaches a higher desirable rate than DPO (paper: KTO ≥ DPO from 1B to 30B "
        "parameters on every benchmark of the paper's Table 1, with a long detail to wrap)")


def _records() -> list[dict]:
    holds = superior("NoisyMix has the best mean corruption accuracy", "noisymix", "augmix",
                     Effect.normal(0.064, 0.0045, samples=10_000), paper="Table 2")
    fails = superior("NoisyMix is better calibrated than standard training", "noisymix", "baseline",
                     Effect.normal(0.169, 0.008), better="lower")
    straddles = superior(LONG, "kto", "dpo", Effect.normal(-0.001, 0.021, samples=256))
    precondition = not_worse("The SDE-BNN's accuracy is not worse than the ODE-net's", "SDE-BNN", "ODE-net",
                             Effect.normal(-0.01, 0.006), margin=0.03,
                             precondition=(False, "both arms at chance (0.10 and 0.11 on 10 classes)"))
    smoke = exceeds("The default classifier reaches 95%", Effect.normal(0.5, 0.1, kind="value"), 0.95)
    records = [c.to_record() for c in (holds, fails, straddles, precondition)]
    records.append({**smoke.not_evaluated("not evaluated (smoke run)").to_record()})
    return records


def _rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (0, 2, 4)))


@pytest.mark.parametrize("width", [1300, 640])
def test_claims_table_layout_colours_and_console(page, tmp_path, width):
    records = _records()
    path = tmp_path / "claims.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><body style='margin:16px'>{claims_html(records)}</body>")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(path.as_uri())
    table = page.locator("table.wb-claims")
    assert table.count() == 1
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    assert headers == ["claim", "method vs arm", "effect ± uncertainty", "rule", "outcome"]
    rows = table.locator("tbody tr")
    assert rows.count() == len(records)

    cells = table.locator("td[data-outcome]")
    outcomes = [cells.nth(i).get_attribute("data-outcome") for i in range(cells.count())]
    assert outcomes == ["holds", "fails", "inconclusive", "inconclusive", "not evaluated"]
    colours = [cells.nth(i).evaluate("e => getComputedStyle(e).color") for i in range(cells.count())]
    assert colours == [_rgb(OUTCOME_COLOURS[o]) for o in outcomes]
    assert colours[1] != colours[2]  # inconclusive is never shown as a failure

    text = table.inner_text()
    assert "straddles" in text and "both arms at chance" in text and "not evaluated (smoke run)" in text
    assert "0.0640 ± 0.0088" in text and "[0.0552, 0.0728]" in text and "noisymix vs augmix" in text and "holds if the 95% interval" in text
    assert "with a long detail to wrap" in text  # the whole statement, wrapped, not cut

    # nothing scrolls sideways, no cell clips its content
    overflow = page.evaluate("""() => {
        const t = document.querySelector('table.wb-claims');
        const cells = [...t.querySelectorAll('td, th')].filter(c => c.scrollWidth > c.clientWidth + 1);
        return {table: t.getBoundingClientRect().right, page: document.documentElement.clientWidth,
                scroll: document.documentElement.scrollWidth, clipped: cells.map(c => c.innerText.slice(0, 40))};
    }""")
    assert overflow["clipped"] == [], overflow
    assert overflow["scroll"] <= overflow["page"] and overflow["table"] <= overflow["page"], overflow
    # the statement column is the widest: the claim is what a reader reads first
    widths = table.locator("tbody tr").nth(2).locator("td").evaluate_all(
        "cs => cs.map(c => c.getBoundingClientRect().width)")
    assert widths[0] == max(widths)
    page.screenshot(path=str(tmp_path / f"claims-{width}.png"), full_page=True)
    assert page.console_errors == [] and page.external_requests == []
