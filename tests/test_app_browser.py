"""End to end in a real browser: `cifar-app` serving a trained checkpoint, driven by headless Chromium.

Selenium drives Debian's ``chromium`` through its matching ``chromium-driver`` (both installed by
``.ci/run``); the test skips when either is missing, so a laptop without them still passes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_app import png_bytes, prototype_image, recognised_class, train_app_checkpoint

from cifar_resnets.data.synthetic import CIFAR10_CLASSES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium missing: pip install -e .[dev]")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromium-driver are not installed"
    ),
]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]
SERVER_START_S = 120
PAGE_WAIT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_command(outputs: Path, port: int) -> list[str]:
    """The installed `cifar-app` script next to this interpreter, else the same module with -m."""
    script = Path(sys.executable).with_name("cifar-app")
    head = [str(script)] if script.is_file() else [sys.executable, "-m", "cifar_resnets.cli.app"]
    return [*head, "--outputs", str(outputs), "--port", str(port), "--address", "127.0.0.1"]


def wait_until_serving(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"cifar-app exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"cifar-app did not serve on port {port} within {SERVER_START_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def served_app(synthetic_cifar10: Path, tmp_path_factory):
    """(URL, checkpoint) of a running `cifar-app` on a trained checkpoint; the server always stops."""
    outputs = tmp_path_factory.mktemp("browser_outputs")
    run_dir = train_app_checkpoint(synthetic_cifar10, outputs)
    port = free_port()
    log = outputs / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(app_command(outputs, port), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(proc, port, log)
        yield f"http://127.0.0.1:{port}", run_dir / "checkpoints" / "last.ckpt"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture
def browser(tmp_path: Path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_in_the_browser_shows_the_expected_class(served_app, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, checkpoint = served_app
    expected = CIFAR10_CLASSES[recognised_class(checkpoint)]
    image = tmp_path / f"{expected}.png"
    image.write_bytes(png_bytes(prototype_image(CIFAR10_CLASSES.index(expected))))

    wait = WebDriverWait(browser, PAGE_WAIT_S)
    browser.get(url)
    # the Models page preselects the newest checkpoint and reports it loaded
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Loaded 1 checkpoint"))
    tab = (By.XPATH, "//*[@data-testid='stTab'][normalize-space(.)='Classify']")
    wait.until(ec.element_to_be_clickable(tab)).click()
    upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type='file']")))
    upload.send_keys(str(image))
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "top-1:"))
    body = browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "app.png"))
    assert f"top-1: {expected}" in body, body
    assert "as the net sees it" in body and "Error" not in body
    assert (tmp_path / "app.png").stat().st_size > 0
