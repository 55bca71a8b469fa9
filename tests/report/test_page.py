"""report.html renders in a real headless Chromium with every plot present and loaded."""

import re
import shutil

import pytest

from selfsup.report import write_report

CHROMEDRIVER = "/usr/bin/chromedriver"
TITLES = ["Loss", "Learning rate", "RankMe", "Probe accuracy", "Few-shot accuracy",
          "Probe accuracy by layer", "Embedding map", "Nearest neighbours"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(digits_run):
    import selfsup

    # the few-shot curve and the layer study appear once eval.json holds them
    selfsup.evaluate(digits_run.dir, protocols=["nb", "fewshot", "layers"])
    return write_report(digits_run.dir)


def test_pretrain_writes_a_report(digits_run):
    page = (digits_run.dir / "report.html").read_text()
    assert "Loss" in page and "Nearest neighbours" in page
    # what was trained, in units that travel, beside the evaluation's own time
    for row in ("3 epochs", "training compute", "GFLOP", "training time (min)",
                "evaluation time (min)"):
        assert row in page, row


def test_report_is_self_contained(report):
    page = report.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(TITLES)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page


@pytest.mark.skipif(_chromium() is None or shutil.which(CHROMEDRIVER) is None,
                    reason="headless Chromium not installed (Debian: apt-get install chromium "
                    "chromium-driver; setup.sh does it where apt exists)")
def test_report_renders_in_headless_chromium(report):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,3000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(report.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
            " width: i.naturalWidth, height: i.naturalHeight}))")
        headings = driver.execute_script(
            "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    finally:
        driver.quit()
    assert headings == TITLES
    assert [i["alt"] for i in images] == TITLES
    for img in images:
        assert img["complete"] and img["width"] > 100 and img["height"] > 100, img
