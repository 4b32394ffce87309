"""`make site` (includes/tools/site.py): the course website, built and then looked at in Chromium.

The site is built once (about 10-15 s) into a temporary folder with the same command `make site`
runs; the browser opens its files as a person would (file://) and must make no request to any
other host. Screenshots: build/screenshots/site-home.png, site-lesson-plot.png, site-lab.png,
site-search.png.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from includes.tools import site
from includes.tools.agenda import AGENDA
from tests.test_browser import chromium, free_port, new_page, screenshot, server

ROOT = Path(__file__).resolve().parent.parent
LESSON_WITH_PLOTS = "ML07_Decision_Trees"
LAB = "ML03L_Linear_Regression_I_Lab"
SEARCH_WORD = "silhouette"  # a word of one lesson's text (MLE01), checked below
PARTS = ["Day 1", "Day 2", "Day 3", "Day 4", 'Streaming track ("+")', "Electives"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """The site as `make site` builds it (the same module and command), in a temporary folder."""
    out = tmp_path_factory.mktemp("site") / "site"
    # nothing is executed: no Java and no datasets are needed
    env = dict(os.environ, JAVA_HOME="/nonexistent", COURSE_DATASETS_DIR=str(tmp_path_factory.mktemp("no-datasets")))
    result = subprocess.run([sys.executable, "-m", "includes.tools.site", "--out", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return out, result.stdout + result.stderr


def test_the_toc_has_a_part_per_day_and_every_lab_with_its_solution():
    toc = site.toc_yaml()
    assert re.findall(r"caption: \"(.*)\"", toc) == [p.replace('"', '\\"') for p in PARTS]
    for entry in AGENDA:
        if entry.kind == "lab":
            assert (f"- file: labs/{entry.stem}\n        title: \"{entry.id} {entry.title}\"\n        sections:\n"
                    f"          - file: solutions/{entry.stem}\n") in toc
        else:
            assert f"- file: notebooks/{entry.stem}\n" in toc
    assert toc.count("- file: ") == sum(2 if entry.kind == "lab" else 1 for entry in AGENDA)


def test_home_page_is_the_readmes_agenda_and_datasets_with_links_only_to_pages():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = {f"{folder}/{entry.stem}" for entry in AGENDA
             for folder in (("labs", "solutions") if entry.kind == "lab" else ("notebooks",))}
    home = site.home_page(readme, pages)
    assert home.startswith("# Scalable Machine Learning with Apache Spark\n")
    assert [line for line in home.splitlines() if line.startswith("## ")] == ["## Agenda", "## Datasets"]
    assert "| ML03L | 2 | [Linear Regression I Lab](labs/ML03L_Linear_Regression_I_Lab.ipynb) " \
           "([solution](solutions/ML03L_Linear_Regression_I_Lab.ipynb))" in home
    # a README link to a file that is no page of the site stays readable, as code
    assert "[`requirements.txt`](requirements.txt)" in readme and "(requirements.txt)" not in home
    assert "`requirements.txt`" in home
    for target in re.findall(r"\]\(([^)]+)\)", home):
        assert target.startswith(("http", "#")) or target.removesuffix(".ipynb") in pages, target


def test_a_warning_such_as_a_broken_link_fails_the_build(tmp_path):
    source = tmp_path / "book"
    source.mkdir()
    (source / "_config.yml").write_text((ROOT / "site" / "_config.yml").read_text())
    (source / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (source / "index.md").write_text("# A page\n\nSee [the missing lesson](notebooks/Missing.ipynb).\n")
    with pytest.raises(SystemExit, match="jupyter-book build failed"):
        site.jupyter_book(source, tmp_path / "output")


def test_make_site_builds_every_notebook_without_warnings(built):
    out, log = built
    notebooks = sum(2 if entry.kind == "lab" else 1 for entry in AGENDA)
    assert f"building {notebooks} notebooks from their stored outputs" in log
    assert site.page_count(out) == notebooks + 1  # and the home page
    for entry in AGENDA:
        for folder in (("labs", "solutions") if entry.kind == "lab" else ("notebooks",)):
            page = (out / folder / f"{entry.stem}.html").read_text(encoding="utf-8")
            if folder == "solutions":  # the code as a learner writes it, not the lab generator's markers
                assert "BEGIN SOLUTION" not in page and "# LAB:" not in page
    assert (out / ".nojekyll").is_file() and (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert not out.with_name("site-src").exists()  # the staged source is removed
    # the outputs are the stored ones (built without Java or datasets: nothing ran)
    assert "training rows: 5780, test rows: 1366" in (out / "notebooks" / "ML03_Linear_Regression_I.html").read_text()


def test_the_site_in_a_browser_needs_no_other_host(built):
    out, _ = built
    requests: list[str] = []
    lesson = nbformat.read(ROOT / "notebooks" / f"{LESSON_WITH_PLOTS}.ipynb", as_version=4)
    plots = sum("image/png" in output.get("data", {}) for cell in lesson.cells if cell.cell_type == "code"
                for output in cell.outputs)
    assert plots >= 1
    with chromium() as browser:
        page = new_page(browser)
        page.on("request", lambda request: requests.append(request.url))

        # the home page: the agenda, a part per day in the navigation, the datasets' attributions
        page.goto((out / "index.html").as_uri())
        page.wait_for_load_state("networkidle")
        text = page.inner_text("main")
        assert "Scalable Machine Learning with Apache Spark" in text
        rows = page.locator("main table").first.locator("tbody tr")
        assert rows.count() == len(AGENDA)
        captions = page.locator(".bd-sidebar .caption-text").all_inner_texts()
        assert captions == PARTS
        for attribution in ("attribute Inside Airbnb", "Harper & Konstan 2015", "Goldberg et al. 2001"):
            assert attribution in text
        screenshot(page, "site-home.png")

        # a lesson from the agenda's link, with its stored plots drawn
        page.locator("main table").get_by_role("link", name="Decision Trees", exact=True).click()
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(f"notebooks/{LESSON_WITH_PLOTS}.html")
        images = page.locator("main .cell_output img")
        assert images.count() == plots
        for i in range(plots):
            images.nth(i).scroll_into_view_if_needed()
            assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 100")
        screenshot(page, "site-lesson-plot.png")

        # a lab with its TODOs, its solution right under it in the navigation
        page.goto((out / "labs" / f"{LAB}.html").as_uri())
        page.wait_for_load_state("networkidle")
        assert "<FILL_IN>" in page.inner_text("main")
        page.wait_for_selector("main mjx-container")  # its formula, typeset by the site's own MathJax
        screenshot(page, "site-lab.png")
        page.locator(".bd-sidebar").get_by_role("link", name="ML03L solution").click()
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(f"solutions/{LAB}.html")
        solution = page.inner_text("main")
        assert "PASS" in solution and "<FILL_IN>" not in solution

        # search, over file://, for a word that is in one lesson only
        holders = [entry.stem for entry in AGENDA
                   for folder in (("labs", "solutions") if entry.kind == "lab" else ("notebooks",))
                   if SEARCH_WORD in (ROOT / folder / f"{entry.stem}.ipynb").read_text(encoding="utf-8").lower()]
        assert holders == ["MLE01_K_Means"], f"pick another SEARCH_WORD: {SEARCH_WORD!r} is in {holders}"
        page.locator(".bd-sidebar .search-button-field").click()  # the sidebar's search box
        page.locator("input[name=q]:visible").fill(SEARCH_WORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("#search-results ul.search li", timeout=30_000)
        page.wait_for_function("() => /found \\d+ page/.test(document.querySelector('#search-results').innerText)")
        assert page.url == (out / "search.html").as_uri() + f"?q={SEARCH_WORD}"
        results = page.locator("#search-results ul.search li > a").all_inner_texts()
        assert results == ["MLE01 K-Means"], results
        screenshot(page, "site-search.png")

    assert requests, "no request was seen at all"
    assert any(url.endswith("/_static/mathjax/tex-chtml.js") for url in requests)
    outside = [url for url in requests if not url.startswith(("file://", "data:", "blob:"))]
    assert not outside, f"the site asked other hosts: {outside[:10]}"


def test_the_site_served_over_http_asks_only_its_server(built):
    """The README's `python -m http.server -d build/site`: the pages and search work from a web server too."""
    out, _ = built
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    requests: list[str] = []
    with server([sys.executable, "-m", "http.server", "-d", str(out), "--bind", "127.0.0.1", str(port)], f"{base}/",
                dict(os.environ), seconds=30), chromium() as browser:
        page = new_page(browser)
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base}/search.html?q={SEARCH_WORD}")
        page.wait_for_selector("#search-results ul.search li", timeout=30_000)
        assert page.locator("#search-results ul.search li > a").all_inner_texts() == ["MLE01 K-Means"]
        page.locator("#search-results ul.search li > a").first.click()
        page.wait_for_load_state("networkidle")
        assert page.url.startswith(f"{base}/notebooks/MLE01_K_Means.html")
        assert page.locator("main .cell_output img").count() >= 1
    outside = [url for url in requests if not url.startswith((f"{base}/", "data:", "blob:"))]
    assert not outside, f"the site asked other hosts: {outside[:10]}"
