"""The dashboard served by `streamlit run` and rendered by headless Chromium, comparing two
variants of one scenario (without and with a defense switched on at step 1, both with a
breach at step 2).

Needs Debian's chromium and chromium-driver; the screenshot lands in
outputs/test-artifacts/dashboard.png.
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

from simulator.dashboard import APP_PATH
from simulator.experiments.catalog import load_scenario
from simulator.experiments.runner import run_scenario
from tests.test_dashboard import TINY

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "outputs" / "test-artifacts" / "dashboard.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Two metrics, the trade-off and the groups of one kind as charts; the social graph an image.
CHARTS = 4
CHART = '[data-testid="stVegaLiteChart"]'
PLOT_IMAGES = '[data-testid="stImage"] img'
VARIANTS = {"no-defense": [], "adversarial": ["platform.defenses.adversarial={start_step: 1}"]}
SHARED = [*TINY, "population.policy=social", "events=[{step: 2, kind: breach}]"]

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
    for name, changes in VARIANTS.items():
        scenario = load_scenario("quickstart", [*SHARED, *changes])
        run_scenario(scenario, out=outputs / "runs" / name, progress=False)
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

        def drawn(browser: webdriver.Chrome) -> bool:
            charts = browser.find_elements(By.CSS_SELECTOR, f"{CHART} svg.marks")
            images = browser.find_elements(By.CSS_SELECTOR, PLOT_IMAGES)
            return len(charts) >= CHARTS and len(images) >= 1 and all(
                browser.execute_script("return arguments[0].complete "
                                       "&& arguments[0].naturalWidth > 0", image)
                for image in images)

        WebDriverWait(driver, 90, poll_frequency=0.5).until(drawn)
        headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1, h2")]
        assert "privsim dashboard" in headers
        assert {"Metrics over time", "Privacy-utility trade-off", "Groups",
                "Social graph"} <= set(headers)
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        charts = driver.find_elements(By.CSS_SELECTOR, CHART)
        texts = [chart.find_element(By.CSS_SELECTOR, "svg.marks").get_attribute("textContent")
                 or "" for chart in charts]
        # Legends name only what differs: the defense, not the config path or scenario.
        for text in texts[:3]:
            assert "no adversarial" in text and "adversarial" in text
            assert "platform.defenses" not in text and "quickstart" not in text
        # The timeline layer: the defense start and the breach are labelled marks.
        for text in (texts[0], texts[1], texts[3]):
            assert "adversarial defense on" in text and "breach" in text
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
