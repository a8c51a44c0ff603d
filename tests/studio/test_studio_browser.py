"""The studio in a real browser: Debian's headless Chromium driven by Playwright for Python.

Chromium comes from Debian (``apt-get install chromium``, what ``make install-test`` does) and is
launched through ``executable_path``: ``playwright install`` downloads browsers, which cannot work
here. Without Chromium or Playwright these tests skip, saying why, unless
``MVSTYLIZER_REQUIRE_BROWSER=1`` (``make test``), where they fail instead.

Screenshots of the preview and of a finished render, at 1280x800 and 390x844, go to the test's
temporary folder; to remake the ones in docs/ (README.md and docs/STUDIO.md show them)::

    MVSTYLIZER_STUDIO_SCREENSHOTS=docs python -m pytest -q tests/studio/test_studio_browser.py

which films a virtual-camera clip over a scikit-image photo instead of the noise test clip, so the
pictures show what a person would see.
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from render_gate import Gate

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("MVSTYLIZER_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("MVSTYLIZER_REQUIRE_BROWSER") == "1"
SHOTS = os.environ.get("MVSTYLIZER_STUDIO_SCREENSHOTS")
# Root-safe, offline headless Chromium: without the background-networking switches it tries to reach
# Google's services at start and, with no network, its own connections are refused.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
RENDER_TIMEOUT_MS = 180_000


def _missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (MVSTYLIZER_REQUIRE_BROWSER=1: `make install-test` installs both)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed: pip install playwright")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set MVSTYLIZER_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The clip and style photo the tests upload, and how many frames the clip has."""
    folder = tmp_path_factory.mktemp("studio-media")
    clip = folder / "street.mp4"
    frames = 24
    if SHOTS and _camera_clip(clip):
        with av.open(str(clip)) as c:
            frames = sum(1 for _ in c.decode(video=0))
    else:
        from mvstylizer.bench.synthetic import write_test_clip

        write_test_clip(clip, width=160, height=96, frames=frames, fps=12.0)
    style = folder / "golden_hour.jpg"
    cv2.imwrite(str(style), cv2.cvtColor(_warm_photo(), cv2.COLOR_RGB2BGR))
    return {"clip": clip, "frames": frames, "style": style}


def _camera_clip(path: Path) -> bool:
    """A virtual camera over a scikit-image photo (screenshots only); False without scikit-image."""
    try:
        from mvstylizer.bench.camera import CameraClip, CameraConfig

        CameraClip(CameraConfig(width=640, height=360, frames=36, fps=24.0, sources=("rocket.jpg",),
                                scene_cut=False)).write(path, preset="veryfast")
        return True
    except Exception:  # noqa: BLE001 - any failure: the plain test clip will do
        return False


def _warm_photo() -> np.ndarray:
    """A generated 'golden hour' photo: warm sky gradient, dark teal ground, a sun."""
    h, w = 240, 360
    y = np.linspace(0, 1, h)[:, None, None]
    sky = (1 - y) * np.array([255, 196, 120]) + y * np.array([214, 92, 74])
    img = np.broadcast_to(sky, (h, w, 3)).copy()
    img[int(h * 0.68):] = np.array([24, 58, 66]) + 20 * np.random.default_rng(1).random((h - int(h * 0.68), w, 1))
    cv2.circle(img, (w * 2 // 3, int(h * 0.45)), 26, (255, 236, 190), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    pytest.importorskip("fastapi")
    from mvstylizer.studio import StudioConfig
    from mvstylizer.studio.server import running

    gate = Gate()
    config = StudioConfig(workdir=tmp_path_factory.mktemp("studio-work"), host="127.0.0.1", port=0)
    with running(config, frame_hook=gate) as url:
        yield url, gate


def _shot(page, name: str, tmp_path: Path) -> Path:
    """A screenshot (palette PNG when that keeps it under 300 KB), to docs/ when asked, else tmp."""
    from PIL import Image

    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"studio_{name}.png"
    png = page.screenshot(type="png")
    img = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    if out.tell() > 300_000:
        out = io.BytesIO()
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            out, "PNG", optimize=True)
    path.write_bytes(out.getvalue())
    return path


def _open(browser, url: str, viewport: dict, phone: bool = False):
    context = browser.new_context(viewport=viewport, accept_downloads=True, is_mobile=phone, has_touch=phone,
                                  device_scale_factor=1)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    # Aborted requests are the page's own doing (a superseded preview, a video element's range reads).
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})")
            if "ERR_ABORTED" not in (req.failure or "") else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return context, page, problems


def _show_middle_frame(page, selector: str) -> None:
    """Seek the page's video to its middle and wait until the frame is there (for screenshots)."""
    page.wait_for_function(f"() => {{ const v = document.querySelector({selector!r}); "
                           "return v && v.readyState >= 1 && v.duration > 0; }", timeout=30_000)
    page.evaluate(f"() => {{ const v = document.querySelector({selector!r}); v.currentTime = v.duration / 2; }}")
    page.wait_for_function(f"() => {{ const v = document.querySelector({selector!r}); "
                           "return !v.seeking && v.readyState >= 3; }", timeout=30_000)
    if SHOTS:  # cosmetic only: the player's loading spinner fades out a moment after the seek
        page.wait_for_timeout(2500)


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _tid(name: str) -> str:
    return f"[data-testid='{name}']"


def test_upload_preview_render_download(browser, studio, media, tmp_path):
    url, _gate = studio
    context, page, problems = _open(browser, url, DESKTOP)
    try:
        page.set_input_files(_tid("video-input"), str(media["clip"]))
        page.wait_for_selector("#video-drop[data-state='filled']")
        page.set_input_files(_tid("style-input"), str(media["style"]))
        page.wait_for_selector(f"{_tid('preview')}[data-state='ready']", timeout=60_000)
        # Every preview frame has its before and after image, loaded.
        assert page.locator("#filmstrip .frame").count() == 4
        assert page.eval_on_selector("#preview-after", "img => img.complete && img.naturalWidth > 0")
        # The strength slider asks for a new preview (debounced) of the new look.
        page.fill(_tid("strength"), "60")
        page.wait_for_selector(f"{_tid('preview')}[data-state='ready'][data-key*='|60|']", timeout=60_000)
        page.fill("#compare-range", "38")  # the before/after divider
        _shot(page, "desktop_preview", tmp_path)

        page.click(_tid("run"))
        job = page.locator(".job").first
        job.locator(_tid("progress")).wait_for()
        page.wait_for_selector(".job[data-state='done']", timeout=RENDER_TIMEOUT_MS)
        assert job.locator(_tid("progress")).get_attribute("aria-valuenow") == "100"
        # The MP4 plays in the page: the browser decodes its metadata.
        page.wait_for_function("() => { const v = document.querySelector('.job video'); "
                               "return v && v.readyState >= 1 && v.duration > 0; }", timeout=30_000)
        with page.expect_download() as download:
            job.locator(_tid("download-video")).click()
        saved = tmp_path / "downloaded.mp4"
        download.value.save_as(saved)
        assert _frame_count(saved) == media["frames"]
        # The default model (regions) varies its look over the picture: no LUT, and the page says why.
        lut = job.locator(_tid("download-lut"))
        assert lut.is_disabled()
        assert "varies over the picture" in (lut.get_attribute("title") or "")
        _show_middle_frame(page, ".job video")
        page.evaluate("() => window.scrollTo(0, 0)")
        _shot(page, "desktop_done", tmp_path)
        assert page.locator(_tid("error")).is_hidden()
        assert not problems, problems
    finally:
        context.close()


def test_text_file_named_mp4_shows_an_error(browser, studio, media, tmp_path):
    url, _gate = studio
    context, page, problems = _open(browser, url, DESKTOP)
    try:
        fake = tmp_path / "holiday.mp4"
        fake.write_text("these are my holiday notes, not a video\n" * 20)
        page.set_input_files(_tid("video-input"), str(fake))
        error = page.locator(_tid("error"))
        error.wait_for(state="visible")
        text = error.inner_text()
        assert "holiday.mp4" in text and "not a video" in text, text
        assert "Traceback" not in text and str(tmp_path) not in text
        assert page.locator("#video-drop").get_attribute("data-state") == "empty"
        # A style that is not an image: a message too; the server is still fine afterwards.
        page.click("#error-close")
        bad_style = tmp_path / "sunset.jpg"
        bad_style.write_text("not a picture")
        page.set_input_files(_tid("style-input"), str(bad_style))
        error.wait_for(state="visible")
        assert "sunset.jpg" in error.inner_text() and "not a readable image" in error.inner_text()
        # Dropping a file works like picking one: a real clip dropped on the video area is taken.
        clip = base64.b64encode(media["clip"].read_bytes()).decode()
        dropped = page.evaluate_handle(
            """([data, name]) => { const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                 const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: "video/mp4"}));
                 return dt; }""", [clip, "dropped.mp4"])
        page.dispatch_event("#video-drop", "drop", {"dataTransfer": dropped})
        page.wait_for_selector("#video-drop[data-state='filled']")
        assert page.inner_text("#video-name") == "dropped.mp4"
        error.wait_for(state="hidden")
        assert not [p for p in problems if "console" not in p], problems
    finally:
        context.close()


def test_a_reloaded_tab_previews_again(browser, studio, media, tmp_path):
    # A reloaded tab keeps its session; its previews were numbered from 0 again, below the numbers the
    # session had used, and the server refused them as superseded: "Stylizing..." for ever.
    url, _gate = studio
    context, page, problems = _open(browser, url, DESKTOP)
    try:
        for reloaded in (False, True):
            if reloaded:
                page.reload()
                page.wait_for_selector("body[data-ready='1']")
            page.set_input_files(_tid("video-input"), str(media["clip"]))
            page.wait_for_selector("#video-drop[data-state='filled']")
            page.set_input_files(_tid("style-input"), str(media["style"]))
            page.wait_for_selector(f"{_tid('preview')}[data-state='ready']", timeout=60_000)
            for strength in ("40", "70"):
                page.fill(_tid("strength"), strength)
                page.wait_for_selector(f"{_tid('preview')}[data-state='ready'][data-key*='|{strength}|']",
                                       timeout=60_000)
        assert page.locator(_tid("error")).is_hidden()
        assert not problems, problems
    finally:
        context.close()


def test_phone_gallery_queue_cancel_and_lut(browser, studio, media, tmp_path):
    url, gate = studio
    context, page, problems = _open(browser, url, PHONE, phone=True)
    try:
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
        page.set_input_files(_tid("video-input"), str(media["clip"]))
        page.wait_for_selector("#video-drop[data-state='filled']")
        gallery = page.locator(".tile[data-key^='gallery:']")
        if gallery.count():
            page.locator(".tile[data-key='gallery:coffee'], .tile[data-key^='gallery:']").first.click()
        else:  # no scikit-image: the gallery is empty, upload a photo instead
            page.set_input_files(_tid("style-input"), str(media["style"]))
        page.select_option(_tid("model"), "dncm")
        page.wait_for_selector(f"{_tid('preview')}[data-state='ready'][data-key^='dncm|']", timeout=60_000)
        page.locator("#step-preview").scroll_into_view_if_needed()
        page.evaluate("() => document.getElementById('step-preview').scrollIntoView({block: 'start'})")
        _shot(page, "phone_preview", tmp_path)

        # Two renders: the first is held at its third frame (running), the second waits (queued).
        gate.open.clear()
        page.click(_tid("run"))
        first = page.locator(".job[data-state='running']")
        first.wait_for()
        page.wait_for_function("() => Number(document.querySelector(\".job[data-state='running'] "
                               "[data-testid='progress']\").getAttribute('aria-valuenow')) > 0")
        page.click(_tid("run"))
        queued = page.locator(".job[data-state='queued']")
        queued.wait_for()
        queued_id = queued.get_attribute("data-job-id")
        running_id = first.get_attribute("data-job-id")
        queued.locator(_tid("cancel")).click()
        page.wait_for_selector(f".job[data-job-id='{queued_id}'][data-state='cancelled']")
        page.locator(f".job[data-job-id='{running_id}'] {_tid('cancel')}").click()
        page.wait_for_selector(f".job[data-job-id='{running_id}'][data-state='cancelled']")
        assert page.locator(f".job[data-job-id='{running_id}'] {_tid('download-video')}").count() == 0

        gate.open.set()
        page.click(_tid("run"))
        page.wait_for_selector(".job[data-state='done']", timeout=RENDER_TIMEOUT_MS)
        done = page.locator(".job[data-state='done']").first
        with page.expect_download() as download:
            done.locator(_tid("download-lut")).click()
        cube = tmp_path / "look.cube"
        download.value.save_as(cube)
        assert "LUT_3D_SIZE 33" in cube.read_text()
        with page.expect_download() as download:
            done.locator(_tid("download-video")).click()
        saved = tmp_path / "phone.mp4"
        download.value.save_as(saved)
        assert _frame_count(saved) == media["frames"]
        _show_middle_frame(page, ".job[data-state='done'] video")
        done.scroll_into_view_if_needed()
        page.evaluate("() => document.querySelector(\".job[data-state='done']\").scrollIntoView({block: 'end'})")
        _shot(page, "phone_done", tmp_path)
        assert not problems, problems
    finally:
        gate.open.set()
        context.close()


def test_screenshots_are_small(tmp_path):
    """The committed screenshots stay small enough for the repository and the README."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    shots = sorted(docs.glob("studio_*.png"))
    if not shots:
        pytest.skip("no studio screenshots in docs/")
    for p in shots:
        assert p.stat().st_size < 300_000, p


def _running_studio(tmp_path: Path, monkeypatch, gate: Gate | None = None, **config):
    """A studio of the test's own (its app in ``apps``): (context manager, apps)."""
    pytest.importorskip("fastapi")
    from mvstylizer.studio import StudioConfig
    from mvstylizer.studio import app as studio_app
    from mvstylizer.studio.server import running

    apps: list = []
    original = studio_app.create_app
    monkeypatch.setattr(studio_app, "create_app", lambda *a, **k: apps.append(original(*a, **k)) or apps[-1])
    return running(StudioConfig(workdir=tmp_path / "work", host="127.0.0.1", port=0, **config),
                   frame_hook=gate or Gate()), apps


def test_a_restarted_studio_says_the_renders_in_flight_were_lost(browser, media, tmp_path, monkeypatch):
    # After a restart the page's event stream got 401 and stopped: the card showed "Rendering 5%" for ever.
    gate = Gate()
    server, apps = _running_studio(tmp_path, monkeypatch, gate)
    with server as url:
        context, page, _problems = _open(browser, url, DESKTOP)  # the 401s are the point of the test
        try:
            page.set_input_files(_tid("video-input"), str(media["clip"]))
            page.wait_for_selector("#video-drop[data-state='filled']")
            page.set_input_files(_tid("style-input"), str(media["style"]))
            page.wait_for_selector(f"{_tid('preview')}[data-state='ready']", timeout=60_000)
            gate.open.clear()
            page.click(_tid("run"))
            page.wait_for_selector(".job[data-state='running']")
            # What a restart leaves a page with: its stream ended, its session unknown to the server.
            studio = apps[0].state.studio
            sid = page.evaluate("() => sessionStorage.getItem('mvstylizer-studio-session')")
            with studio.workspace.lock:
                studio.workspace._forget(studio.workspace.find(sid))
            studio.broadcaster.publish(sid, None)
            error = page.locator(_tid("error"))
            error.wait_for(state="visible", timeout=15_000)
            assert "restarted" in error.inner_text() and "lost" in error.inner_text(), error.inner_text()
            page.wait_for_selector(".job[data-state='lost']")
            assert page.text_content(".job .badge") == "Lost"
        finally:
            gate.open.set()
            context.close()


def test_only_the_latest_choice_of_video_and_style_applies(browser, studio, media, tmp_path):
    # Two videos picked in a row: the page ended on whichever upload finished last, and the first to
    # finish enabled Run while the other was still arriving; a style upload that finished after a
    # gallery tile was clicked took the selection back.
    url, _gate = studio
    context, page, problems = _open(browser, url, DESKTOP)
    held: list = []
    hold = {"on": True}

    def route(r):  # noqa: ANN001
        if hold["on"]:
            held.append(r)
        else:
            r.continue_()

    def release(r) -> None:  # noqa: ANN001
        try:
            r.continue_()
        except Exception:  # noqa: BLE001 - the page has aborted it: the point
            pass

    try:
        page.route("**/api/videos?*", route)
        page.route("**/api/styles?*", route)
        first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
        for p in (first, second):
            p.write_bytes(media["clip"].read_bytes())
        hold["on"] = False
        page.set_input_files(_tid("style-input"), str(media["style"]))
        page.wait_for_selector(".tile[data-key^='upload:'][aria-selected='true']")
        hold["on"] = True
        page.set_input_files(_tid("video-input"), str(first))
        while len(held) < 1:
            page.wait_for_timeout(20)
        with page.expect_event("requestfailed", lambda req: "first.mp4" in req.url, timeout=10_000):
            page.set_input_files(_tid("video-input"), str(second))  # the older choice's upload is aborted
        while len(held) < 2:
            page.wait_for_timeout(20)
        release(held[0])
        assert page.get_attribute("#video-drop", "data-state") == "busy" and page.is_disabled(_tid("run"))
        release(held[1])
        page.wait_for_selector("#video-drop[data-state='filled']")
        assert page.inner_text("#video-name") == "second.mp4"
        page.wait_for_function(f"() => !document.querySelector(\"{_tid('run')}\").disabled")

        # A style photo still arriving when a tile is clicked: the tile wins, the upload is dropped.
        tile = page.locator(".tile[data-key^='upload:']").first
        page.set_input_files(_tid("style-input"), str(media["style"]))
        while len(held) < 3:
            page.wait_for_timeout(20)
        assert page.is_disabled(_tid("run"))
        with page.expect_event("requestfailed", lambda req: "/api/styles" in req.url, timeout=10_000):
            tile.click()
        release(held[2])
        assert tile.get_attribute("aria-selected") == "true" and page.locator(".tile[data-key^='upload:']").count() == 1
        assert not page.is_disabled(_tid("run"))
        assert page.locator(_tid("error")).is_hidden()
        assert not problems, problems
    finally:
        context.close()


def test_what_is_wrong_with_a_file_taken_anyway_is_shown(browser, studio, media, tmp_path):
    # A truncated video rendered to half its length, marked done, and a tiny style photo was used:
    # only the server log said so.
    from mvstylizer.bench.synthetic import write_test_clip

    url, _gate = studio
    full = tmp_path / "full.avi"
    write_test_clip(full, width=96, height=64, frames=30)
    cut = tmp_path / "holiday.avi"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    dot = tmp_path / "dot.png"
    cv2.imwrite(str(dot), np.full((12, 12, 3), 128, np.uint8))
    context, page, problems = _open(browser, url, DESKTOP)
    try:
        page.set_input_files(_tid("video-input"), str(cut))
        page.wait_for_selector("#video-drop[data-state='filled']")
        page.locator(_tid("video-warning")).wait_for()
        assert "holiday.avi declares 30 frames but only" in page.locator(_tid("video-warning")).inner_text()
        page.set_input_files(_tid("style-input"), str(dot))
        page.locator(_tid("style-warning")).wait_for()
        assert "dot.png is 12x12 pixels" in page.locator(_tid("style-warning")).inner_text()
        page.select_option(_tid("model"), "reinhard")
        page.click(_tid("run"))
        page.wait_for_selector(".job[data-state='done']", timeout=RENDER_TIMEOUT_MS)
        page.locator(f".job {_tid('job-warning')}").wait_for()
        assert "holiday.avi declares 30 frames" in page.locator(f".job {_tid('job-warning')}").inner_text()
        page.set_input_files(_tid("video-input"), str(full))  # a sound video: its warning goes
        page.wait_for_function("() => document.getElementById('video-name').textContent === 'full.avi'")
        assert page.locator(_tid("video-warning")).is_hidden()
        dot_tile = page.locator(".tile[title='dot.png']")
        page.set_input_files(_tid("style-input"), str(media["style"]))  # the warning is the picked photo's
        page.locator(_tid("style-warning")).wait_for(state="hidden")
        dot_tile.click()
        page.locator(_tid("style-warning")).wait_for()
        assert page.locator(_tid("error")).is_hidden()
        assert not problems, problems
    finally:
        context.close()


def test_controls_have_names_focus_shows_and_job_states_are_announced(browser, studio, media, tmp_path):
    # The strength slider had no accessible name (its label wrapped an <output>, and labelled that),
    # the before/after divider (an invisible range input) showed no keyboard focus, and nothing told
    # a screen reader a render had finished.
    url, _gate = studio
    context, page, problems = _open(browser, url, DESKTOP)
    try:
        assert page.evaluate("() => document.getElementById('strength').labels.length") == 1
        assert page.get_by_role("slider", name="Strength", exact=True).count() == 1
        page.set_input_files(_tid("video-input"), str(media["clip"]))
        page.wait_for_selector("#video-drop[data-state='filled']")
        page.set_input_files(_tid("style-input"), str(media["style"]))
        page.wait_for_selector(f"{_tid('preview')}[data-state='ready']", timeout=60_000)
        ring = "() => getComputedStyle(document.querySelector('.compare-handle span')).boxShadow"
        unfocused = page.evaluate(ring)
        page.focus("#compare-range")
        assert page.evaluate("() => document.activeElement.id") == "compare-range"
        assert page.evaluate(ring) != unfocused
        page.select_option(_tid("model"), "reinhard")
        page.click(_tid("run"))
        page.wait_for_selector(".job[data-state='done']", timeout=RENDER_TIMEOUT_MS)
        live = page.locator(_tid("jobs-live"))
        assert live.get_attribute("aria-live") == "polite"
        page.wait_for_function("() => document.getElementById('jobs-live').textContent === 'street.mp4: Done'")
        assert not problems, problems
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_long_file_name_does_not_make_the_page_scroll_sideways(browser, studio, media, tmp_path, viewport):
    # A name without spaces widened the video step (phone: 1404 px of a 390 px screen) and the run hint.
    url, _gate = studio
    context, page, problems = _open(browser, url, viewport, phone=viewport is PHONE)
    try:
        long = tmp_path / ("Sommerurlaub_" * 8 + "W" * 12 + ".mp4")  # 120 characters: all the studio keeps
        long.write_bytes(media["clip"].read_bytes())
        page.set_input_files(_tid("video-input"), str(long))
        page.wait_for_selector("#video-drop[data-state='filled']")
        page.set_input_files(_tid("style-input"), str(media["style"]))
        page.wait_for_function(f"() => !document.querySelector(\"{_tid('run')}\").disabled")
        assert long.name in page.text_content("#run-hint")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]
        assert not problems, problems
    finally:
        context.close()


def test_a_studio_out_of_reach_is_said_and_the_message_goes_when_it_is_back(browser, media, tmp_path, monkeypatch):
    server, apps = _running_studio(tmp_path, monkeypatch)
    with server as url:
        context, page, _problems = _open(browser, url, DESKTOP)  # the refused requests are the point
        try:
            sid = page.evaluate("() => sessionStorage.getItem('mvstylizer-studio-session')")
            broadcaster = apps[0].state.studio.broadcaster
            # Its event stream must be open before it is ended, or ending it does nothing (failed on CI).
            deadline = time.monotonic() + 15
            while not broadcaster._subs.get(sid):
                assert time.monotonic() < deadline, "the page never opened its event stream"
                time.sleep(0.05)
            page.route("**/api/**", lambda route: route.abort("connectionrefused"))
            broadcaster.publish(sid, None)  # the stream ends, as when the server stops
            error = page.locator(_tid("error"))
            error.wait_for(state="visible", timeout=15_000)
            assert "cannot be reached" in error.inner_text(), error.inner_text()
            page.unroute("**/api/**")
            error.wait_for(state="hidden", timeout=15_000)  # the stream is back: so is the studio
        finally:
            context.close()
