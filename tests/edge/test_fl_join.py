"""`mvstylizer edge fl-join`: input Flower would only fail on (or retry forever) is refused first, as one
line, and a SuperLink that never answers ends the SuperNode instead of holding the edge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import texture, to8

from mvstylizer.cli import main
from mvstylizer.edge import fl_join
from mvstylizer.edge.fl_join import JoinConfig, check_store, supernode_command
from mvstylizer.errors import UserError


def _store(root: Path, frames: int) -> Path:
    from mvstylizer.edge.store import FrameStore

    with FrameStore(root) as store:
        for i in range(frames):
            store.add(to8(texture(24, 32, seed=i)))
    return root


@pytest.fixture
def no_flower(monkeypatch):
    """Flower must never start in these tests: a Popen here is a failure."""
    def popen(*args, **kwargs):
        raise AssertionError(f"flower-supernode started: {args[0]}")

    monkeypatch.setattr(fl_join.subprocess, "Popen", popen)


@pytest.mark.parametrize("superlink", [
    "host with spaces:9092", "host:²", "host:٩٠٩٢", "host:", ":9092", "host:0", "host:65536", "nohost",
    "-lead.example:9092", "a..b:9092", "::1:9092", "[::1:9092", "[not-v6]:9092", "hóst:9092", "x" * 64 + ":1",
])
def test_a_superlink_flower_could_never_reach_is_refused(tmp_path, superlink):
    _store(tmp_path, 2)
    with pytest.raises(UserError, match="--superlink"):
        JoinConfig(superlink=superlink, data_dir=tmp_path)


@pytest.mark.parametrize("superlink, says", [
    ("[::1", "an IPv6 address goes in brackets"),  # was "host '[:'"
    ("http://127.0.0.1:9092", "without a scheme"),  # was the IPv6 hint
])
def test_a_half_bracketed_or_url_superlink_is_named_for_what_it_is(tmp_path, superlink, says):
    _store(tmp_path, 2)
    with pytest.raises(UserError, match=says):
        JoinConfig(superlink=superlink, data_dir=tmp_path)


@pytest.mark.parametrize("superlink", [
    "127.0.0.1:9092", "cloud.example.org:9092", "[::1]:9092", "[fe80::1]:1", "localhost.:65535", "fl_cloud:9092",
])
def test_names_and_addresses_flower_takes_are_accepted(tmp_path, superlink):
    from flwr.supercore.address import parse_address

    _store(tmp_path, 2)
    cmd = supernode_command(JoinConfig(superlink=superlink, data_dir=tmp_path))
    assert parse_address(cmd[cmd.index("--superlink") + 1]) is not None


@pytest.mark.parametrize("superlink", ["host with spaces:9092", "host:²"])
def test_cli_refuses_a_bad_superlink_in_one_line(tmp_path, capsys, no_flower, superlink):
    _store(tmp_path, 2)
    assert main(["edge", "fl-join", "--superlink", superlink, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --superlink") and err.count("\n") == 1


@pytest.mark.parametrize("name", ["ctl\x01char", "bell\x07", "tab\tname", "del\x7f", "c1\x85next"])
def test_a_folder_name_with_a_control_character_is_refused(tmp_path, capsys, no_flower, name):
    store = _store(tmp_path / name, 2)
    assert main(["edge", "fl-join", "--superlink", "127.0.0.1:9092", "--data-dir", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data-dir") and "control character" in err and err.count("\n") == 1


@pytest.mark.parametrize("frames", [0, 1])
def test_a_store_with_too_few_frames_is_refused_before_flower_starts(tmp_path, capsys, no_flower, frames):
    store = _store(tmp_path / "edge", frames)
    assert main(["edge", "fl-join", "--superlink", "127.0.0.1:9092", "--data-dir", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --data-dir {store} has {frames} stored frame(s)") and err.count("\n") == 1


def test_frames_whose_files_are_gone_do_not_count(tmp_path, no_flower):
    store = _store(tmp_path / "edge", 2)
    next((store / "frames").iterdir()).unlink()
    with pytest.raises(UserError, match="has 1 stored frame"):
        check_store(JoinConfig(superlink="127.0.0.1:9092", data_dir=store))


def test_frames_whose_files_do_not_decode_do_not_count(tmp_path, no_flower):
    """Damaged files passed this check, and the ClientApp then failed inside Flower with a traceback."""
    store = _store(tmp_path / "edge", 3)
    for f in list((store / "frames").iterdir())[:2]:
        f.write_bytes(b"garbage")
    with pytest.raises(UserError, match="has 1 stored frame"):
        check_store(JoinConfig(superlink="127.0.0.1:9092", data_dir=store))


@pytest.mark.parametrize("index", [b"", b"garbage!", b"SQLite format 3\x00" + b"\xff" * 200])
def test_an_index_that_is_not_a_frame_store_is_refused_and_left_as_it_was(tmp_path, capsys, no_flower, index):
    (tmp_path / "index.sqlite").write_bytes(index)
    assert main(["edge", "fl-join", "--superlink", "127.0.0.1:9092", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data-dir") and "not a readable frame store" in err and err.count("\n") == 1
    assert (tmp_path / "index.sqlite").read_bytes() == index  # opened read-only: never written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.sqlite"]


def test_a_usable_store_starts_flower_with_bounded_retries(tmp_path, monkeypatch):
    store = _store(tmp_path / "edge", 2)
    started = []

    class Done:
        pid = 1

        def __init__(self, cmd, **kwargs):
            started.append(cmd)

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(fl_join.subprocess, "Popen", Done)
    assert fl_join.join(JoinConfig(superlink="127.0.0.1:9092", data_dir=store, max_wait=30)) == 0
    (cmd,) = started
    assert cmd[cmd.index("--max-wait-time") + 1] == "30"
    with pytest.raises(UserError, match="seconds > 0"):
        JoinConfig(superlink="127.0.0.1:9092", data_dir=store, max_wait=float("inf"))


@pytest.mark.slow
def test_a_superlink_that_never_answers_ends_the_supernode(tmp_path):
    """Flower's own retries are bounded: the SuperNode gives up and fl-join says so (exit non-zero)."""
    from edge_server import free_port

    store = _store(tmp_path / "edge", 2)
    code = ("import sys; from mvstylizer.edge.fl_join import JoinConfig, join; "
            f"sys.exit(join(JoinConfig(superlink='127.0.0.1:{free_port()}', data_dir={str(store)!r}, "
            f"port={free_port()}, max_wait=2)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          start_new_session=True)
    assert done.returncode != 0
    assert "error: flower-supernode exited with status" in done.stderr


def test_cli_max_wait_reaches_flower(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(fl_join, "join", lambda cfg: seen.append(cfg) or 0)
    store = _store(tmp_path / "edge", 2)
    assert main(["edge", "fl-join", "--superlink", "127.0.0.1:9092", "--data-dir", str(store), "--max-wait", "30"]) == 0
    assert seen[0].max_wait == 30 and "--max-wait-time" in supernode_command(seen[0])
    assert supernode_command(seen[0])[supernode_command(seen[0]).index("--max-wait-time") + 1] == "30"
