"""`mvstylizer edge serve` as a real process, and `stylize --edge URL` through it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import cv2
import httpx
import numpy as np
import pytest

from mvstylizer.cli import main
from mvstylizer.video.synthetic import write_test_clip

from helpers import texture, to8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server() -> tuple[str, subprocess.Popen]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mvstylizer.cli", "edge", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("edge server did not start")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server():
    url, proc = _start_server()
    yield url, proc
    _stop(proc)


def test_stylize_through_the_server_matches_the_embedded_edge(tmp_path, server, monkeypatch):
    from mvstylizer.video import io as video_io

    url, _ = server
    src, style = tmp_path / "in.mp4", tmp_path / "style.png"
    write_test_clip(src, width=96, height=64, frames=12, fps=10.0, audio=True)
    cv2.imwrite(str(style), cv2.cvtColor(to8(texture(50, 70, seed=4) * [1.2, 0.9, 0.6]), cv2.COLOR_RGB2BGR))
    # Compare the frames handed to the encoder: x264's threads make the encoded pixels differ a
    # little from run to run even for identical input.
    written: list[list[np.ndarray]] = []
    original = video_io.VideoWriter.write

    def keep(self, rgb8, pts=None):
        written[-1].append(rgb8.astype(np.int16))
        return original(self, rgb8, pts)

    monkeypatch.setattr(video_io.VideoWriter, "write", keep)
    for edge in (["--edge", url], []):
        written.append([])
        report = tmp_path / "r.json"
        assert main(["stylize", str(src), "--style", str(style), "-o", str(tmp_path / "out.mp4"), "-q",
                     "--report", str(report), *edge]) == 0
        assert json.loads(report.read_text())["bytes_to_edge"] > 0
    remote, local = written
    assert len(remote) == len(local) == 12
    assert max(np.abs(a - b).max() for a, b in zip(remote, local)) <= 2


def test_unreachable_edge_is_one_clear_line(tmp_path, capsys):
    src, style = tmp_path / "in.mp4", tmp_path / "style.png"
    write_test_clip(src, width=64, height=48, frames=4, fps=10.0)
    cv2.imwrite(str(style), to8(texture(20, 20)))
    out = tmp_path / "out.mp4"
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    assert main(["stylize", str(src), "--style", str(style), "-o", str(out), "--edge", url, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "unreachable" in err and "\n" not in err
    assert not out.exists()


def test_edge_killed_mid_video_gives_a_clear_error_and_no_output(tmp_path, capsys, monkeypatch):
    from mvstylizer.mobile import http_edge

    url, proc = _start_server()
    try:
        src, style = tmp_path / "in.mp4", tmp_path / "style.png"
        write_test_clip(src, width=64, height=48, frames=40, fps=10.0)
        cv2.imwrite(str(style), to8(texture(20, 20)))
        out = tmp_path / "out.mp4"
        calls = {"n": 0}
        original = http_edge.HttpEdge.stylize

        def stylize_then_die(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:  # the edge dies after the first key frame
                proc.kill()
                proc.wait(10)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(http_edge.HttpEdge, "stylize", stylize_then_die)
        code = main(["stylize", str(src), "--style", str(style), "-o", str(out), "--edge", url, "-q",
                     "--keyframes", "every:5"])
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "unreachable" in err and "\n" not in err
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    finally:
        _stop(proc)
