"""The edge's opt-in frame store: dedupe, quota, crash consistency, threads and a second process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mvstylizer.edge.store import FrameStore, frame_id


def _frame(seed: int, h: int = 12, w: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _files(root: Path) -> set[str]:
    return {p.name[:-4] for p in (root / "frames").iterdir() if not p.name.startswith(".")}


def test_add_load_dedupe_and_order(tmp_path):
    with FrameStore(tmp_path) as store:
        a, b = _frame(1), _frame(2, 8, 8)
        ia, ib = store.add(a, "phone1"), store.add(b)
        assert ia == frame_id(a) and len(ia) == 64 and ia != ib
        assert store.add(a.copy(), "phone2") == ia  # same pixels: not stored twice
        assert len(store) == 2 and store.ids() == [ia, ib]
        assert ia in store and "nope" not in store
        np.testing.assert_array_equal(store.load(ia), a)
        assert store.load(ib).dtype == np.uint8 and store.load(ib).shape == (8, 8, 3)
        assert [f.shape for f in store.iter_frames()] == [a.shape, b.shape]
        assert store.total_bytes == sum(p.stat().st_size for p in (tmp_path / "frames").iterdir()) > 0
        assert _files(tmp_path) == {ia, ib}
    # Same shape, same bytes reshaped differently: a different frame, a different id.
    assert frame_id(np.zeros((2, 6, 3), np.uint8)) != frame_id(np.zeros((6, 2, 3), np.uint8))


def test_bad_frames_and_ids_are_refused(tmp_path):
    store = FrameStore(tmp_path)
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError):
            store.add(bad)
    for bad_id in ("../index.sqlite", "0" * 63, "g" * 64, "", None):
        with pytest.raises(KeyError):
            store.load(bad_id)
    with pytest.raises(KeyError):
        store.load("0" * 64)
    assert len(store) == 0
    store.close()


def test_quota_evicts_oldest_first(tmp_path):
    frames = [_frame(10 + i, 32, 32) for i in range(6)]  # random pixels: PNG sizes all about 3.1 KB
    with FrameStore(tmp_path / "probe") as probe:
        probe.add(frames[0])
        size = probe.total_bytes
    with FrameStore(tmp_path / "s", quota_bytes=3 * size + size // 2) as store:
        ids = [store.add(f) for f in frames]
        assert store.total_bytes <= store.quota_bytes
        kept = store.ids()
        assert kept == ids[-len(kept):] and 2 <= len(kept) <= 3  # the newest survive, in order
        assert _files(tmp_path / "s") == set(kept)
    last = (tmp_path / "s" / "frames" / f"{ids[-1]}.png").stat().st_size
    with FrameStore(tmp_path / "s", quota_bytes=last) as store:  # a smaller quota applies on reopen
        assert store.ids() == ids[-1:]
        assert _files(tmp_path / "s") == set(ids[-1:])


def test_reopen_reconciles_orphans_and_missing_files(tmp_path):
    with FrameStore(tmp_path) as store:
        ids = [store.add(_frame(i)) for i in range(4)]
    frames_dir = tmp_path / "frames"
    (frames_dir / f"{ids[1]}.png").unlink()  # index row whose file is gone (crash during eviction)
    orphan = "ab" * 32
    (frames_dir / f"{orphan}.png").write_bytes(b"renamed but never committed")
    old_temp, new_temp = frames_dir / ".tmp-old.png", frames_dir / ".tmp-new.png"
    old_temp.write_bytes(b"x")
    new_temp.write_bytes(b"y")
    past = time.time() - 3600
    os.utime(old_temp, (past, past))
    with FrameStore(tmp_path) as store:
        assert store.ids() == [ids[0], ids[2], ids[3]]
        assert all(store.load(i).shape == (12, 16, 3) for i in store.ids())
        assert _files(tmp_path) == set(store.ids())
        assert not old_temp.exists() and new_temp.exists()  # a young temp file may be another writer's


def test_failed_commit_leaves_no_row_and_no_file(tmp_path, monkeypatch):
    store = FrameStore(tmp_path)
    store.add(_frame(1))

    reserve = store._evict_locked

    def broken_evict(client=None, incoming=0) -> None:
        if incoming:  # making room before the temp file is written: fine
            return reserve(client, incoming)
        raise sqlite3.OperationalError("disk I/O error")  # the eviction inside the insert's transaction

    monkeypatch.setattr(store, "_evict_locked", broken_evict)
    with pytest.raises(sqlite3.OperationalError):
        store.add(_frame(2))
    monkeypatch.undo()
    assert len(store) == 1
    store.close()
    with FrameStore(tmp_path) as again:  # the renamed file of the rolled-back add is an orphan: removed
        assert len(again) == 1 and _files(tmp_path) == set(again.ids())


def test_threads_add_concurrently(tmp_path):
    store = FrameStore(tmp_path)
    frames = [_frame(i, 6, 6) for i in range(20)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(len(frames)):
                store.add(frames[(i + offset) % len(frames)], f"t{offset}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k * 5,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store) == 20 and set(store.ids()) == {frame_id(f) for f in frames}
    assert _files(tmp_path) == set(store.ids())
    store.close()


_WRITER = r"""
import sys, numpy as np
from pathlib import Path
from mvstylizer.edge.store import FrameStore
store = FrameStore(Path(sys.argv[1]), quota_bytes=int(sys.argv[2]))
print("ready", flush=True)
i = 0
while True:  # until killed
    store.add(np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8), "writer")
    i += 1
"""


def test_killed_writer_leaves_a_consistent_store_and_a_reader_can_follow(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(40 * 2000)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        reader = FrameStore(tmp_path)  # a second process's view (as the FL client has)
        seen = 0
        deadline = time.monotonic() + 20
        while seen < 30 and time.monotonic() < deadline:
            for frame in reader.iter_frames():  # frames evicted meanwhile are skipped, never half-read
                assert frame.shape == (24, 24, 3) and frame.dtype == np.uint8
            seen = len(reader)
            time.sleep(0.05)
        assert seen > 0
        reader.close()
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash at an arbitrary point of add()
        proc.wait(10)
    with FrameStore(tmp_path, quota_bytes=40 * 2000) as store:
        ids = store.ids()
        assert ids and _files(tmp_path) == set(ids)
        for fid, frame in zip(ids, store.iter_frames(), strict=True):
            assert frame_id(frame) == fid  # every file holds exactly the pixels its id names
        assert store.total_bytes <= store.quota_bytes


# ---------------------------------------------------------------- issue 14 item 6: faults degrade, never stop


def test_per_client_quota_keeps_other_clients_frames(tmp_path):
    frames = [_frame(50 + i, 32, 32) for i in range(8)]
    with FrameStore(tmp_path / "probe") as probe:
        probe.add(frames[0])
        size = probe.total_bytes
    with FrameStore(tmp_path / "s", quota_bytes=6 * size, client_quota_bytes=2 * size + size // 2) as store:
        victim = store.add(_frame(99, 32, 32), "victim")
        flood = [store.add(f, "flooder") for f in frames]
        assert victim in store  # the flooder evicted only its own frames
        assert [i for i in store.ids() if i != victim] == flood[-2:]
        assert store.total_bytes <= store.quota_bytes


def test_oversize_frame_and_full_disk_are_refused_not_counted(tmp_path):
    from mvstylizer.edge.store import StoreFull

    with FrameStore(tmp_path / "a", quota_bytes=10_000, client_quota_bytes=1000) as store:
        keep = store.add(_frame(1, 8, 8), "c")
        with pytest.raises(StoreFull, match="per-client quota"):
            store.add(_frame(2, 64, 64), "c")  # ~12 KB of noise: larger than the quota on its own
        assert store.ids() == [keep]  # it did not evict anything, itself included
    with FrameStore(tmp_path / "b", min_free_bytes=1 << 62) as store:
        with pytest.raises(StoreFull, match="free on the disk"):
            store.add(_frame(3))
        assert len(store) == 0 and not any((tmp_path / "b" / "frames").iterdir())


def test_reconcile_never_deletes_foreign_files_and_cleans_dead_writers_temps(tmp_path):
    with FrameStore(tmp_path) as store:
        store.add(_frame(1))
    frames_dir = tmp_path / "frames"
    foreign = [frames_dir / "notes.txt", frames_dir / "holiday.png", frames_dir / ("AB" * 32 + ".png")]
    for p in foreign:
        p.write_bytes(b"the operator's")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    dead_temp = frames_dir / f".tmp-{dead}-{'0' * 32}.png"
    live_temp = frames_dir / f".tmp-1-{'1' * 32}.png"  # pid 1 is alive: another writer's
    mine = frames_dir / f".tmp-{os.getpid()}-{'2' * 32}.png"
    # A writer in another PID namespace looks dead from here: its fresh temp file must survive.
    fresh_dead = frames_dir / f".tmp-{dead}-{'3' * 32}.png"
    for p in (dead_temp, live_temp, mine, fresh_dead):
        p.write_bytes(b"t")
    minute_ago = time.time() - 120
    for p in (dead_temp, mine):
        os.utime(p, (minute_ago, minute_ago))
    # Not a name the store writes (the operator's), and a pid no kill() takes (an old temp name: deleted,
    # where it once stopped the store from opening).
    odd = [frames_dir / ".tmp-notes.txt"]
    huge_pid = frames_dir / f".tmp-{'9' * 20}-ab.png"
    for p in [*odd, huge_pid]:
        p.write_bytes(b"x")
        os.utime(p, (0, 0))
    (frames_dir / f".tmp-{dead}-{'4' * 32}.png").mkdir()  # a folder with a temp file's name
    with FrameStore(tmp_path) as store:
        assert len(store) == 1
    assert all(p.exists() for p in foreign + odd) and not huge_pid.exists()
    assert not dead_temp.exists() and not mine.exists() and live_temp.exists() and fresh_dead.exists()


def test_a_read_only_store_never_evicts_or_deletes(tmp_path):
    with FrameStore(tmp_path, quota_bytes=1 << 30) as store:
        ids = [store.add(_frame(i, 32, 32)) for i in range(4)]
    orphan = tmp_path / "frames" / ("ab" * 32 + ".png")  # a file the index does not know
    orphan.write_bytes(b"x")
    with FrameStore(tmp_path, quota_bytes=1, read_only=True) as reader:  # a quota it does not own
        assert sorted(reader.ids()) == sorted(ids)
        with pytest.raises(RuntimeError, match="read-only"):
            reader.add(_frame(9))
    assert orphan.exists()


def test_the_fl_client_skips_frames_the_server_evicted_while_it_read(tmp_path, monkeypatch):
    from mvstylizer.edge.fl_client import store_frames

    with FrameStore(tmp_path) as store:
        ids = [store.add(_frame(i, 32, 32)) for i in range(6)]
    load = FrameStore.load

    def evicted_meanwhile(self, fid):
        if fid == ids[2]:  # listed by ids(), gone by the time it is read
            raise KeyError(fid)
        return load(self, fid)

    monkeypatch.setattr(FrameStore, "load", evicted_meanwhile)
    frames = store_frames(tmp_path)
    assert len(frames.train) + len(frames.held_out) == 5


def test_one_oversize_frame_does_not_stop_the_rest_of_its_batch(tmp_path):
    from types import SimpleNamespace

    from mvstylizer.edge.server.jobs import collect

    class _Counter:
        def inc(self, n: int = 1) -> None: ...

        def set(self, v: float) -> None: ...

    with FrameStore(tmp_path, quota_bytes=100_000, client_quota_bytes=2000) as store:
        rt = SimpleNamespace(store=store, metrics=SimpleNamespace(frames_kept=_Counter(), store_bytes=_Counter()))
        small = [_frame(i, 8, 8).astype(np.float32) / 255 for i in range(3)]
        big = _frame(9, 64, 64).astype(np.float32) / 255  # noise: over the client's quota on its own
        assert collect(rt, [small[0], big, small[1], small[2]], "c") == 3
