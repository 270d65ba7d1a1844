"""The web app in a real browser: headless Chromium (Debian's) driven by Playwright.

Starts ``restoregraph serve`` on a free localhost port, uploads a degraded astronaut crop,
sends a message, waits for the result, downloads it, undoes to step 0, and uploads a file that
is not an image and one over the size limit. A screenshot of each state is saved under the
test's tmp_path and copied to ``test-artifacts/web/`` (git-ignored). Every request the page
makes must stay on the local server (no CDN, no analytics).

Skipped when Chromium or Playwright is missing, unless RESTOREGRAPH_REQUIRE_BROWSER=1 (CI sets
it after installing Chromium), in which case a missing browser fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restoregraph.degrade import apply_mixture, parse_mixture
from restoregraph.imageio import load_image, save_image
from tests.conftest import crop

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "web"
MAX_UPLOAD_MB = 0.25


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _require_browser() -> tuple[str, object]:
    missing = []
    chromium = _chromium()
    if chromium is None:
        missing.append("chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None  # type: ignore[assignment]
        missing.append("playwright (pip install -e '.[dev]')")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("RESTOREGRAPH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (RESTOREGRAPH_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    assert chromium is not None
    return chromium, sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    home = tmp_path / "home"
    log_path = tmp_path / "server.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("GRADIO_TEMP_DIR", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "restoregraph",
                "serve",
                "--port",
                str(port),
                "--home",
                str(home),
                "--max-upload-mb",
                str(MAX_UPLOAD_MB),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            started = time.monotonic()
            deadline = started + 120
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited ({proc.returncode}):\n{log_path.read_text()}")
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not start in 120 s:\n{log_path.read_text()}")
                time.sleep(0.3)
            print(f"server ready in {time.monotonic() - started:.1f} s")
            yield url, home
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    server_log = log_path.read_text()
    assert "Traceback" not in server_log, server_log


def _inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    import skimage.data

    (tmp_path / "in").mkdir()
    img = crop(skimage.data.astronaut(), 160)
    degraded, _ = apply_mixture(img, parse_mixture("noise:2+jpeg:2"), seed=0)
    good = save_image(degraded, tmp_path / "in" / "holiday photo.png")
    bad = tmp_path / "in" / "notes.png"
    bad.write_text("these are my notes, not a picture\n")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)  # ~300 KB as PNG
    big = tmp_path / "in" / "big.png"
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > MAX_UPLOAD_MB * 1024 * 1024
    return good, bad, big


def test_web_app_in_chromium(server: tuple[str, Path], tmp_path: Path) -> None:
    chromium, sync_playwright = _require_browser()
    from playwright.sync_api import expect

    url, home = server
    good, bad, big = _inputs(tmp_path)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    foreign: list[str] = []

    with sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.on(
            "request",
            lambda req: (
                None if req.url.startswith((url, "data:", "blob:")) else foreign.append(req.url)
            ),
        )

        t0 = time.monotonic()

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            print(f"{time.monotonic() - t0:6.1f} s  {name}")  # shown with -s or on failure

        try:
            page.goto(url)
            status = page.locator("#status")
            expect(status).to_contain_text("Upload a photo", timeout=20_000)
            shot("01-start")

            # Upload the degraded photo: stored under the run directory, under a generated name.
            page.locator("#upload input[type=file]").set_input_files(str(good))
            expect(status).to_contain_text("Photo loaded (160×160 px)", timeout=20_000)
            stored = list((home / "runs").glob("*/input*"))
            assert len(stored) == 1 and stored[0].name == "input.png", stored
            assert "holiday" not in str(stored[0])
            shot("02-uploaded")

            # Send a message; the plan runs with live progress, then the result is shown.
            # Record every text the progress panel shows, to check that it updated while running.
            page.evaluate(
                """() => {
                    const el = document.querySelector('#progress');
                    window.__progress = [];
                    new MutationObserver(() => window.__progress.push(el.innerText))
                        .observe(el, {subtree: true, childList: true, characterData: true});
                }"""
            )
            page.locator("#message textarea").fill("please remove the grain and the jpeg blocks")
            page.locator("#send").click()
            expect(status).to_contain_text("Done in", timeout=90_000)
            steps = page.locator("#steps")
            expect(steps).to_contain_text("dejpeg.")  # a JPEG tool ran (which one: the planner's)
            expect(steps).to_contain_text("accepted")
            expect(page.locator("#progress")).to_contain_text("perceived:")
            expect(page.locator("#progress")).to_contain_text("plan:")
            seen = page.evaluate("() => window.__progress")
            live = [t for t in seen if "steps)" in t and "done." not in t]
            assert any("perceived:" in t for t in live), seen  # shown before the run ended
            expect(page.locator("#chat")).to_contain_text("dejpeg")  # the assistant's answer
            assert page.locator("#gallery img").count() >= 2
            shot("03-result")

            # Pick a step in the gallery: the before/after slider shows that step.
            def compare_srcs() -> list[str | None]:
                return [img.get_attribute("src") for img in page.locator("#compare img").all()]

            overall = compare_srcs()
            page.locator("#gallery img").nth(1).click()
            deadline = time.monotonic() + 15
            while compare_srcs() == overall and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert compare_srcs() != overall, "picking a step did not change the comparison"
            shot("04-compare-step")

            # Download the result: a real image of the input's size, not the input.
            def download(name: str) -> np.ndarray:
                with page.expect_download(timeout=20_000) as dl:
                    page.locator("#download").click()
                dl.value.save_as(tmp_path / name)
                return load_image(tmp_path / name)

            uploaded = load_image(stored[0])
            restored = download("restored.png")
            assert restored.shape == (160, 160, 3)
            assert np.abs(restored - uploaded).mean() > 1e-3

            # Undo to step 0: back to the input exactly, the old branch listed as abandoned.
            page.locator("#undo-to input").click()
            page.get_by_role("option", name="0: the input").click()
            page.locator("#undo").click()
            expect(page.locator("#progress")).to_contain_text(
                "Undo to step 0: done", timeout=90_000
            )
            expect(status).to_contain_text("Done in")
            expect(steps).to_contain_text("abandoned branch: user undid steps after 0")
            expect(steps).to_contain_text("no steps on this branch")
            expect(page.locator("#undo-to input")).to_have_value("0: the input")
            expect(page.locator("#chat")).to_contain_text("(undo to step 0)")
            reverted = download("reverted.png")
            assert np.abs(reverted - uploaded).max() <= 1 / 255 + 1e-6
            shot("05-undone")

            # A file that is not an image: a clear message, no traceback, nothing stored.
            page.locator("#upload input[type=file]").set_input_files(str(bad))
            expect(status).to_contain_text("upload refused", timeout=20_000)
            text = status.inner_text()
            assert "not" in text.lower() and "image" in text.lower(), text
            assert "Traceback" not in page.content()
            shot("06-bad-file")

            # A file over the size limit: refused before it is stored, with the limit in the message
            # (gradio's own check answers first: "File(s) exceed the maximum allowed size of ...").
            page.locator("#upload input[type=file]").set_input_files(str(big))
            too_large = page.get_by_text(re.compile(r"too large|exceed the maximum allowed size"))
            expect(too_large.first).to_be_visible(timeout=20_000)
            expect(too_large.first).to_contain_text("256")
            page.wait_for_timeout(800)  # let the toast finish fading in for the screenshot
            shot("07-too-large")
        except BaseException:
            shot("99-failure")
            raise
        finally:
            browser.close()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for old in ARTIFACTS.glob("*.png"):  # only this run's screenshots
                old.unlink()
            for png in sorted(shots.glob("*.png")):
                shutil.copy2(png, ARTIFACTS / png.name)

    assert len(list((home / "runs").glob("*/input*"))) == 1  # refused files were not kept
    # gradio's cache is under the home, and its temporary copies of uploads were deleted
    assert (home / "web-cache").is_dir()
    leftovers = [p for p in home.rglob("*") if p.name in (good.name, bad.name, big.name)]
    assert not leftovers, leftovers
    assert not foreign, f"the page fetched from outside the local server: {foreign}"
