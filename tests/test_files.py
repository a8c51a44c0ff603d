"""Atomic outputs: any name a file may have works, and a name no file may have is refused before any work."""

from __future__ import annotations

import os
import stat

import pytest

from mvstylizer.errors import UserError
from mvstylizer.files import atomic_path, atomic_write_bytes, check_overwrite

NAME_MAX = 255  # ext4, tmpfs, XFS, Btrfs


def name_of(size: int, suffix: str = ".mp4", char: str = "a") -> str:
    """A file name of exactly ``size`` bytes (UTF-8), ``char`` repeated then ``suffix``."""
    room = size - len(suffix.encode())
    width = len(char.encode())
    return char * (room // width) + "b" * (room % width) + suffix


@pytest.mark.parametrize("char", ["a", "é", "日"])
def test_a_name_of_the_longest_length_is_written(tmp_path, char):
    # The temporary name is cut short to fit (by whole characters); the target keeps its own name.
    name = name_of(NAME_MAX, char=char)
    assert len(os.fsencode(name)) == NAME_MAX
    with atomic_path(tmp_path / name) as tmp:
        assert tmp.suffix == ".mp4" and tmp.name.startswith(".") and len(os.fsencode(tmp.name)) <= NAME_MAX
        tmp.write_bytes(b"data")
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_bytes() == b"data"


def test_a_name_too_long_for_any_file_is_refused_before_any_work(tmp_path):
    name = name_of(NAME_MAX + 1)
    with pytest.raises(UserError, match="too long"):
        check_overwrite(tmp_path / name, overwrite=True)
    with pytest.raises(UserError, match="too long"):
        atomic_write_bytes(tmp_path / name, b"data")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# symbolic links
# ---------------------------------------------------------------------------------------------


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "real.mp4").write_bytes(b"old")
    (tmp_path / "link.mp4").symlink_to("real.mp4")
    atomic_write_bytes(tmp_path / "link.mp4", b"new")
    assert (tmp_path / "link.mp4").is_symlink() and os.readlink(tmp_path / "link.mp4") == "real.mp4"
    assert (tmp_path / "real.mp4").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.mp4", "real.mp4"]


def test_a_dangling_symlink_is_not_replaced_without_overwrite(tmp_path):
    (tmp_path / "link.mp4").symlink_to("gone.mp4")
    with pytest.raises(UserError, match="already exists"):
        check_overwrite(tmp_path / "link.mp4", overwrite=False)
    check_overwrite(tmp_path / "link.mp4", overwrite=True)
    atomic_write_bytes(tmp_path / "link.mp4", b"new")
    assert (tmp_path / "link.mp4").is_symlink() and (tmp_path / "gone.mp4").read_bytes() == b"new"


# ---------------------------------------------------------------------------------------------
# targets that are not files
# ---------------------------------------------------------------------------------------------


def test_a_pipe_or_device_is_never_replaced_by_a_file(tmp_path):
    # The new file is renamed over its target: `--report /dev/null` run as root replaced the system's
    # /dev/null with a JSON file, and a named pipe its reader waited on became a plain file.
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(fifo)
    for target in (fifo, link):
        with pytest.raises(UserError, match="is a pipe, not a file"):
            check_overwrite(target, overwrite=True)
        with pytest.raises(UserError, match="is a pipe, not a file"):
            atomic_write_bytes(target, b"data")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "report.json"]


def test_a_folder_that_refuses_new_files_is_found_out_before_any_work(tmp_path):
    # os.access() answers from the permission bits, which root passes everywhere: /sys let a report be
    # planned there, and the run failed only at its end.
    from mvstylizer.files import check_writable_folder

    if os.geteuid() != 0 or not os.path.isdir("/sys/kernel"):
        pytest.skip("needs root and sysfs: the folder whose permission bits root passes but which refuses files")
    with pytest.raises(UserError, match="report folder is not writable: /sys/kernel"):
        check_writable_folder("/sys/kernel", "report")
    check_writable_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind


def test_a_path_longer_than_the_system_takes_is_refused_before_any_work(tmp_path):
    # Each name fits, the whole does not (PATH_MAX): Path.is_dir() itself raised ENAMETOOLONG, an
    # internal error, before the name checks had a say.
    path = tmp_path.joinpath(*(["d"] * 3000), "out.mp4")
    with pytest.raises(UserError, match=r"output path is too long \(\d+ bytes; at most \d+\)"):
        check_overwrite(path, overwrite=True)
    with pytest.raises(UserError, match="output path is too long"):
        atomic_write_bytes(path, b"data")


def test_a_file_that_appears_during_a_run_without_overwrite_is_not_replaced(tmp_path):
    # check_overwrite found the name free at the start; another run wrote it meanwhile. The rename
    # replaced it silently: the second of two runs to one name without -y won.
    from mvstylizer.files import keep_existing

    out = tmp_path / "out.mp4"
    with keep_existing(out):
        with pytest.raises(UserError, match="appeared while this ran"):
            with atomic_path(out) as tmp:
                tmp.write_bytes(b"ours")
                out.write_bytes(b"theirs")
        atomic_write_bytes(tmp_path / "other.mp4", b"a name nobody else wrote")
    assert out.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mp4", "out.mp4"]
    atomic_write_bytes(out, b"ours")  # outside the block (-y): replaced as usual
    assert out.read_bytes() == b"ours"


def test_two_guards_on_one_name_in_one_process_hold_until_both_end(tmp_path):
    """Two runs without -y writing one free name: the first to finish must not lift the second's guard."""
    from mvstylizer.files import keep_existing

    out = tmp_path / "out.mp4"
    with keep_existing(out):
        with keep_existing(out):
            atomic_write_bytes(out, b"first run")
        with pytest.raises(UserError, match="appeared while this ran"):
            atomic_write_bytes(out, b"second run")
    assert out.read_bytes() == b"first run"
