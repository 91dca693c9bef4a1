"""End to end in a real browser: `cifar-app` serving a trained checkpoint, driven by headless Chromium.

The outputs folder holds two runs: the session's trained one and a newer one whose checkpoint is cut
short, so the app must preselect the older checkpoint and list the newer one with its reason. The
uploads are the awkward ones (an animated GIF, a GIF named .png, a 1x1 image, a text file), the layout
is checked at an 820 px wide window, and whether a prediction is computed again is read from the
app's own caption, never from timings.

Selenium drives Debian's ``chromium`` through its matching ``chromium-driver`` (both installed by
``.ci/run``); the test skips when either is missing, so a laptop without them still passes.
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_app import (
    add_broken_newer_run,
    copy_run,
    png_bytes,
    prototype_image,
    recognised_class,
    refusal,
    trained_app_run,
)

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
NARROW = 820  # the window width at which the old layout let columns overlap

# Every result card and the charts inside it, as rectangles (left, top, right, bottom) in page pixels.
CARD_RECTS_JS = """
const rect = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
return [...document.querySelectorAll('[class*="st-key-card_"]')]
  .filter(card => card.offsetParent !== null)
  .map(card => ({
    card: rect(card),
    charts: [...card.querySelectorAll('canvas, svg.marks')].map(rect),
  }));
"""


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
    """(URL, good checkpoint, broken checkpoint) of a running `cifar-app`; the server always stops."""
    outputs = tmp_path_factory.mktemp("browser_outputs")
    good_run = copy_run(trained_app_run(synthetic_cifar10, tmp_path_factory), outputs)
    broken = add_broken_newer_run(outputs, good_run)
    port = free_port()
    log = tmp_path_factory.mktemp("browser_server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(app_command(outputs, port), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(proc, port, log)
        yield f"http://127.0.0.1:{port}", good_run / "checkpoints" / "last.ckpt", broken
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


def _overlap(a: list[float], b: list[float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _inside(inner: list[float], outer: list[float], slack: float = 1.0) -> bool:
    return all(
        (
            inner[0] >= outer[0] - slack,
            inner[1] >= outer[1] - slack,
            inner[2] <= outer[2] + slack,
            inner[3] <= outer[3] + slack,
        )
    )


def test_the_app_in_a_browser(served_app, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, checkpoint, broken = served_app
    known = recognised_class(checkpoint)
    expected = CIFAR10_CLASSES[known]
    wait = WebDriverWait(browser, PAGE_WAIT_S)

    def body() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    def shows(text: str) -> None:
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text))

    def tab(name: str) -> None:
        locator = (By.XPATH, f"//*[@data-testid='stTab'][normalize-space(.)='{name}']")
        wait.until(ec.element_to_be_clickable(locator)).click()

    # 1, 2: the newest checkpoint is broken: the older one is preselected and loaded, the broken one
    # is listed apart with the checkpoint reader's own line
    browser.get(url)
    shows("Loaded 1 checkpoint")
    shows("1 checkpoint under")
    # The picker draws its chips after the page's first text: wait for them, reading the DOM's text
    # (Selenium's .text is empty for an element it judges hidden, e.g. while the sidebar animates).
    preselected = str(checkpoint.relative_to(checkpoint.parents[4]))
    picker_css = "[data-testid='stMultiSelect']"

    def picker_text(driver) -> str:
        found = driver.find_elements(By.CSS_SELECTOR, picker_css)
        return found[0].get_attribute("textContent") if found else ""

    wait.until(lambda driver: preselected in picker_text(driver))
    assert "broken" not in picker_text(browser)
    assert refusal(broken.resolve()) in body()
    assert "Pick at least one checkpoint" not in body()

    # 4: uploads judged by their content, refusals with their reason, a warning for a 1x1 image
    image = prototype_image(known, size=48)
    gif = io.BytesIO()
    image.save(gif, format="GIF", save_all=True, append_images=[image.rotate(90)], duration=100)
    files = {
        "moving.gif": gif.getvalue(),
        "renamed.png": png_bytes(prototype_image(known, size=40), "GIF"),
        "dot.png": png_bytes(prototype_image(known, size=1)),
        "notes.txt": b"not a picture",
        f"{expected}.png": png_bytes(prototype_image(known)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    tab("Classify")
    upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type='file']")))
    upload.send_keys("\n".join(str(tmp_path / name) for name in files))
    # 3: each prediction computed once ...
    shows("4 predictions: 4 computed, 0 from the cache")
    text = body()
    assert text.count(f"top-1: {expected}") >= 3, text
    assert "uploaded GIF, 48x48" in text and "uploaded GIF (named .png), 40x40" in text
    assert "1x1 is far smaller than the 32x32 images this net was trained on" in text
    assert "notes.txt is not an image (its content matches no picture format)" in text
    assert "can't read" not in text and "as the net sees it (32x32)" in text

    # ... and a second interaction computes only what it adds: the sampled test images
    browser.find_element(By.XPATH, "//*[@data-testid='stExpander']//summary").click()
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//button[normalize-space(.)='Sample test images']"))
    ).click()
    shows("8 predictions: 4 computed, 4 from the cache")
    # 6: sampled images are captioned as test images, not as uploads
    text = body()
    assert text.count("cifar10 test image, 32x32") == 4 and text.count("uploaded ") == 4

    # 5: at 820 px, with two checkpoints and their ensemble, no card overlaps another or spills its chart
    browser.set_window_size(NARROW, 1000)
    tab("Models")
    typed = browser.find_element(By.CSS_SELECTOR, "input[aria-label^='Or type checkpoint paths']")
    second = tmp_path / "second_run" / "checkpoints" / "last.ckpt"
    second.parent.mkdir(parents=True)
    shutil.copy(checkpoint, second)
    typed.send_keys(str(second), Keys.ENTER)
    shows("Loaded 2 checkpoints")
    tab("Classify")
    shows("16 predictions: 8 computed, 8 from the cache")
    wait.until(lambda driver: sum(len(c["charts"]) > 0 for c in driver.execute_script(CARD_RECTS_JS)) >= 24)
    cards = browser.execute_script(CARD_RECTS_JS)
    assert len(cards) == 8 * 4  # per image: the image, two checkpoints and the ensemble
    for i, a in enumerate(cards):
        assert all(_inside(chart, a["card"]) for chart in a["charts"]), a
        assert all(_overlap(a["card"], b["card"]) < 1.0 for b in cards[i + 1 :]), (a, cards[i + 1 :])
    assert browser.execute_script("return document.documentElement.scrollWidth") <= NARROW
    browser.save_screenshot(str(tmp_path / "app.png"))
    assert (tmp_path / "app.png").stat().st_size > 0
