"""The small demo's `snakemake --report` in a real headless Chromium (tests/headless_browser.py):
the single-page app loads without a JavaScript error, the landing page shows the run's
headline numbers (results/report/headline.tsv, rule headline_numbers), every figure of the
run is registered and decodes as an image, and the landing page and the tiling-QC category
are screenshotted into the test's temporary folder.

Reuses the report built from the session's small-demo run (conftest: small_demo_report);
Chromium missing fails the test (scripts/install_system_deps.sh installs it)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from headless_browser import Browser

QC_CATEGORY = "Tiling QC"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# Two animation frames: React has rendered the state set before.
_RENDERED = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


def _open_category(browser, category: str) -> None:
    browser.evaluate(f"app.setView({{navbarMode: 'menu'}}); {_RENDERED}")
    browser.wait_for("app.state.navbarMode === 'menu'", "the main menu")
    browser.evaluate(f"app.showCategory({json.dumps(category)}); {_RENDERED}")


@pytest.mark.slow
def test_report_in_headless_browser(small_demo_run, small_demo_report, tmp_path):
    headline = pd.read_csv(small_demo_run / "results" / "report" / "headline.tsv", sep="\t")
    figures = sorted(str(p.relative_to(small_demo_run)) for p in (small_demo_run / "results").rglob("*.png"))
    assert figures, "the run wrote no figure"

    with Browser(tmp_path / "chromium-profile") as browser:
        browser.navigate(small_demo_report.as_uri())
        browser.wait_for("document.querySelector('#loading-screen').style.display === 'none' "
                         "&& typeof app !== 'undefined' && document.querySelector('#app').innerText.length > 0",
                         "the report app to render")

        # landing page: the static text, then every headline number of the run
        landing = _squash(browser.wait_for("document.body.innerText.includes('Headline numbers of this run') "
                                           "&& document.body.innerText", "the headline numbers on the landing page"))
        assert "validates the predictions statistically" in landing
        missing = [t for t in headline["text"] if _squash(str(t)) not in landing]
        assert not missing, f"headline numbers not on the landing page: {missing}"
        browser.screenshot(tmp_path / "landing.png")

        # every figure the run wrote is registered in the report and decodes as an image
        registered = browser.evaluate("JSON.stringify(Object.fromEntries(Object.entries(results).map("
                                      "([p, r]) => [p, r.mime_type])))")
        registered = json.loads(registered)
        unregistered = [f for f in figures if f not in registered]
        assert not unregistered, f"figures missing from the report: {unregistered}"
        decoded = browser.evaluate("""Promise.all(Object.entries(results)
            .filter(([p, r]) => r.mime_type.startsWith('image/'))
            .map(([p, r]) => new Promise(done => { const img = new Image();
                img.onload = () => done([p, img.naturalWidth]); img.onerror = () => done([p, 0]);
                img.src = r.data_uri; })))""")
        broken = [p for p, width in decoded if not width]
        assert len(decoded) >= len(figures) and not broken, f"figures that do not load: {broken}"

        # every category opens in the navigation and lists its results (by their labels,
        # or their file name for a result without labels), or its subcategories
        categories = json.loads(browser.evaluate("JSON.stringify(categories)"))
        labels = json.loads(browser.evaluate("JSON.stringify(Object.fromEntries(Object.entries(results).map("
                                             "([p, r]) => [p, [r.name, r.labels]])))"))
        assert QC_CATEGORY in categories, sorted(categories)
        for category, subcategories in categories.items():
            if len(subcategories) == 1:
                expected = sorted({str(v) for p in next(iter(subcategories.values()))
                                   for v in (labels[p][1].values() if labels[p][1] else [labels[p][0]])})
            else:
                expected = sorted(subcategories)
            # through the main menu, as a reader clicks (Snakemake's results table keeps its
            # rows when one category replaces another directly)
            _open_category(browser, category)
            browser.wait_for(f"app.state.category === {json.dumps(category)} && "
                             f"{json.dumps(expected)}.every(s => document.querySelector('nav, #app').innerText"
                             ".includes(s))", f"category {category} listing {expected}")

        # the QC category with its first map on screen
        qc_map = sorted(p for paths in categories[QC_CATEGORY].values() for p in paths)[0]
        _open_category(browser, QC_CATEGORY)
        browser.evaluate(f"app.setView({{content: 'img', contentPath: results[{json.dumps(qc_map)}].data_uri, "
                         f"resultPath: {json.dumps(qc_map)}}}); true")
        browser.wait_for("Array.from(document.images).some(i => i.src.startsWith('data:image/png') "
                         "&& i.complete && i.naturalWidth > 0)", "the QC map on screen")
        browser.screenshot(tmp_path / "qc.png")

    assert not browser.errors, "errors in the report page:\n" + "\n".join(browser.errors)
    for shot in ("landing.png", "qc.png"):
        assert (tmp_path / shot).stat().st_size > 10_000, shot
    print(f"report screenshots: {tmp_path / 'landing.png'}, {tmp_path / 'qc.png'}")
