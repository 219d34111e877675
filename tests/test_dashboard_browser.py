"""The dashboard served by `streamlit run` and rendered by headless Chromium, comparing the
two arms of a what-if's counterfactual (quickstart with half the users fundamentalists, a
shilling attack from step 1 and gender unlearning, against the same without unlearning; a
breach at step 2 in both), and that counterfactual's report.

Needs Debian's chromium and chromium-driver; the screenshots land in
outputs/test-artifacts/dashboard.png and outputs/test-artifacts/report-counterfactual.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import simulator
from simulator.analysis.report import write_report
from simulator.dashboard import APP_PATH
from tests.test_dashboard import TINY

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "outputs" / "test-artifacts" / "dashboard.png"
REPORT_SHOT = REPO / "outputs" / "test-artifacts" / "report-counterfactual.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Two metrics over time, their two differences, the trade-off and the groups of one kind.
CHARTS = 6
CHART = '[data-testid="stVegaLiteChart"]'
WHAT_IF = [*TINY, "events=[{step: 2, kind: breach}]",
           "population.types={fundamentalist: {share: 0.5, beta: 0.2}, "
           "pragmatist: {share: 0.3, beta: 0.6}, unconcerned: {share: 0.2, beta: 1.0}}",
           "attackers+={kind: shilling, start_step: 1, attack_size: 0.05}",
           "world.signal=3", "platform.defenses.unlearning={attribute: gender}"]

pytestmark = [pytest.mark.heavy, pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
    reason="Debian chromium and chromium-driver are not installed: "
           "apt-get install chromium chromium-driver",
)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path,
                        seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}:\n"
                               f"{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {seconds} s:\n"
                       f"{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    outputs = tmp_path_factory.mktemp("outputs")
    found = simulator.counterfactual("quickstart", {"platform.defenses.unlearning": None},
                                     WHAT_IF, seeds=2, out=outputs / "what-if", workers=1)
    _report_screenshot(found.path)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("log") / "streamlit.log"
    log = log_path.open("wb")
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP_PATH),
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--", "--outputs", str(outputs)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log_path, 30)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _report_screenshot(folder: Path) -> None:
    """The counterfactual's report (both arms and their difference), rendered by Chromium."""
    report = write_report(folder)
    REPORT_SHOT.parent.mkdir(parents=True, exist_ok=True)
    REPORT_SHOT.unlink(missing_ok=True)
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", f"--user-data-dir={folder / '.chromium'}",
                    "--hide-scrollbars", "--window-size=1280,3600",
                    f"--screenshot={REPORT_SHOT}", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert REPORT_SHOT.stat().st_size > 20_000


def test_the_dashboard_compares_two_variants_in_chromium(server: str) -> None:
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--disable-background-networking",
                     "--window-size=1600,3000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(server)
        source = "//label[.//p[text()='Counterfactual']]"  # the sidebar's Source choice
        WebDriverWait(driver, 90, poll_frequency=0.5).until(
            lambda browser: browser.find_elements(By.XPATH, source))
        driver.find_element(By.XPATH, source).click()

        def drawn(browser: webdriver.Chrome) -> bool:
            headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2")]
            charts = browser.find_elements(By.CSS_SELECTOR, f"{CHART} svg.marks")
            return "Difference: with minus without" in headers and len(charts) >= CHARTS

        WebDriverWait(driver, 90, poll_frequency=0.5).until(drawn)
        headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1, h2")]
        assert "privsim dashboard" in headers
        assert {"Metrics over time", "Difference: with minus without",
                "Privacy-utility trade-off", "Groups"} <= set(headers)
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        charts = driver.find_elements(By.CSS_SELECTOR, CHART)
        texts = [chart.find_element(By.CSS_SELECTOR, "svg.marks").get_attribute("textContent")
                 or "" for chart in charts]
        # The arms are named by their folders (less the seed), whole, in every chart showing
        # both; the difference charts show the difference against no difference.
        for text in (texts[0], texts[1], texts[4]):
            assert "with" in text and "without" in text
            assert "platform.defenses" not in text and "[" not in text
        for text in texts[2:4]:
            assert "with − without" in text
        # The timeline layer: the attack's first fakes and the breach are marked.
        for text in texts[:4]:
            assert "fake profiles" in text and "breach" in text
        # One colour per arm across charts: the same stroke for "with" everywhere.
        colours = driver.execute_script(
            "return Array.from(arguments[0]).map(c => Array.from(c.querySelectorAll("
            "'g.role-legend-symbol path')).map(p => p.getAttribute('stroke')).join(','));",
            [charts[0], charts[1], charts[4]])
        assert colours[0] == colours[1] and colours[0] != ""
        # Every chart fills its column: the plot is as wide as its container.
        for chart in charts:
            own, room = driver.execute_script(
                "const svg = arguments[0].querySelector('svg.marks');"
                "return [svg.getBoundingClientRect().width,"
                " arguments[0].parentElement.getBoundingClientRect().width];", chart)
            assert own >= 0.95 * room and room > 400
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))
    finally:
        driver.quit()
    assert SCREENSHOT.stat().st_size > 10_000
