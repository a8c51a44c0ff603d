"""The studio under attack: memory of decoding uploads, the work folder's share of each session, the
render queue, previews and sessions, each within a bound (docs/STUDIO.md, "Limits").

Uses the root conftest's small ``clip`` (96x64, 16 frames) and ``style``; nothing here waits on a
clock: renders are held by the test gate, threads by events.
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")

from test_studio import Studio, make_studio  # noqa: E402

from mvstylizer.studio import media  # noqa: E402


def until(condition, what: str, timeout: float = 30.0) -> None:
    """Wait for a state another thread reaches (polled; the timeout only bounds a hang)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError(f"not reached: {what}")


def running_app(monkeypatch):
    """``running`` with a handle on its app: (context manager, list that gets the app)."""
    from mvstylizer.studio import app as studio_app

    apps = []
    original = studio_app.create_app
    monkeypatch.setattr(studio_app, "create_app", lambda *a, **k: apps.append(original(*a, **k)) or apps[-1])
    return apps


# ---------------------------------------------------------------------------------------------- style photos


def test_a_style_whose_size_is_not_in_a_header_we_read_is_refused_before_decoding(studio, tmp_path, monkeypatch):
    hdr = tmp_path / "sky.hdr"  # Radiance HDR: Pillow cannot read its size, OpenCV decodes it whole
    cv2.imwrite(str(hdr), np.full((64, 64, 3), 0.5, np.float32))
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a) or None)
    r = studio.upload(hdr, "styles")
    assert r.status_code == 400 and "sky.hdr is not a readable image" in r.json()["error"]
    assert not decoded
    # Named like a format we take, it is judged by its content all the same.
    r = studio.upload(hdr, "styles", name="sky.png")
    assert r.status_code == 400 and not decoded


def test_a_large_style_is_decoded_once_at_its_own_pixel_type(tmp_path):
    path = tmp_path / "wide.png"
    img = np.zeros((2000, 3000, 3), np.uint8)
    img[::7] = (40, 120, 200)
    cv2.imwrite(str(path), img)
    tracemalloc.start()
    try:
        rgb8 = media.load_style(path, "wide.png", 50_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rgb8.shape == (683, 1024, 3) and rgb8.dtype == np.uint8
    assert abs(rgb8[..., 0].mean() - 200 / 7) < 2 and abs(rgb8[..., 2].mean() - 40 / 7) < 2  # BGR file, RGB out
    # 18 MB as decoded; float copies of the whole photo (read_image) peaked at 160 MB.
    assert peak < 3 * img.nbytes, peak


def test_style_pixels_read_as_read_image_reads_them(tmp_path):
    from PIL import Image

    from mvstylizer.video.image import read_image

    rng = np.random.default_rng(3)
    for name, pixels in {"grey16.png": (rng.random((40, 50)) * 65535).astype(np.uint16),
                         "alpha.png": (rng.random((40, 50, 4)) * 255).astype(np.uint8),
                         "rgb16.tiff": (rng.random((40, 50, 3)) * 65535).astype(np.uint16),
                         "float.tiff": rng.random((40, 50)).astype(np.float32) * 1.2}.items():
        cv2.imwrite(str(tmp_path / name), pixels)
    Image.fromarray((rng.random((40, 50, 2)) * 255).astype(np.uint8), "LA").save(tmp_path / "greyalpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turned upright
    Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)).save(tmp_path / "phone.jpg", exif=exif)
    for path in tmp_path.iterdir():
        expected = media.to_rgb8(read_image(path, transparent="ignore"))  # as stylize and the API read a style
        assert np.abs(media.load_style(path, path.name, 10**6).astype(int) - expected).max() <= 1, path.name


def test_uploads_are_decoded_a_few_at_a_time(tmp_path, style, monkeypatch):
    client, gate = make_studio(tmp_path, decode_slots=1)
    release, inside, most = threading.Event(), [], []
    original = media.load_style

    def held(*args):  # noqa: ANN002
        inside.append(1)
        most.append(len(inside))
        release.wait(30)
        inside.pop()
        return original(*args)

    monkeypatch.setattr(media, "load_style", held)
    with client:
        s = Studio(client, gate)
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(s.upload(style, "styles").status_code))
                   for _ in range(3)]
        for t in threads:
            t.start()
        limiter = client.app.state.studio.decoding
        until(lambda: inside and limiter.statistics().tasks_waiting == 2, "one decoding, two waiting")
        release.set()
        for t in threads:
            t.join(60)
    assert answers == [200, 200, 200] and max(most) == 1


# ---------------------------------------------------------------------------------------------- videos


def test_a_video_over_the_frame_size_limit_is_refused_after_probing(tmp_path, clip):
    client, gate = make_studio(tmp_path, max_video_pixels=96 * 64 - 1)
    with client:
        s = Studio(client, gate)
        assert client.get("/api/info").json()["limits"]["video_pixels"] == 96 * 64 - 1
        r = s.upload(clip, name="wide.mp4")
        assert r.status_code == 413 and r.json()["error"].startswith("wide.mp4 is 96x64;"), r.json()
        assert not [p for p in (tmp_path / "work" / "sessions").rglob("*") if p.is_file()]


def test_the_default_frame_size_limit_is_4k_either_way_up(tmp_path):
    from mvstylizer.errors import UserError
    from mvstylizer.studio import StudioConfig

    limit = StudioConfig(workdir=tmp_path).max_video_pixels
    for w, h in ((3840, 2160), (2160, 3840)):
        media.check_video_size(media.VideoFacts(w, h, 30.0, 3, True, 0.1, False, "h264"), "uhd.mp4", limit)
    with pytest.raises(UserError, match="8000x8000") as refused:
        media.check_video_size(media.VideoFacts(8000, 8000, 30.0, 3, True, 0.1, False, "h264"), "big.mp4", limit)
    assert refused.value.http_status == 413


# ---------------------------------------------------------------------------------------------- work folder


def files_of(ws, headers: dict) -> set[Path]:
    return {p for p in (ws.sessions_dir / headers["X-Studio-Session"]).rglob("*") if p.is_file()}


def test_an_upload_does_not_remove_another_tabs_files(studio, clip, style, tmp_path):
    ws = studio.app.state.studio.workspace
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    job = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    mine = files_of(ws, studio.headers)
    other = studio.new_session()
    ws.max_bytes = ws.usage() + 1000  # full: the old render would have to go
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\1" * 20_000)
    r = studio.upload(junk, headers=other)
    assert r.status_code == 507 and "studio storage full" in r.json()["error"], r.json()
    assert files_of(ws, studio.headers) == mine
    assert studio.client.get(job["video"], headers=studio.headers).status_code == 200
    # Its own files, though, make room for it.
    ws.max_bytes += 20_000
    own = studio.upload(style, "styles", headers=other)
    assert own.status_code == 200
    ws.max_bytes = ws.usage() + 1000
    assert studio.upload(junk, headers=other).status_code == 400  # read, and refused as not a video
    assert studio.client.get(own.json()["thumb"], headers=other).status_code == 404  # its own style went
    assert files_of(ws, studio.headers) == mine


def test_a_render_takes_room_only_from_tabs_over_their_share(studio, clip, style):
    from mvstylizer.studio.workspace import WorkFolderFull, tree_size

    ws = studio.app.state.studio.workspace
    hog = [studio.upload(clip).json() for _ in range(3)]  # three unused videos
    other = studio.new_session()
    studio.upload(clip, headers=other)
    small = ws.session(other["X-Studio-Session"])
    size = clip.stat().st_size
    ws.max_bytes = ws.usage()  # full; the hog holds 3/4 of it, over its half
    assert ws.reserve(size, small, ws.hold(small), others=True) == []
    urls = [v["frames_preview"][0]["url"] for v in hog]
    assert [studio.client.get(u, headers=studio.headers).status_code for u in urls] == [404, 200, 200]
    # More than its own files and the free room, and over its share: refused, and nothing removed.
    before = files_of(ws, studio.headers), files_of(ws, other)
    with pytest.raises(WorkFolderFull):
        ws.reserve(ws.max_bytes - ws.usage() + tree_size(small.dir) + 1, small, ws.hold(small), others=True)
    assert (files_of(ws, studio.headers), files_of(ws, other)) == before


def test_room_promised_to_an_upload_counts_until_it_is_written(studio):
    from mvstylizer.studio.workspace import WorkFolderFull

    ws = studio.app.state.studio.workspace
    s = ws.session(studio.headers["X-Studio-Session"])
    ws.max_bytes = ws.usage() + (6 << 20)
    first, second = ws.hold(s), ws.hold(s)
    ws.reserve(4 << 20, s, first)
    with pytest.raises(WorkFolderFull):  # two uploads at once: not both promised the same 4 MB
        ws.reserve(4 << 20, s, second)
    ws.written(first, 1 << 20)
    assert ws.usage() == ws.max_bytes - (3 << 20)
    ws.release(first)
    ws.reserve(4 << 20, s, second)
    ws.release(second)
    assert ws.usage() == ws.max_bytes - (6 << 20)


# ---------------------------------------------------------------------------------------------- render queue


def looks(s: Studio, clip, style, headers: dict) -> tuple[str, str]:
    """A tab's uploaded video and style key."""
    video = s.upload(clip, headers=headers).json()["id"]
    return video, s.upload(style, "styles", headers=headers).json()["key"]


def test_the_whole_queue_is_bounded_not_only_each_tabs(tmp_path, clip, style):
    client, gate = make_studio(tmp_path, max_queued=2, max_queued_total=3)
    with client:
        s = Studio(client, gate)
        other = s.new_session()
        mine, theirs = looks(s, clip, style, s.headers), looks(s, clip, style, other)
        gate.open.clear()
        first = s.job(*mine, model="mk").json()
        assert gate.held.wait(60)
        second = s.job(*mine, model="mk").json()
        assert s.job(*mine, model="mk").status_code == 400  # the tab's own limit
        assert s.job(*theirs, model="mk", headers=other).status_code == 200
        r = s.job(*theirs, model="mk", headers=other)
        assert r.status_code == 503 and "the studio is busy" in r.json()["error"], r.json()
        client.post(f"/api/jobs/{second['id']}/cancel", headers=s.headers)
        assert s.job(*theirs, model="mk", headers=other).status_code == 200
        for job in client.get("/api/jobs", headers=other).json()["jobs"] + [first]:
            client.post(f"/api/jobs/{job['id']}/cancel", headers=other if job is not first else s.headers)
        gate.open.set()
        assert s.wait(first["id"])["state"] == "cancelled"


def test_tabs_take_turns_in_the_queue(studio, clip, style):
    other = studio.new_session()
    mine, theirs = looks(studio, clip, style, studio.headers), looks(studio, clip, style, other)
    studio.gate.open.clear()
    ids = [studio.job(*mine, model="mk").json()["id"]]
    assert studio.gate.held.wait(60)
    ids += [studio.job(*mine, model="mk").json()["id"] for _ in range(3)]
    theirs_id = studio.job(*theirs, model="mk", headers=other).json()["id"]
    studio.gate.open.set()
    for jid in ids:
        assert studio.wait(jid)["state"] == "done"
    started = {j["id"]: j["started"] for j in studio.client.get("/api/jobs", headers=studio.headers).json()["jobs"]}
    started[theirs_id] = studio.client.get(f"/api/jobs/{theirs_id}", headers=other).json()["started"]
    order = sorted(started, key=started.get)
    # The running job, the next of the tab that was waiting first, then the other tab's turn.
    assert order == [ids[0], ids[1], theirs_id, ids[2], ids[3]]


# ---------------------------------------------------------------------------------------------- sessions, previews


def test_sessions_are_bounded_the_idlest_empty_one_goes_first(tmp_path, clip, style):
    client, gate = make_studio(tmp_path, max_sessions=2)
    with client:
        s = Studio(client, gate)  # the oldest, with files
        looks(s, clip, style, s.headers)
        empty = s.new_session()
        third = s.new_session()  # over the limit: the session without files goes, though not the oldest
        assert client.get("/api/jobs", headers=empty).status_code == 401
        assert client.get("/api/jobs", headers=s.headers).status_code == 200
        assert s.upload(style, "styles", headers=third).status_code == 200
        assert client.get("/api/jobs", headers=s.headers).status_code == 200
        fourth = s.new_session()  # then the one idle the longest, files and all
        assert client.get("/api/jobs", headers=third).status_code == 401
        assert not (tmp_path / "work" / "sessions" / third["X-Studio-Session"]).exists()
        assert [client.get("/api/jobs", headers=h).status_code for h in (s.headers, fourth)] == [200, 200]


def test_a_session_with_a_render_is_not_forgotten_for_a_new_one(tmp_path, clip, style):
    client, gate = make_studio(tmp_path, max_sessions=1)
    with client:
        s = Studio(client, gate)
        gate.open.clear()
        job = s.job(*looks(s, clip, style, s.headers), model="mk").json()
        assert gate.held.wait(60)
        r = client.post("/api/session")
        assert r.status_code == 503 and "the studio is busy" in r.json()["error"]
        client.post(f"/api/jobs/{job['id']}/cancel", headers=s.headers)
        gate.open.set()
        assert s.wait(job["id"])["state"] == "cancelled"
        assert client.post("/api/session").status_code == 200


def test_a_session_whose_upload_is_arriving_is_not_forgotten_for_a_new_one(tmp_path, clip):
    # Forgotten mid-upload, its folder was deleted under the upload, which failed as "input video not
    # found: clip.mp4". A real server: the test client reads a body whole before the app sees it.
    import httpx

    from mvstylizer.studio import StudioConfig
    from mvstylizer.studio.server import running

    config = StudioConfig(workdir=tmp_path / "work", host="127.0.0.1", port=0, max_sessions=1)
    with running(config) as url, httpx.Client(base_url=url, timeout=60) as http:
        headers = {"X-Studio-Session": http.post("/api/session").json()["session"]}
        data, asked = clip.read_bytes(), threading.Event()

        def slowly():
            yield data[:1000]
            asked.wait(30)
            yield data[1000:]

        answers = []
        uploading = threading.Thread(target=lambda: answers.append(http.post(
            "/api/videos", params={"name": clip.name}, content=slowly(), headers=headers)))
        uploading.start()
        time.sleep(1.0)  # the first bytes are in; the rest waits for the event
        r = http.post("/api/session")
        asked.set()
        uploading.join(60)
        assert r.status_code == 503 and "upload arriving" in r.json()["error"], r.text
        assert answers and answers[0].status_code == 200, answers[0].text
        assert http.post("/api/session").status_code == 200  # no longer arriving: it may go now


def test_previews_in_memory_have_one_budget_for_all_tabs(studio, clip, style):
    cache = studio.app.state.studio.workspace.previews
    other = studio.new_session()
    shown = []
    for i, headers in enumerate((studio.headers, other)):
        video, key = looks(studio, clip, style, headers)
        r = studio.client.post("/api/preview", json={"video": video, "style": key, "model": "mk"}, headers=headers)
        assert r.status_code == 200, r.text
        shown.append((r.json()["frames"][0]["after"], headers))
        if i == 0:
            cache.max_bytes = cache.nbytes * 3 // 2  # room for one preview, not two
    first, second = (studio.client.get(url, headers=h).status_code for url, h in shown)
    assert (first, second) == (404, 200) and cache.nbytes <= cache.max_bytes


class HeldPreviews:
    """Replaces the model run of previews: each waits until released, so tests see who waits where."""

    def __init__(self, monkeypatch) -> None:
        from mvstylizer.studio import app

        self.release, self.running = threading.Event(), threading.Event()
        original = app._make_preview

        def held(*args):  # noqa: ANN002
            self.running.set()
            self.release.wait(60)
            return original(*args)

        monkeypatch.setattr(app, "_make_preview", held)


def ask_preview(s: Studio, headers: dict, body: dict, answers: dict, name: str) -> threading.Thread:
    def ask() -> None:
        r = s.client.post("/api/preview", json=body, headers=headers)
        answers[name] = (r.status_code, r.json())

    thread = threading.Thread(target=ask)
    thread.start()
    return thread


def test_a_tab_has_one_preview_waiting_and_waiting_holds_no_thread(tmp_path, clip, style, monkeypatch):
    import anyio

    held = HeldPreviews(monkeypatch)
    client, gate = make_studio(tmp_path, max_waiting_previews=2)
    with client:
        s = Studio(client, gate)
        line = client.app.state.studio.previews
        tabs = [s.headers, s.new_session(), s.new_session(), s.new_session()]
        bodies = [dict(zip(("video", "style"), looks(s, clip, style, h), strict=True), model="mk") for h in tabs]
        answers: dict[str, tuple[int, dict]] = {}
        threads = [ask_preview(s, tabs[0], bodies[0], answers, "running")]
        assert held.running.wait(60)
        threads.append(ask_preview(s, tabs[1], bodies[1], answers, "older"))
        until(lambda: line.waiting == 1, "a preview waiting")
        threads.append(ask_preview(s, tabs[1], {**bodies[1], "strength": 0.5}, answers, "newer"))
        until(lambda: "older" in answers, "the older preview answered")  # at once: the running one still runs
        assert answers["older"][0] == 409 and "newer preview" in answers["older"][1]["error"]
        threads.append(ask_preview(s, tabs[2], bodies[2], answers, "third tab"))
        until(lambda: line.waiting == 2, "two tabs waiting")
        r = client.post("/api/preview", json=bodies[3], headers=tabs[3])
        assert r.status_code == 503 and "busy making previews" in r.json()["error"]
        # Only the running preview holds one of the server's threads; the other routes have the rest.
        borrowed = client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().borrowed_tokens)
        assert borrowed == 1
        assert client.get("/api/jobs", headers=tabs[3]).status_code == 200
        held.release.set()
        for t in threads:
            t.join(60)
    assert {name: code for name, (code, _) in answers.items()} == {
        "running": 200, "older": 409, "newer": 200, "third tab": 200}


# ---------------------------------------------------------------------------------------------- render output


def test_a_render_that_outgrows_the_work_folder_fails_and_leaves_nothing(studio, clip, style):
    from mvstylizer.studio.jobs import ROOM_CHECK_FRAMES
    from mvstylizer.studio.workspace import tree_size

    state = studio.app.state.studio
    ws = state.workspace
    studio.gate.open.clear()
    jid = studio.job(*looks(studio, clip, style, studio.headers), model="mk").json()["id"]
    assert studio.gate.held.wait(60)  # running, at its third frame
    job = ws.session(studio.headers["X-Studio-Session"]).job(jid)
    hold = state.rooms[jid]
    assert hold.granted == clip.stat().st_size  # the first guess: the input's size
    (job.dir / "grown.bin").write_bytes(b"\0" * (3 << 20))  # as if the output had grown past it
    state.check_room(job)
    assert hold.granted >= tree_size(job.dir)  # there was room: more was given
    (job.dir / "grown.bin").write_bytes(b"\0" * (6 << 20))
    ws.max_bytes = ws.usage()  # and now there is none
    studio.gate.open.set()
    done = studio.wait(jid)
    assert done["state"] == "failed" and done["error"].startswith("work folder full"), done
    assert done["frames_done"] == ROOM_CHECK_FRAMES < done["frames_total"]  # stopped at its next weighing
    assert not list(job.dir.glob("*.mp4")) and not state.rooms  # no unfinished file; the room is given back


def test_a_render_that_fits_gives_its_room_back(studio, clip, style):
    from mvstylizer.studio.workspace import tree_size

    state = studio.app.state.studio
    done = studio.wait(studio.job(*looks(studio, clip, style, studio.headers), model="mk").json()["id"])
    assert done["state"] == "done" and not state.rooms
    assert state.workspace.usage() == tree_size(state.workspace.sessions_dir)  # no promise left over


# ---------------------------------------------------------------------------------------------- idle sessions


def test_a_finished_render_starts_its_tabs_idle_time_again(studio, clip, style):
    ws = studio.app.state.studio.workspace
    studio.gate.open.clear()
    jid = studio.job(*looks(studio, clip, style, studio.headers), model="mk").json()["id"]
    assert studio.gate.held.wait(60)
    session = ws.session(studio.headers["X-Studio-Session"])
    session.last_seen -= ws.ttl + 100  # the render took longer than the age limit, the tab only watching
    studio.gate.open.set()
    until(lambda: session.job(jid).state == "done" and session.last_seen > time.time() - ws.ttl,
          "the render done, and its tab seen then")
    ws.sweep(now=time.time() + ws.ttl / 2)
    assert studio.client.get(f"/api/jobs/{jid}/video", headers=studio.headers).status_code == 200


@pytest.mark.network
def test_a_tab_watching_events_is_not_forgotten(tmp_path, monkeypatch):
    import httpx

    from mvstylizer.studio import StudioConfig
    from mvstylizer.studio.server import running

    apps = running_app(monkeypatch)
    with running(StudioConfig(workdir=tmp_path / "work", port=0)) as url, httpx.Client(base_url=url, timeout=30) as c:
        ws = apps[0].state.studio.workspace
        sid = c.post("/api/session").json()["session"]
        with c.stream("GET", "/api/events", params={"session": sid}) as events:
            lines = events.iter_lines()
            while not next(lines).startswith("event: snapshot"):
                pass
            ws.sweep(now=time.time() + ws.ttl + 100)
            assert c.get("/api/jobs", headers={"X-Studio-Session": sid}).status_code == 200


# ---------------------------------------------------------------------------------------------- small things


def test_ranges_a_file_cannot_serve_are_refused_in_json(studio, clip):
    url = studio.upload(clip).json()["frames_preview"][0]["url"]
    r = studio.client.get(url, headers={**studio.headers, "Range": "bytes=abc"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert "bad Range header" in r.json()["error"]
    r = studio.client.get(url, headers={**studio.headers, "Range": "bytes=99999999-"})
    assert r.status_code == 416 and "past the end" in r.json()["error"]
    assert r.headers["content-range"].startswith("bytes */")
    r = studio.client.get(url, headers={**studio.headers, "Range": "bytes=0-9"})
    assert r.status_code == 206 and len(r.content) == 10
    # A resumed download names the copy it has (If-Range): its own validator gets the range, any other
    # the whole file; both were a 500 (KeyError 'last-modified').
    for validator in (r.headers["etag"], r.headers["last-modified"]):
        got = studio.client.get(url, headers={**studio.headers, "Range": "bytes=0-9", "If-Range": validator})
        assert got.status_code == 206 and got.content == r.content
    whole = studio.client.get(url, headers={**studio.headers, "Range": "bytes=0-9", "If-Range": '"stale"'})
    assert whole.status_code == 200 and len(whole.content) > 10


@pytest.mark.network
def test_a_stalled_upload_is_dropped_and_cleaned_up(tmp_path, monkeypatch):
    import socket
    from urllib.parse import urlsplit

    import httpx

    from mvstylizer.studio import StudioConfig
    from mvstylizer.studio.server import running

    apps = running_app(monkeypatch)
    with running(StudioConfig(workdir=tmp_path / "work", port=0, upload_idle_seconds=0.3)) as url:
        ws = apps[0].state.studio.workspace
        sid = httpx.post(url + "api/session").json()["session"]
        where = urlsplit(url)
        with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
            sock.sendall(f"POST /api/videos?name=slow.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Studio-Session: {sid}\r\n"
                         "Content-Length: 100000\r\n\r\n".encode() + b"\0" * 1000)  # and then nothing
            answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 408") and b"slow.mp4 stalled" in answer, answer
        assert not [p for p in ws.sessions_dir.rglob("*") if p.is_file()] and ws.usage() == 0


def test_a_preview_error_names_the_style_not_its_server_path(studio, clip, style, tmp_path):
    video, key = looks(studio, clip, style, studio.headers)
    stored = next((tmp_path / "work" / "sessions").rglob("style.png"))
    stored.write_bytes(b"no longer a photo")
    r = studio.client.post("/api/preview", json={"video": video, "style": key, "model": "mk"}, headers=studio.headers)
    assert r.status_code == 400 and r.json()["error"].startswith(style.name), r.json()
    assert str(tmp_path) not in r.json()["error"] and "/sessions/" not in r.json()["error"]


def test_the_command_line_sets_the_video_and_session_limits(tmp_path, monkeypatch):
    import mvstylizer.studio as studio_pkg
    from mvstylizer.cli import main

    seen = []
    monkeypatch.setattr(studio_pkg, "serve", lambda config, **_: seen.append(config))  # (and before_run)
    assert main(["studio", "--workdir", str(tmp_path), "--max-video-pixels", "2073600", "--max-sessions", "7"]) == 0
    assert seen[0].max_video_pixels == 1920 * 1080 and seen[0].max_sessions == 7
    assert main(["studio", "--workdir", str(tmp_path)]) == 0
    defaults = studio_pkg.StudioConfig(workdir=tmp_path)  # the flags' defaults are the config's
    assert (seen[1].max_video_pixels, seen[1].max_sessions) == (defaults.max_video_pixels, defaults.max_sessions)


def test_a_file_gone_from_disk_is_a_404_in_json(tmp_path):
    """Starlette answers a missing file with a 500 (RuntimeError); the studio's files may be swept."""
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from mvstylizer.studio.app import StudioFile

    app = Starlette(routes=[Route("/f", lambda request: StudioFile(tmp_path / "gone.mp4"))])
    with TestClient(app) as client:
        for headers in ({}, {"Range": "bytes=0-9"}):
            r = client.get("/f", headers=headers)
            assert r.status_code == 404 and "no longer" in r.json()["error"]


def _answer(sock) -> bytes:
    """What the server sent on a raw socket, read up to the end of its JSON body."""
    answer = b""
    while b"}" not in answer:
        data = sock.recv(4096)
        assert data, answer
        answer += data
    return answer


def _slow_uploads(url: str, session: dict, n: int, size: int) -> list:
    """``n`` uploads of ``size`` declared bytes that send one byte and then nothing: their sockets."""
    import socket
    from urllib.parse import urlsplit

    where, socks = urlsplit(url), []
    for i in range(n):
        sock = socket.create_connection((where.hostname, where.port), timeout=30)
        socks.append(sock)
        sock.sendall(f"POST /api/videos?name=slow{i}.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"X-Studio-Session: {session['X-Studio-Session']}\r\nContent-Length: {size}\r\n\r\nx".encode())
    return socks


@pytest.mark.network
def test_a_tabs_uploads_arriving_hold_a_small_part_of_a_small_work_folder(tmp_path, clip, monkeypatch):
    # 4 MB held per upload arriving: two slow ones held the whole of an 8 MB folder, and another
    # tab's 50 KB clip was refused with 507.
    import httpx

    from mvstylizer.studio import StudioConfig
    from mvstylizer.studio.server import running

    apps = running_app(monkeypatch)
    config = StudioConfig(workdir=tmp_path / "work", port=0, max_work_bytes=8 << 20, max_upload_bytes=4 << 20)
    with running(config) as url, httpx.Client(base_url=url, timeout=60) as http:
        ws = apps[0].state.studio.workspace
        greedy, other = ({"X-Studio-Session": http.post("/api/session").json()["session"]} for _ in range(2))
        socks = _slow_uploads(url, greedy, config.max_uploads, 4 << 20)
        try:
            held = config.max_uploads * ((128 << 10) - 1)  # 1/64 of the folder each, less the byte written
            until(lambda: ws.usage() >= held, "the slow uploads holding room")
            assert ws.usage() <= held + config.max_uploads
            r = http.post("/api/videos", params={"name": clip.name}, content=clip.read_bytes(), headers=other)
            assert r.status_code == 200, r.text
        finally:
            for sock in socks:
                sock.close()


@pytest.mark.network
def test_a_tab_has_a_few_uploads_arriving_at_once_not_the_whole_folder(tmp_path, clip, monkeypatch):
    # Each upload arriving holds room; one tab dripping six at once (4 MB each) held all of a 24 MB
    # folder, and every other tab's uploads and renders got 507.
    import socket
    from urllib.parse import urlsplit

    import httpx

    from mvstylizer.studio import StudioConfig
    from mvstylizer.studio.server import running

    apps = running_app(monkeypatch)
    config = StudioConfig(workdir=tmp_path / "work", port=0, max_work_bytes=24 << 20, max_upload_bytes=12 << 20,
                          max_uploads=3)
    with running(config) as url, httpx.Client(base_url=url, timeout=60) as http:
        ws = apps[0].state.studio.workspace
        greedy, other = ({"X-Studio-Session": http.post("/api/session").json()["session"]} for _ in range(2))
        where, socks = urlsplit(url), []
        try:
            for i in range(6):
                sock = socket.create_connection((where.hostname, where.port), timeout=30)
                socks.append(sock)
                sock.sendall(f"POST /api/videos?name=slow{i}.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             f"X-Studio-Session: {greedy['X-Studio-Session']}\r\n"
                             f"Content-Length: {12 << 20}\r\n\r\nx".encode())
                if i < 3:
                    until(lambda n=i + 1: ws.find(greedy["X-Studio-Session"]).uploading == n, f"{i + 1} arriving")
                    continue
                answer = _answer(sock)
                assert answer.startswith(b"HTTP/1.1 429") and b"3 uploads are already arriving" in answer, answer
            r = http.post("/api/videos", params={"name": clip.name}, content=clip.read_bytes(), headers=other)
            assert r.status_code == 200, r.text
        finally:
            for sock in socks:
                sock.close()
        until(lambda: ws.find(greedy["X-Studio-Session"]).uploading == 0, "the slow uploads gone")
        r = http.post("/api/videos", params={"name": clip.name}, content=clip.read_bytes(), headers=greedy)
        assert r.status_code == 200, r.text


def test_a_tab_keeps_its_last_finished_renders_not_every_one(tmp_path, clip, style):
    # 390 renders started and cancelled left 390 records, every one of them in every job list.
    client, gate = make_studio(tmp_path, max_finished_jobs=3)
    with client:
        s = Studio(client, gate)
        video, key = looks(s, clip, style, s.headers)
        ids = []
        for _ in range(5):
            job = s.job(video, key).json()
            client.post(f"/api/jobs/{job['id']}/cancel", headers=s.headers)
            ids.append(s.wait(job["id"], ("cancelled",))["id"])
        listed = [j["id"] for j in client.get("/api/jobs", headers=s.headers).json()["jobs"]]
        assert listed == ids[-3:]
        assert client.get(f"/api/jobs/{ids[0]}", headers=s.headers).status_code == 404
        kept = s.job(video, key).json()["id"]  # a render waiting or running is never one of those forgotten
        assert s.wait(kept)["state"] == "done"
        listed = [j["id"] for j in client.get("/api/jobs", headers=s.headers).json()["jobs"]]
        assert listed == [*ids[-2:], kept]
        assert not (s.app.state.studio.workspace.find(s.headers["X-Studio-Session"]).dir / "jobs" / ids[2]).exists()


def test_a_small_work_folder_alone_brings_the_upload_limit_down_with_it(tmp_path, monkeypatch, capsys):
    # --max-work-mb 100 was refused: "--max-upload-mb cannot be larger than --max-work-mb", for a
    # default of 500 the user never gave.
    import mvstylizer.studio as studio_pkg
    from mvstylizer.cli import main

    seen = []
    monkeypatch.setattr(studio_pkg, "serve", lambda config, **_: seen.append(config))
    assert main(["studio", "--workdir", str(tmp_path), "--max-work-mb", "100"]) == 0
    assert seen[-1].max_upload_bytes == seen[-1].max_work_bytes == 100 << 20
    assert main(["studio", "--workdir", str(tmp_path), "--max-work-mb", "100", "--max-upload-mb", "40"]) == 0
    assert seen[-1].max_upload_bytes == 40 << 20
    assert main(["studio", "--workdir", str(tmp_path)]) == 0
    assert seen[-1].max_upload_bytes == 500 << 20
    assert main(["studio", "--workdir", str(tmp_path), "--max-work-mb", "100", "--max-upload-mb", "200"]) == 2
    assert "--max-upload-mb 200 cannot be larger than --max-work-mb 100" in capsys.readouterr().err


def test_files_answer_head_as_well_as_get(studio, clip, style):
    video, key = looks(studio, clip, style, studio.headers)
    job = studio.wait(studio.job(video, key, model="dncm").json()["id"])
    session = f"?session={studio.headers['X-Studio-Session']}"
    for url in ("/", "/favicon.ico", f"/api/videos/{video}/frames/0.jpg{session}",
                f"{job['video']}{session}&download=1", job["lut"] + session, job["report"] + session):
        got, head = studio.client.get(url), studio.client.head(url)
        assert head.status_code == got.status_code == 200, (url, head.status_code, got.status_code)
        assert head.content == b"" and head.headers["content-length"] == str(len(got.content)), url


def test_a_file_just_over_the_limit_is_told_apart_from_it(tmp_path):
    client, gate = make_studio(tmp_path, max_upload_bytes=12 << 20)
    with client:
        s = Studio(client, gate)
        r = client.post("/api/videos", params={"name": "x.mp4"}, content=b"\0",
                        headers={**s.headers, "Content-Length": str((12 << 20) + 1)})
        assert r.status_code == 413
        assert r.json()["error"] == ("x.mp4 is 12,582,913 bytes; the studio takes videos of at most 12,582,912 bytes "
                                     "(12 MB)")
        r = client.post("/api/videos", params={"name": "y.mp4"}, content=b"\0",
                        headers={**s.headers, "Content-Length": str(13 << 20)})
        assert r.json()["error"] == "y.mp4 is 13 MB; the studio takes videos of at most 12 MB"
