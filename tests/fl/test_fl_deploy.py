"""Deployment on loopback: `mvstylizer cloud serve` (SuperLink + ServerApp) and two `mvstylizer edge
fl-join` SuperNodes as separate processes, two small rounds. Every process started here is stopped
by PID (its process group) at the end, whatever happens."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")
pytestmark = pytest.mark.network


torch = pytest.importorskip("torch")

from helpers import texture, to8  # noqa: E402
from edge_server import free_port  # noqa: E402


def _edge_dir(root: Path, seed: int) -> Path:
    from mvstylizer.edge.store import FrameStore

    with FrameStore(root) as store:
        for i in range(4):
            store.add(to8(texture(40, 56, seed=seed * 10 + i)))
    return root


def _kill_group(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _pids(log: Path, pattern: str) -> list[int]:
    return [int(m) for m in re.findall(pattern, log.read_text(errors="replace"))] if log.is_file() else []


@pytest.mark.slow
def test_superlink_and_two_supernodes_run_two_rounds(tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", FLWR_TELEMETRY_ENABLED="0")
    cli = [sys.executable, "-m", "mvstylizer.cli"]
    logs = {name: tmp_path / f"{name}.log" for name in ("cloud", "edge0", "edge1")}
    procs: list[subprocess.Popen] = []
    edges = [_edge_dir(tmp_path / f"edge{i}", seed=i) for i in range(2)]
    try:
        with open(logs["cloud"], "wb") as out:
            cloud = subprocess.Popen(
                [*cli, "cloud", "serve", "--port", str(port), "--state-dir", str(tmp_path / "cloud"), "--rounds", "2",
                 "--min-edges", "2", "--local-steps", "1", "--batch", "2", "--size", "32", "--round-timeout", "150"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        procs.append(cloud)
        for i, d in enumerate(edges):
            with open(logs[f"edge{i}"], "wb") as out:
                procs.append(subprocess.Popen(
                    [*cli, "edge", "fl-join", "--superlink", f"127.0.0.1:{port}", "--data-dir", str(d),
                     "--port", str(free_port())],
                    stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        try:
            rc = cloud.wait(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail("the federation did not finish in 240 s:\n" + logs["cloud"].read_text()[-3000:])
        assert rc == 0, logs["cloud"].read_text()[-3000:]
        text = logs["cloud"].read_text()
        assert "round 2 stored" in text and "finished:completed" in text
        rounds = sorted(p.name for p in (tmp_path / "cloud" / "registry" / "rounds").iterdir())
        assert rounds == ["000000", "000001", "000002"]
        for d in edges:  # each edge got the final global model for its edge server
            meta = torch.load(d / "models" / "dncm.pt", map_location="cpu", weights_only=False)["meta"]
            assert meta["fl_round"] == 2
    finally:
        # Our commands first (they stop their own Flower children on SIGTERM), then any Flower
        # process they reported, by its PID (= its process group), in case one was left behind.
        for p in procs:
            _kill_group(p.pid)
            p.wait(timeout=30)
        flower = _pids(logs["cloud"], r"SuperLink on \S+ \(pid (\d+)") + \
            _pids(logs["edge0"], r"flower-supernode \(pid (\d+)\)") + _pids(logs["edge1"], r"flower-supernode \(pid (\d+)\)")
        for pid in flower:
            _kill_group(pid)
        for pid in flower:
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)


def test_cloud_serve_refuses_a_port_in_use(tmp_path, capsys):
    # Before, the SuperLink failed to bind, the listener already there answered the readiness check,
    # and the run failed later with Flower's "SuperLink unavailable".
    import socket

    from mvstylizer.cli import main

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert main(["cloud", "serve", "--host", "127.0.0.1", "--port", str(port), "--state-dir",
                     str(tmp_path / "state")]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
