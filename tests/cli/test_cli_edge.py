"""`mvstylizer edge serve` as a real process, and `stylize --edge URL` through it."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess

import cv2
import httpx
import numpy as np
import pytest

from mvstylizer.cli import main
from mvstylizer.errors import UserError
from mvstylizer.bench.synthetic import write_test_clip

from edge_server import free_port, start_server, stop_server
from helpers import texture, to8


pytestmark = pytest.mark.network

# These tests are about the edge transport, not meta-smoothing: the classic guided upsampling needs no
# trained weights and is the cheaper of the two.
GUIDED = ["--smoothing", "guided", "-y"]  # -y: several runs write the same output


@pytest.fixture(scope="module")
def server():
    url, proc = start_server()
    yield url, proc
    stop_server(proc)


def test_stylize_through_the_server_matches_the_embedded_edge(tmp_path, server, monkeypatch):
    from mvstylizer.video.writer import VideoWriter

    url, _ = server
    src, style = tmp_path / "in.mp4", tmp_path / "style.png"
    write_test_clip(src, width=96, height=64, frames=12, fps=10.0, audio=True)
    cv2.imwrite(str(style), cv2.cvtColor(to8(texture(50, 70, seed=4) * [1.2, 0.9, 0.6]), cv2.COLOR_RGB2BGR))
    # Compare the frames handed to the encoder: x264's threads make the encoded pixels differ a
    # little from run to run even for identical input.
    written: list[list[np.ndarray]] = []
    original = VideoWriter.write

    def keep(self, rgb8, pts=None):
        written[-1].append(rgb8.astype(np.int16))
        return original(self, rgb8, pts)

    monkeypatch.setattr(VideoWriter, "write", keep)
    for edge in (["--edge", url], []):
        written.append([])
        report = tmp_path / "r.json"
        assert main(["stylize", *GUIDED, str(src), "--style", str(style), "-o", str(tmp_path / "out.mp4"), "-q",
                     "--report", str(report), *edge]) == 0
        assert json.loads(report.read_text())["bytes_to_edge"] > 0
    remote, local = written
    assert len(remote) == len(local) == 12
    assert max(np.abs(a - b).max() for a, b in zip(remote, local)) <= 2


def test_unreachable_edge_is_one_clear_line(tmp_path, capsys):
    src, style = tmp_path / "in.mp4", tmp_path / "style.png"
    write_test_clip(src, width=64, height=48, frames=4, fps=10.0)
    cv2.imwrite(str(style), to8(texture(48, 48)))
    out = tmp_path / "out.mp4"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["stylize", *GUIDED, str(src), "--style", str(style), "-o", str(out), "--edge", url, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "unreachable" in err and "\n" not in err
    assert not out.exists()


def test_edge_killed_mid_video_gives_a_clear_error_and_no_output(tmp_path, capsys, monkeypatch):
    from mvstylizer.mobile import http_edge

    url, proc = start_server()
    try:
        src, style = tmp_path / "in.mp4", tmp_path / "style.png"
        write_test_clip(src, width=64, height=48, frames=40, fps=10.0)
        cv2.imwrite(str(style), to8(texture(48, 48)))
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
        code = main(["stylize", *GUIDED, str(src), "--style", str(style), "-o", str(out), "--edge", url, "-q",
                     "--keyframes", "every:5", "--edge-reconnect", "2"])
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "unreachable" in err and "\n" not in err
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    finally:
        stop_server(proc)


def _clip(tmp_path, frames: int = 12) -> tuple:
    src, style = tmp_path / "in.mp4", tmp_path / "style.png"
    if not src.exists():
        write_test_clip(src, width=64, height=48, frames=frames, fps=10.0)
        cv2.imwrite(str(style), to8(texture(48, 48)))
    return src, style


def test_contributed_frames_survive_a_killed_server(tmp_path, capsys):
    """Token auth + --contribute through the CLI; SIGKILL the edge; a restart finds the store intact."""
    from mvstylizer.edge.store import FrameStore

    src, style = _clip(tmp_path)
    token = "phone-token-0123456789abcdef"
    tokens, phone_token = tmp_path / "tokens", tmp_path / "phone.token"
    tokens.write_text(f"phone1 {token} stylize,metrics\n")
    tokens.chmod(0o600)  # edge serve refuses a token file others can read
    phone_token.write_text(token + "\n")
    data = tmp_path / "data"
    args = ["--token-file", str(tokens), "--data-dir", str(data), "--models", "classic"]
    url, proc = start_server(*args)
    out = tmp_path / "out.mp4"
    try:
        base = ["stylize", *GUIDED, str(src), "--style", str(style), "-o", str(out), "--edge", url, "--model", "classic",
                "--keyframes", "every:4"]
        assert main([*base, "-q"]) == 2  # no token
        assert "401" in capsys.readouterr().err
        assert main([*base, "-q", "--edge-token-file", str(phone_token)]) == 0  # no opt-in: nothing kept
        assert len(FrameStore(data)) == 0
        assert main([*base, "--edge-token-file", str(phone_token), "--contribute"]) == 0
        assert "kept 4 key frame(s)" in capsys.readouterr().out
        with FrameStore(data) as store:
            ids = store.ids()
            frames = list(store.iter_frames())
        assert len(ids) == 4 and all(f.shape == (48, 64, 3) for f in frames)
    finally:
        proc.kill()  # no graceful shutdown: as if the machine lost power
        proc.wait(10)
    url, proc = start_server(*args)
    try:
        metrics = httpx.get(f"{url}/v1/metrics", headers={"Authorization": f"Bearer {token}"}).text
        size = next(float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith("mvstylizer_edge_store_bytes "))
        with FrameStore(data) as store:
            assert store.ids() == ids and size == store.total_bytes > 0
            for a, b in zip(frames, store.iter_frames()):
                np.testing.assert_array_equal(a, b)
    finally:
        stop_server(proc)


def test_fallback_local_finishes_the_video_without_the_edge(tmp_path, capsys):
    src, style = _clip(tmp_path)
    out = tmp_path / "out.mp4"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code = main(["stylize", *GUIDED, str(src), "--style", str(style), "-o", str(out), "--edge", url, "-q",
                 "--fallback", "local", "--model", "classic"])
    assert code == 0 and out.exists()
    err = capsys.readouterr().err
    assert "unreachable" in err and "--fallback local" in err
    assert main(["stylize", *GUIDED, str(src), "--style", str(style), "-o", str(out), "--contribute"]) == 2
    assert "need --edge" in capsys.readouterr().err


def test_serve_refuses_bad_options_with_one_line(tmp_path, capsys):
    bad_tokens = tmp_path / "tokens"
    bad_tokens.write_text("short\n")
    bad_tokens.chmod(0o600)
    foreign_token = tmp_path / "foreign"  # could never authenticate: headers arrive as latin-1
    foreign_token.write_text("phone3 t\u00f6kenABCDEFGH12345678xyzQ\n", encoding="utf-8")
    foreign_token.chmod(0o600)
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    for extra, fragment in ((["--models", "nope"], "unknown model"),
                            (["--ssl-keyfile", str(tmp_path / "k.pem")], "both --ssl-keyfile"),
                            (["--ssl-keyfile", str(tmp_path / "k.pem"), "--ssl-certfile", str(tmp_path / "c.pem")],
                             "does not exist"),
                            (["--token-file", str(bad_tokens)], "shorter than"),
                            (["--token-file", str(foreign_token)], "not printable ASCII"),
                            (["--host", "edge..lan"], "not a valid host name"),
                            (["--rate", "1e308"], "--rate must be from"), (["--rate", "5e-324"], "--rate must be from"),
                            (["--data-dir", str(not_dir)], "not a folder")):
        assert main(["edge", "serve", "--port", "0", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and fragment in err and "\n" not in err, err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_tls_with_uvicorn_ssl_options(tmp_path, capsys):
    from mvstylizer.mobile.http_edge import HttpEdge

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    url, proc = start_server("--ssl-keyfile", str(key), "--ssl-certfile", str(cert), scheme="https",
                              verify=ssl.create_default_context(cafile=str(cert)))
    try:
        with HttpEdge(url, verify=str(cert)) as link:
            assert any(m["name"] == "mk" for m in link.models())
        with HttpEdge(url, retries=0) as link:  # the system CAs do not trust a self-signed edge
            with pytest.raises(UserError, match="certificate verify failed"):
                link.models()
        # A certificate failure is not "unreachable": --fallback local must not hide it (issue 14, 7k).
        src, style = _clip(tmp_path)
        code = main(["stylize", *GUIDED, str(src), "--style", str(style), "-o", str(tmp_path / "out.mp4"), "-q",
                     "--edge", url, "--fallback", "local", "--model", "classic"])
        err = capsys.readouterr().err
        assert code == 2 and "certificate verify failed" in err and "--fallback local" not in err, err
        assert not (tmp_path / "out.mp4").exists()
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https", "http") + "/v1/health", timeout=5)
    finally:
        stop_server(proc)


@pytest.mark.parametrize("flags", [["--port", "70000"], ["--port", "-1"], ["--rate", "inf"], ["--rate", "nan"],
                                   ["--memory-budget", "1e309"], ["--memory-budget", "inf"]],
                         ids=" ".join)
def test_edge_serve_refuses_bad_numbers_in_one_line(capsys, flags):
    try:  # nan and inf are refused by the option's parser, the rest before the server is configured
        code = main(["edge", "serve", *flags])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "internal error" not in err and "Traceback" not in err
    assert flags[0] in err  # the option the user gave, not a config field ("ServerConfig.port")


def test_an_unexpected_server_error_logs_its_traceback(capsys):
    """The edge's log is the operator's only view of a 500: the exception's type and traceback go there."""
    import logging

    from mvstylizer.cli.main import _LogLines

    log = logging.getLogger("mvstylizer.test_log_lines")
    log.addHandler(handler := _LogLines())
    try:
        try:
            raise ValueError("images must be at least 8x8 pixels")
        except ValueError:
            log.exception("unexpected error in stylize")
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert "error: unexpected error in stylize" in err and "ValueError: images must be at least 8x8" in err
