"""The studio's server without a browser: sessions, uploads and their limits, previews, the render
queue (progress, cancel), the work folder's size and age limits, errors as JSON, the CLI command.

The browser tests (tests/test_studio_browser.py) drive the same server through the page.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from render_gate import Gate

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from mvstylizer.bench.synthetic import write_test_clip  # noqa: E402
from mvstylizer.cli import main  # noqa: E402
from mvstylizer.studio import StudioConfig, create_app  # noqa: E402
from mvstylizer.studio.app import STATIC  # noqa: E402

FRAMES = 24


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("clip") / "street.mp4"
    write_test_clip(p, width=160, height=96, frames=FRAMES, fps=12.0)
    return p


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("style") / "warm.png"
    ramp = np.linspace(0, 1, 128, dtype=np.float32)[None, :, None]
    img = np.broadcast_to(ramp, (96, 128, 1)) * np.array([255, 170, 90], np.float32) + [0, 20, 40]
    cv2.imwrite(str(p), cv2.cvtColor(img.clip(0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return p


class Studio:
    """A TestClient on a fresh studio, with one session's headers."""

    def __init__(self, client: TestClient, gate: Gate) -> None:
        self.client, self.gate = client, gate
        self.app = client.app
        self.headers = self.new_session()

    def new_session(self) -> dict:
        return {"X-Studio-Session": self.client.post("/api/session").json()["session"]}

    def upload(self, path: Path, kind: str = "videos", name: str | None = None, headers: dict | None = None):
        return self.client.post(f"/api/{kind}", params={"name": name or path.name}, content=path.read_bytes(),
                                headers=headers or self.headers)

    def job(self, video: str, style: str, model: str = "dncm", strength: float = 0.8, headers: dict | None = None):
        return self.client.post("/api/jobs", json={"video": video, "style": style, "model": model,
                                                   "strength": strength}, headers=headers or self.headers)

    def wait(self, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get(f"/api/jobs/{job_id}", headers=self.headers).json()
            if job["state"] in states:
                return job
            threading.Event().wait(0.05)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def make_studio(tmp_path: Path, **config) -> tuple[TestClient, Gate]:
    gate = Gate()
    app = create_app(StudioConfig(workdir=tmp_path / "work", **config), frame_hook=gate)
    return TestClient(app, base_url="http://127.0.0.1"), gate


def frame_count(data: bytes, tmp_path: Path) -> int:
    p = tmp_path / "check.mp4"
    p.write_bytes(data)
    with av.open(str(p)) as c:
        return sum(1 for _ in c.decode(video=0))


# ---------------------------------------------------------------------------------------------- flow


def test_preview_render_and_downloads(studio, clip, style, tmp_path):
    info = studio.client.get("/api/info").json()
    names = [m["name"] for m in info["models"]]
    assert names[0] == "regions" and info["models"][0]["default"] and {"dncm", "mk"} <= set(names)
    assert next(m for m in info["models"] if m["name"] == "dncm")["lut"]

    video = studio.upload(clip).json()
    assert (video["width"], video["height"], video["frames"]) == (160, 96, FRAMES)
    assert [f["index"] for f in video["frames_preview"]] == [3, 9, 15, 21]  # evenly spread
    st = studio.upload(style, "styles").json()

    t = time.perf_counter()
    r = studio.client.post("/api/preview", json={"video": video["id"], "style": st["key"], "model": "regions",
                                                 "strength": 0.7}, headers=studio.headers)
    first = time.perf_counter() - t
    assert r.status_code == 200, r.text
    preview = r.json()
    assert len(preview["frames"]) == 4 and preview["model"] == "regions"
    before = studio.client.get(preview["frames"][1]["before"], headers=studio.headers)
    after = studio.client.get(preview["frames"][1]["after"], headers=studio.headers)
    assert before.headers["content-type"] == after.headers["content-type"] == "image/jpeg"
    a = cv2.imdecode(np.frombuffer(before.content, np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(after.content, np.uint8), cv2.IMREAD_COLOR)
    assert a.shape == b.shape == (96, 160, 3) and np.abs(a.astype(int) - b).mean() > 3  # the look changed it
    # The same look again comes from the session's cache.
    t = time.perf_counter()
    again = studio.client.post("/api/preview", json={"video": video["id"], "style": st["key"], "model": "regions",
                                                     "strength": 0.7}, headers=studio.headers).json()
    assert again["id"] == preview["id"] and time.perf_counter() - t < first

    job = studio.job(video["id"], st["key"], "dncm").json()
    assert job["state"] in ("queued", "running")
    done = studio.wait(job["id"])
    assert done["state"] == "done", done
    assert done["frames_done"] == done["frames_total"] == FRAMES and done["progress"] == 1.0
    mp4 = studio.client.get(done["video"], params={"download": 1}, headers=studio.headers)
    assert mp4.headers["content-type"] == "video/mp4"
    assert 'attachment; filename="street_warm.mp4"' in mp4.headers["content-disposition"]
    assert frame_count(mp4.content, tmp_path) == FRAMES
    lut = studio.client.get(done["lut"], headers=studio.headers)
    assert "LUT_3D_SIZE 33" in lut.text
    assert "strength 0.8" in lut.text  # the job's look, at the job's strength
    report = studio.client.get(done["report"], headers=studio.headers).json()
    assert report["frames"] == FRAMES and report["style"] == "warm.png" and report["input"] == "street.mp4"

    # A global model without a LUT export (mk): no LUT, and the reason from the API.
    mk = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    assert mk["state"] == "done" and mk["lut"] is None and "no LUT export" in mk["lut_reason"]
    r = studio.client.get(f"/api/jobs/{mk['id']}/lut", headers=studio.headers)
    assert r.status_code == 404 and "no LUT" in r.json()["error"]


def test_gallery_styles_when_scikit_image_is_installed(studio, clip):
    pytest.importorskip("skimage")
    gallery = studio.client.get("/api/info").json()["gallery"]
    assert {"gallery:coffee", "gallery:chelsea"} <= {g["key"] for g in gallery}
    thumb = studio.client.get("/api/gallery/coffee.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    video = studio.upload(clip).json()
    r = studio.client.post("/api/preview", json={"video": video["id"], "style": "gallery:coffee", "model": "mk",
                                                 "strength": 1.0}, headers=studio.headers)
    assert r.status_code == 200 and r.json()["style_name"] == "Coffee"
    assert studio.client.get("/api/gallery/../../etc/passwd.jpg").status_code == 404
    r = studio.client.post("/api/preview", json={"video": video["id"], "style": "gallery:nope", "model": "mk"},
                           headers=studio.headers)
    assert r.status_code == 404 and "no gallery style" in r.json()["error"]


# ---------------------------------------------------------------------------------------------- sessions


def test_tabs_do_not_see_each_others_files(studio, clip, style):
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    job = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    other = studio.new_session()
    for url in (f"/api/jobs/{job['id']}", job["video"], job["report"], video["frames_preview"][0]["url"],
                st["thumb"]):
        assert studio.client.get(url, headers=studio.headers).status_code == 200, url
        r = studio.client.get(url, headers=other)
        assert r.status_code == 404 and "error" in r.json(), url
    r = studio.client.post("/api/preview", json={"video": video["id"], "style": st["key"]}, headers=other)
    assert r.status_code == 404
    assert studio.client.get("/api/jobs", headers=other).json() == {"jobs": []}
    assert studio.client.post(f"/api/jobs/{job['id']}/cancel", headers=other).status_code == 404
    # The query parameter (for <video>, <img>, downloads) is the same key as the header.
    sid = studio.headers["X-Studio-Session"]
    assert studio.client.get(job["video"], params={"session": sid}).status_code == 200
    for headers in ({}, {"X-Studio-Session": "made-up"}):
        r = studio.client.get("/api/jobs", headers=headers)
        assert r.status_code == 401 and "reload the page" in r.json()["error"]


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_uploads_get_a_message_not_a_crash(tmp_path, clip, style):
    client, gate = make_studio(tmp_path, max_upload_bytes=200_000, max_style_bytes=100_000,
                               max_style_pixels=500_000)
    with client:
        s = Studio(client, gate)

        def refused(path: Path, kind: str = "videos", name: str | None = None) -> tuple[int, str]:
            r = s.upload(path, kind, name)
            assert r.headers["content-type"] == "application/json"
            text = r.json()["error"]
            assert "Traceback" not in text and str(tmp_path) not in text and "/sessions/" not in text, text
            return r.status_code, text

        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video at all\n" * 50)
        assert refused(notes)[0] == 400 and "notes.mp4" in refused(notes)[1] and "not a video" in refused(notes)[1]
        status, text = refused(clip, name="clip.txt")
        assert status == 400 and "clip.txt is not a video" in text
        empty = tmp_path / "empty.mp4"
        empty.write_bytes(b"")
        assert refused(empty) == (400, "empty.mp4 is empty (0 bytes)")
        no_frames = tmp_path / "noframes.mp4"
        with av.open(str(no_frames), "w") as c:  # an H.264 stream's header, and not one frame
            v = c.add_stream("libx264", rate=12)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
            c.start_encoding()
        status, text = refused(no_frames)
        assert status == 400 and "noframes.mp4" in text and "no video" in text, text
        big = tmp_path / "big.mp4"
        big.write_bytes(clip.read_bytes() + b"\0" * 250_000)
        status, text = refused(big)
        assert status == 413 and "at most" in text
        # A streamed body without a length is cut off at the limit too.
        r = client.post("/api/videos", params={"name": "big.mp4"}, headers=s.headers,
                        content=(b"\0" * 50_000 for _ in range(6)))
        assert r.status_code == 413 and "larger than" in r.json()["error"]

        text_style = tmp_path / "photo.jpg"
        text_style.write_text("hello")
        status, text = refused(text_style, "styles")
        assert status == 400 and "photo.jpg is not a readable image" in text
        huge = tmp_path / "huge.png"
        cv2.imwrite(str(huge), np.zeros((1000, 1000, 3), np.uint8))  # 1 Mpx over a 0.5 Mpx limit, tiny file
        status, text = refused(huge, "styles")
        assert status == 400 and "1000x1000" in text
        # Nothing of the refused uploads is left behind, and the server still works.
        assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file() and "sessions" in p.parts]
        assert s.upload(clip).status_code == 200

        video = s.upload(clip).json()
        st = s.upload(style, "styles").json()
        for body, why in (({"video": video["id"], "style": st["key"], "model": "nope"}, "unknown model"),
                          ({"video": video["id"], "style": st["key"], "strength": 3}, "strength"),
                          ({"video": video["id"], "style": "upload:zzz"}, "no longer here"),
                          ({"video": video["id"], "style": ""}, "pick a style"),
                          ({"video": "zzz", "style": st["key"]}, "no longer here")):
            r = client.post("/api/preview", json=body, headers=s.headers)
            assert r.status_code in (400, 404, 422) and why in r.json()["error"], (body, r.json())
        r = client.post("/api/preview", content=b"{not json", headers={**s.headers, "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"].startswith("bad request")
        assert client.get("/api/nothing-here").json() == {"error": "Not Found"}


def test_an_unexpected_exception_is_one_line_of_json(studio, clip, monkeypatch, caplog):
    from mvstylizer.studio import media

    def boom(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(media, "probe_video", boom)
    r = studio.upload(clip)
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (RuntimeError); the server log has the details"}
    assert any("disk on fire" in rec.getMessage() for rec in caplog.records)


def test_a_render_that_breaks_fails_its_job_only(studio, clip, style, monkeypatch):
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    renderer = studio.app.state.studio.renderer

    def broken(job, index):  # noqa: ANN001
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(renderer, "frame_hook", broken)
    job = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    assert job["state"] == "failed" and job["error"].startswith("internal error (RuntimeError)")
    assert job["video"] is None
    monkeypatch.setattr(renderer, "frame_hook", None)
    assert studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])["state"] == "done"


def test_only_loopback_host_names_reach_a_loopback_studio(studio):
    r = studio.client.get("/api/info", headers={"Host": "attacker.example"})
    assert r.status_code == 403 and "unexpected host" in r.json()["error"]
    page = studio.client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]


# ---------------------------------------------------------------------------------------------- the queue


def test_queue_runs_one_job_at_a_time_and_cancel_works(studio, clip, style, tmp_path):
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    studio.gate.open.clear()
    first = studio.job(video["id"], st["key"], "mk").json()
    assert studio.gate.held.wait(60)
    running = studio.wait(first["id"], states=("running",))
    assert 0 < running["progress"] < 0.2
    second = studio.job(video["id"], st["key"], "mk").json()
    third = studio.job(video["id"], st["key"], "mk").json()
    assert studio.client.get(f"/api/jobs/{second['id']}", headers=studio.headers).json()["state"] == "queued"
    # Cancelling a queued job is immediate; the running one stops at its next frame.
    cancelled = studio.client.post(f"/api/jobs/{second['id']}/cancel", headers=studio.headers).json()
    assert cancelled["state"] == "cancelled"
    studio.client.post(f"/api/jobs/{first['id']}/cancel", headers=studio.headers)
    assert studio.wait(first["id"])["state"] == "cancelled"
    studio.gate.open.set()
    done = studio.wait(third["id"])
    assert done["state"] == "done"
    starts = {j["id"]: j for j in studio.client.get("/api/jobs", headers=studio.headers).json()["jobs"]}
    assert starts[second["id"]]["started"] is None  # never ran
    assert starts[third["id"]]["started"] >= starts[first["id"]]["finished"]  # one at a time
    # A cancelled render leaves no file, not even a temporary one.
    job_dir = tmp_path / "work" / "sessions" / studio.headers["X-Studio-Session"] / "jobs" / first["id"]
    assert not job_dir.exists() or not any(job_dir.iterdir())
    r = studio.client.get(f"/api/jobs/{first['id']}/video", headers=studio.headers)
    assert r.status_code == 404 and "cancelled" in r.json()["error"]
    # A finished job can be removed; a running one must be cancelled first.
    assert studio.client.delete(f"/api/jobs/{done['id']}", headers=studio.headers).status_code == 200
    assert studio.client.get(f"/api/jobs/{done['id']}", headers=studio.headers).status_code == 404


@pytest.mark.network
def test_progress_streams_as_server_sent_events(tmp_path, clip, style):
    import httpx

    from mvstylizer.studio.server import running

    with running(StudioConfig(workdir=tmp_path / "work", port=0)) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            headers = {"X-Studio-Session": c.post("/api/session").json()["session"]}
            video = c.post("/api/videos", params={"name": "a.mp4"}, content=clip.read_bytes(), headers=headers).json()
            st = c.post("/api/styles", params={"name": "s.png"}, content=style.read_bytes(), headers=headers).json()
            seen: list[dict] = []
            with c.stream("GET", "/api/events", params={"session": headers["X-Studio-Session"]}) as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                lines = events.iter_lines()
                kind = None
                for line in lines:
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind == "snapshot":
                        assert json.loads(line[6:]) == {"jobs": []}
                        job = c.post("/api/jobs", json={"video": video["id"], "style": st["key"], "model": "regions"},
                                     headers=headers).json()
                    elif line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                        if seen[-1]["state"] in ("done", "failed", "cancelled"):
                            break
    assert all(e["id"] == job["id"] for e in seen)
    states = [e["state"] for e in seen]
    assert states[0] == "queued" and "running" in states and states[-1] == "done"
    progress = [e["progress"] for e in seen]
    assert progress == sorted(progress) and len(set(progress)) >= 3, progress  # live, not just start and end


# ---------------------------------------------------------------------------------------------- work folder


def test_work_folder_limit_removes_oldest_finished_jobs_first(studio, clip, style):
    ws = studio.app.state.studio.workspace
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    old = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    new = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    ws.max_bytes = ws.usage() - 1  # just over: one job's files must go, the oldest
    for job in ws.make_room():
        studio.app.state.studio.broadcaster.publish(job.session, job.as_dict())
    jobs = {j["id"]: j for j in studio.client.get("/api/jobs", headers=studio.headers).json()["jobs"]}
    assert jobs[old["id"]]["expired"] and jobs[old["id"]]["video"] is None
    assert not jobs[new["id"]]["expired"] and jobs[new["id"]]["video"]
    r = studio.client.get(old["video"], headers=studio.headers)
    assert r.status_code == 404 and "removed" in r.json()["error"]
    assert studio.client.get(video["frames_preview"][0]["url"], headers=studio.headers).status_code == 200

    # Full of what running jobs need: an upload is refused with a message, nothing running is touched.
    studio.gate.open.clear()
    held = studio.job(video["id"], st["key"], "mk").json()
    assert studio.gate.held.wait(60)
    ws.max_bytes = 1
    r = studio.upload(clip)
    assert r.status_code == 507 and "studio storage full" in r.json()["error"]
    assert studio.client.get(f"/api/jobs/{held['id']}", headers=studio.headers).json()["state"] == "running"
    assert studio.client.get(video["frames_preview"][0]["url"], headers=studio.headers).status_code == 200
    studio.gate.open.set()
    assert studio.wait(held["id"])["state"] == "done"


def test_old_files_and_idle_sessions_are_cleaned_up(studio, clip, style):
    ws = studio.app.state.studio.workspace
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    job = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    session_dir = ws.sessions_dir / studio.headers["X-Studio-Session"]
    assert (session_dir / "jobs" / job["id"] / "stylized.mp4").is_file()
    ws.sweep(now=time.time() + ws.ttl / 2)
    assert (session_dir / "jobs" / job["id"] / "stylized.mp4").is_file()  # not old yet
    ws.sweep(now=time.time() + ws.ttl + 10)
    assert not session_dir.exists()
    assert studio.client.get("/api/jobs", headers=studio.headers).status_code == 401


def test_a_new_server_empties_only_its_own_sessions_folder(tmp_path):
    from mvstylizer.errors import UserError
    from mvstylizer.studio.workspace import Workspace

    mine = tmp_path / "studio"
    first = Workspace(mine, 10**9, 3600)
    (first.sessions_dir / "running").mkdir()
    # A second studio on a folder in use would empty the first one's sessions under its renders.
    with pytest.raises(UserError, match="in use by another running studio"):
        Workspace(mine, 10**9, 3600)
    assert (mine / "sessions" / "running").is_dir()
    first.close()
    (mine / "sessions" / "stale").mkdir()
    Workspace(mine, 10**9, 3600).close()
    assert not (mine / "sessions" / "stale").exists()
    # A folder someone else uses is never emptied: the studio works in a subfolder of it.
    theirs = tmp_path / "photos"
    theirs.mkdir()
    (theirs / "holiday.jpg").write_bytes(b"x")
    ws = Workspace(theirs, 10**9, 3600)
    assert (theirs / "holiday.jpg").is_file() and ws.root == theirs / "mvstylizer-studio"


# ---------------------------------------------------------------------------------------------- page, CLI


def test_page_assets_are_local_and_carry_the_test_ids(studio):
    html = studio.client.get("/").text
    for testid in ("video-input", "style-input", "preview", "strength", "run", "error"):
        assert f'data-testid="{testid}"' in html, testid
    js = studio.client.get("/static/studio.js").text
    for testid in ("progress", "cancel", "download-video", "download-lut"):
        assert f'"data-testid": "{testid}"' in js, testid
    for f in STATIC.iterdir():
        text = f.read_text()
        # Nothing is fetched from elsewhere: no external URL but the SVG namespace, no @import.
        urls = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls and "@import" not in text, (f.name, urls)
        assert studio.client.get(f"/static/{f.name}").status_code == 200


@pytest.mark.network
def test_cli_studio_port_in_use_is_a_clean_error(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["studio", "--port", str(port), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot serve on 127.0.0.1") and "--port" in err and "Traceback" not in err
    assert main(["studio", "--max-upload-mb", "10", "--max-work-mb", "5"]) == 2
    assert "cannot be larger" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["studio", "--workdir", str(tmp_path / "file")]) == 2
    capsys.readouterr()
    for edge in ("notaurl", "http://127.0.0.1:99999"):  # started, then said "cannot reach the edge" on the page
        assert main(["studio", "--edge", edge, "--workdir", str(tmp_path / "w2")]) == 2
        assert capsys.readouterr().err.startswith("error: edge URL")


@pytest.mark.network
def test_cli_studio_serves_until_stopped_and_removes_its_temporary_folder(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mvstylizer.cli", "studio", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"on (http://\S+) \(work folder (\S+);", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        import httpx

        assert httpx.get(m[1] + "api/info", timeout=30).status_code == 200
        assert Path(m[2]).is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert not Path(m[2]).exists()


@pytest.mark.network
def test_a_request_cut_off_by_ctrl_c_gets_json_and_the_console_no_traceback(tmp_path):
    # uvicorn cancels what still runs 3 s after Ctrl-C: it printed a 55-line traceback per request
    # and answered 500 in text/plain.
    import httpx

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mvstylizer.cli", "studio", "--port", "0", "--workdir",
                             str(tmp_path / "work")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"on http://([\d.]+):(\d+)/", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        sid = httpx.post(f"http://{m[1]}:{m[2]}/api/session", timeout=30).json()["session"]
        with socket.create_connection((m[1], int(m[2])), timeout=30) as sock:
            sock.sendall(f"POST /api/videos?name=slow.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Studio-Session: {sid}\r\n"
                         "Content-Length: 100000\r\n\r\n".encode() + b"\0" * 1000)  # and the rest never comes
            httpx.get(f"http://{m[1]}:{m[2]}/api/info", timeout=30)  # the upload is in before the stop
            proc.send_signal(signal.SIGINT)
            answer = b""
            while data := sock.recv(4096):
                answer += data
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"content-type: application/json" in head.lower(), answer
    assert "the studio is stopping" in json.loads(body)["error"]
    assert "Traceback" not in out + err and len((out + err).splitlines()) <= 3, out + err


@pytest.mark.network
def test_studio_on_a_remote_edge(tmp_path, clip, style):
    """``--edge URL``: the models run on `mvstylizer edge serve`; previews and renders work the same."""
    from edge_server import start_server, stop_server

    edge_url, proc = start_server("--models", "mk", "dncm")
    try:
        client, gate = make_studio(tmp_path, edge=edge_url)
        with client:
            s = Studio(client, gate)
            assert [m["name"] for m in client.get("/api/info").json()["models"]] == ["dncm", "mk"]
            assert client.get("/api/info").json()["edge"] == edge_url
            video = s.upload(clip).json()
            st = s.upload(style, "styles").json()
            r = client.post("/api/preview", json={"video": video["id"], "style": st["key"], "model": "mk"},
                            headers=s.headers)
            assert r.status_code == 200, r.text
            job = s.wait(s.job(video["id"], st["key"], "mk").json()["id"])
            assert job["state"] == "done" and job["frames_done"] == FRAMES
            r = client.post("/api/preview", json={"video": video["id"], "style": st["key"], "model": "regions"},
                            headers=s.headers)
            assert r.status_code == 400 and "unknown model 'regions'" in r.json()["error"]
    finally:
        stop_server(proc)


def test_a_preview_superseded_while_it_waited_is_skipped(studio, clip, style):
    from mvstylizer.errors import UserError
    from mvstylizer.studio.app import _make_preview
    from mvstylizer.studio.jobs import StyleRef

    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    state = studio.app.state.studio
    session = state.workspace.session(studio.headers["X-Studio-Session"])
    up = session.upload(video["id"])
    ref = StyleRef(st["key"], st["name"], session.style(st["id"]).image)
    session.preview_seq = 7  # the tab asked for a newer look while this one waited
    with pytest.raises(UserError, match="newer preview") as exc:
        _make_preview(state, session, 6, up, ref, "mk", 0.5)
    assert exc.value.http_status == 409
    assert len(_make_preview(state, session, 7, up, ref, "mk", 0.5)["images"]) == 4
    assert len(_make_preview(state, session, 0, up, ref, "mk", 0.5)["images"]) == 4  # a client without numbers
    # Requests that reach the server out of order: the older number is the one skipped.
    body = {"video": video["id"], "style": st["key"], "model": "reinhard"}
    assert studio.client.post("/api/preview", json={**body, "seq": 9}, headers=studio.headers).status_code == 200
    r = studio.client.post("/api/preview", json={**body, "model": "mk", "strength": 0.3, "seq": 8},
                           headers=studio.headers)
    assert r.status_code == 409


# ---------------------------------------------------------------------------------------------- limits


def test_a_job_never_frees_space_by_removing_its_own_video(studio, clip, style):
    ws = studio.app.state.studio.workspace
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    ws.max_bytes = ws.usage()  # room for the output only by removing the job's own upload and style
    r = studio.job(video["id"], st["key"], "mk")
    assert r.status_code == 507 and "studio storage full" in r.json()["error"]
    assert studio.client.get(video["frames_preview"][0]["url"], headers=studio.headers).status_code == 200


def test_a_reservation_larger_than_the_work_folder_removes_nothing(studio, clip):
    from mvstylizer.studio.workspace import WorkFolderFull

    ws = studio.app.state.studio.workspace
    video = studio.upload(clip).json()
    with pytest.raises(WorkFolderFull, match="more than the studio's whole work folder"):
        session = ws.session(studio.headers["X-Studio-Session"])
        ws.reserve(ws.max_bytes + 1, session, ws.hold(session), others=True)
    assert studio.client.get(video["frames_preview"][0]["url"], headers=studio.headers).status_code == 200


def test_json_routes_refuse_a_huge_body_before_reading_it(studio):
    body = b'{"video": "x", "style": "y", "pad": "' + b"a" * (1 << 20) + b'"}'
    r = studio.client.post("/api/preview", content=body, headers={**studio.headers, "Content-Type": "application/json"})
    assert r.status_code == 413 and "request body over" in r.json()["error"]

    def chunks():
        yield body[:1000]
        yield body[1000:]

    r = studio.client.post("/api/jobs", content=chunks(),
                           headers={**studio.headers, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_a_long_file_name_keeps_its_extension(studio, clip):
    r = studio.upload(clip, name="x" * 300 + ".mp4")
    assert r.status_code == 200 and r.json()["name"].endswith(".mp4") and len(r.json()["name"]) <= 120


def test_a_decompression_bomb_style_is_refused_from_its_header(studio, tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"  # a PNG header that claims 15000 x 15000 grey pixels
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 15000, 15000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 15001)) + chunk(b"IEND", b""))
    r = studio.upload(bomb, "styles")
    assert r.status_code == 400 and r.json()["error"].startswith("bomb.png is 15000x15000 pixels")
    assert "at most 50 megapixels" in r.json()["error"]  # the studio's own limit, not the library's 200
    # A header past the library's limit too: still the studio's limit in the message.
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 60001)) + chunk(b"IEND", b""))
    r = studio.upload(bomb, "styles")
    assert r.status_code == 400 and "at most 50 megapixels" in r.json()["error"], r.json()


def test_an_unsupported_photo_format_is_named_as_the_user_named_it(studio, tmp_path):
    photo = tmp_path / "photo.bin"
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    for name, kind in (("My Photo.heic", "HEIC"), ("My Photo.jxl", "JPEG XL")):
        r = studio.upload(photo, "styles", name=name)
        error = r.json()["error"]
        assert r.status_code == 400 and error.startswith(f"{name}: {kind}") and "original" not in error, error


def test_a_cancel_that_arrives_while_the_report_is_written_wins(studio, clip, style, monkeypatch):
    from mvstylizer.studio.jobs import Renderer

    original = Renderer._lut

    def late_cancel(self, job):
        original(self, job)
        job.cancel.set()  # the last frame is written; the cancel lands before the job ends

    monkeypatch.setattr(Renderer, "_lut", late_cancel)
    video = studio.upload(clip).json()
    st = studio.upload(style, "styles").json()
    job = studio.wait(studio.job(video["id"], st["key"], "mk").json()["id"])
    assert job["state"] == "cancelled"
    assert studio.client.get(f"/api/jobs/{job['id']}/video", headers=studio.headers).status_code == 404


def test_an_upload_asks_for_room_for_every_byte_it_writes(studio, monkeypatch):
    ws = studio.app.state.studio.workspace
    asked = []
    original = ws.reserve
    monkeypatch.setattr(ws, "reserve", lambda nbytes, *a, **k: (asked.append(nbytes), original(nbytes, *a, **k))[1])
    body = b"\x00" * (9 << 20)  # one 9 MB chunk through the test client: more than one 4 MB block
    studio.client.post("/api/videos", params={"name": "zeros.mp4"}, content=body, headers=studio.headers)
    assert sum(asked) >= len(body)


def test_an_edge_that_never_answers_does_not_hold_other_requests(tmp_path, clip, style):
    # The model list comes from the edge; asked inside the request handler, an edge that accepts
    # connections but never answers froze every other request of every tab for minutes.
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        client, gate = make_studio(tmp_path, edge=f"http://127.0.0.1:{silent.getsockname()[1]}")
        with client:
            s = Studio(client, gate)
            video = s.upload(clip).json()
            st = s.upload(style, "styles").json()
            answers: list[int] = []
            asking = threading.Thread(target=lambda: answers.append(client.post(
                "/api/preview", json={"video": video["id"], "style": st["key"], "model": "mk"},
                headers=s.headers).status_code))
            asking.start()
            time.sleep(0.5)
            assert client.get("/api/jobs", headers=s.headers).status_code == 200
            assert asking.is_alive()  # the preview still waits for the edge; the listing did not
            asking.join(60)
            assert answers and 400 <= answers[0] < 500, answers
    finally:
        silent.close()


def test_a_truncated_video_is_taken_with_a_warning_on_the_upload_and_the_job(studio, style, tmp_path):
    # Accepted as 30 frames, rendered to the 17 or so that decode and marked done: only the server
    # log said the file was cut short.
    full = tmp_path / "full.avi"
    write_test_clip(full, width=96, height=64, frames=30)
    cut = tmp_path / "holiday.avi"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    r = studio.upload(cut)
    assert r.status_code == 200, r.text
    warned = r.json()["warnings"]
    assert len(warned) == 1 and warned[0].startswith("holiday.avi declares 30 frames but only "), warned
    assert str(tmp_path) not in warned[0] and "/sessions/" not in warned[0]
    key = studio.upload(style, "styles").json()["key"]
    job = studio.wait(studio.job(r.json()["id"], key, model="reinhard").json()["id"])
    assert job["state"] == "done" and 0 < job["frames_total"] < 30
    assert len(job["warnings"]) == 1 and job["warnings"][0].startswith("holiday.avi declares 30 frames"), job
    listed = studio.client.get("/api/jobs", headers=studio.headers).json()["jobs"]
    assert listed[0]["warnings"] == job["warnings"]
    # An intact video has none.
    whole = studio.upload(full)
    assert whole.status_code == 200 and whole.json()["warnings"] == []


def test_a_tiny_or_thin_style_is_taken_with_a_warning(studio, style, tmp_path):
    # The pipeline warned of these in the server log only, at every preview and render.
    for name, size, shape in (("dot.png", (12, 12), "small"), ("strip.png", (40, 400), "thin")):
        cv2.imwrite(str(tmp_path / name), np.full((*size, 3), 128, np.uint8))
        r = studio.upload(tmp_path / name, "styles")
        assert r.status_code == 200, r.text
        assert r.json()["warnings"] == [f"{name} is {size[1]}x{size[0]} pixels: a look is taken from a photo's "
                                        f"colours and what they are on, and so {shape} a photo holds little of "
                                        "either; one of at least 32 px a side, at most 8 times as long as it is "
                                        "wide, works best"], r.json()
    assert studio.upload(style, "styles").json()["warnings"] == []


@pytest.mark.parametrize("host", ["127.0.0.2", "127.1", "localhost"])
def test_every_loopback_spelling_gets_the_dns_rebinding_check_and_no_open_warning(tmp_path, host, monkeypatch,
                                                                                  caplog):
    # Judged by its spelling, --host 127.0.0.2 or 127.1 served Host: evil.example, and the studio
    # warned that anyone who could reach it could use it.
    from mvstylizer.studio import server

    app = create_app(StudioConfig(workdir=tmp_path / "work", host=host))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.get("/api/info", headers={"Host": "evil.example"})
        assert r.status_code == 403 and "unexpected host" in r.json()["error"]
        for name in ("127.0.0.2", "localhost:8500", "[::1]:8500", "127.1"):
            assert client.get("/api/info", headers={"Host": name}).status_code == 200, name
    ran = []
    monkeypatch.setattr(server, "_server", lambda *a: type("Stub", (), {"run": lambda self, sockets: ran.append(1)})())
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    with caplog.at_level("WARNING", logger="mvstylizer.studio"):
        server.serve(StudioConfig(workdir=tmp_path / "served", host=host, port=free), announce=lambda line: None)
    assert ran and not [r for r in caplog.records if "no log-in" in r.getMessage()]


def test_a_studio_open_to_the_network_serves_any_host_name(tmp_path):
    app = create_app(StudioConfig(workdir=tmp_path / "work", host="0.0.0.0"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/info", headers={"Host": "studio.lan"}).status_code == 200
