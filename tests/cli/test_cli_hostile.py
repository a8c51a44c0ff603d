"""The command line under hostile conditions: signals at awkward moments, closed or narrow standard
streams, outputs that cannot be written, options that read too much."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=60, **kwargs)


def test_ctrl_c_while_the_commands_are_imported_is_one_line_and_130():
    # Importing the command groups (numpy, OpenCV, the registries) takes most of a second after the
    # console script starts; a Ctrl-C then printed a traceback of the import machinery. The finder
    # below raises KeyboardInterrupt exactly where the SIGINT used to land.
    result = _python("""
        import sys

        class CtrlC:
            def find_spec(self, name, path=None, target=None):
                if name == "mvstylizer.cli.stylize":
                    raise KeyboardInterrupt
                return None

        sys.meta_path.insert(0, CtrlC())
        from mvstylizer.cli import main  # the console script's first line
        sys.exit(main(["models"]))
        """)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "interrupted"


def test_sigterm_is_not_swallowed_by_code_that_catches_exception(monkeypatch):
    # tqdm wraps the start of its monitor thread in `except Exception`: a SIGTERM landing there was
    # dropped with a warning and the video was finished and written, exit 0.
    import os
    import signal
    import time

    from mvstylizer.cli import main
    from mvstylizer.cli import stylize as group

    def swallowing(_args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler runs here
        except Exception:  # noqa: BLE001 - what the library code on the way does
            pass
        print("finished anyway")
        return 0

    monkeypatch.setattr(group, "_models", swallowing)
    assert main(["models"]) == 143


def _closed(*fds: int):
    """A preexec_fn: the child starts with these descriptors closed, as after `>&-` or `2>&-`."""
    import os

    def close() -> None:
        for fd in fds:
            os.close(fd)

    return close


def _cli(args: list[str], close: tuple[int, ...], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvstylizer.cli", *args], cwd=cwd, timeout=60,
                          preexec_fn=_closed(*close),
                          stdout=None if 1 in close else subprocess.PIPE,
                          stderr=None if 2 in close else subprocess.PIPE, text=True)


def test_closed_stdout_is_one_error_line_not_an_internal_error(tmp_path):
    result = _cli(["models"], (1,), tmp_path)  # before: AttributeError on None, exit 70
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cannot write output: standard output is closed"


def test_closed_stdout_is_no_error_when_nothing_is_printed(tmp_path, clip, style):
    out = tmp_path / "out.mp4"
    result = _cli(["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q"], (1,),
                  tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_closed_stderr_keeps_the_exit_code_and_stdout_clean(tmp_path, clip, style):
    # Before: `sys.stderr.isatty()` on None was an internal error (70), printed on stdout.
    result = _cli(["stylize", str(clip), "--style", str(style), "-o", str(tmp_path / "o.mp4"), "--strength", "3"],
                  (2,), tmp_path)
    assert (result.returncode, result.stdout) == (2, "")


def test_a_closed_descriptor_is_not_reused_by_the_files_the_command_opens(tmp_path):
    # With fd 2 closed, the first file opened took number 2: a C library's message to stderr would
    # have been written into it.
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        from mvstylizer.cli import main
        code = main(["models"])
        print(code, os.path.realpath("/proc/self/fd/2"))
        """)], stdout=subprocess.PIPE, text=True, timeout=60, preexec_fn=_closed(2))
    assert result.stdout.split()[-2:] == ["0", "/dev/null"]


def test_a_report_link_into_a_missing_folder_is_refused_before_the_run(tmp_path, clip, style, capsys):
    # The report is written through a link; its target's folder was not checked, so the whole video
    # was stylized first and then: "wrote out.mp4, but not the report".
    from mvstylizer.cli import main

    report = tmp_path / "run.json"
    report.symlink_to(tmp_path / "missing" / "run.json")
    out = tmp_path / "out.mp4"
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q",
                 "--report", str(report)]) == 2
    assert "report folder does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_a_name_stdout_cannot_encode_is_escaped_not_an_internal_error(tmp_path, clip, style):
    # An ASCII (or any non-UTF-8) locale, or a name whose bytes are not UTF-8: the summary line's
    # UnicodeEncodeError came after the video was written, as "internal error", exit 70.
    import os

    out = tmp_path / "vidéo 日本.mp4"
    result = subprocess.run([sys.executable, "-m", "mvstylizer.cli", "stylize", str(clip), "--style", str(style),
                             "-o", str(out), "--model", "reinhard"], capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("ascii").startswith(f"wrote {tmp_path}/vid\\xe9o \\u65e5\\u672c.mp4: 16 frames")
    assert out.is_file()


def test_a_bench_json_that_cannot_be_written_at_the_end_keeps_the_results(tmp_path, clip, capsys, monkeypatch):
    # The JSON's folder removed (or the disk filled) during a long benchmark: the write failed with an
    # internal error (FileNotFoundError, 70) and the results were never printed.
    import mvstylizer.bench.phone as phone
    from mvstylizer.cli import main

    folder = tmp_path / "results"
    folder.mkdir()

    class Report:
        def as_dict(self) -> dict:
            return {"ms_per_frame": 1.0}

        def markdown(self) -> str:
            return "| the results |"

    def run_phone(config, log):
        folder.rmdir()
        return Report()

    monkeypatch.setattr(phone, "run_phone", run_phone)
    code = main(["bench", "phone", str(clip), "--frames", "4", "--json", str(folder / "phone.json")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "| the results |\n"
    assert err.startswith("error: printed the results, but cannot write ") and "internal" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_negative_bench_seed_is_refused_by_the_option(tmp_path, capsys):
    # numpy's generator refused it once the clip was being made: "internal error: ValueError", exit 70.
    from mvstylizer.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "clips", "--out", str(tmp_path), "--frames", "2", "--resolution", "64x48",
              "--clips", "camera", "--seed", "-1"])
    assert exc.value.code == 2
    assert "argument --seed: expected a whole number >= 0, got '-1'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_edge_token_file_is_read_only_as_far_as_a_token_can_go(tmp_path, clip, style, capsys):
    # The whole file was read: a megabyte of one "word" went to the edge as the token, and /dev/zero
    # was read until the machine ran out of memory.
    from mvstylizer.cli import main

    big = tmp_path / "token"
    big.write_text("a" * (1 << 20))
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(tmp_path / "o.mp4"),
                 "--edge", "http://127.0.0.1:1", "--edge-token-file", str(big)]) == 2
    assert "is larger than 65536 bytes" in capsys.readouterr().err


def test_an_edge_token_file_that_never_ends_is_refused(tmp_path, clip, style):
    import os
    import resource

    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")

    def two_gigabytes() -> None:  # a regression fails here with MemoryError, not by exhausting the machine
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    result = subprocess.run([sys.executable, "-m", "mvstylizer.cli", "stylize", str(clip), "--style", str(style),
                             "-o", str(tmp_path / "o.mp4"), "--edge", "http://127.0.0.1:1",
                             "--edge-token-file", "/dev/zero"], capture_output=True, text=True, timeout=60,
                            preexec_fn=two_gigabytes)
    assert result.returncode == 2 and "is larger than 65536 bytes" in result.stderr, result.stderr


def test_an_ignored_hangup_stays_ignored(monkeypatch):
    # `nohup mvstylizer stylize ... &`: nohup starts it with SIGHUP ignored, and main() replaced that
    # with its own handler, so closing the terminal stopped the run ("stopped by SIGHUP", 143).
    import os
    import signal
    import time

    from mvstylizer.cli import main
    from mvstylizer.cli import stylize as group

    def hung_up(_args) -> int:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.2)
        return 0

    monkeypatch.setattr(group, "_models", hung_up)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert main(["models"]) == 0
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_second_ctrl_c_does_not_cut_the_first_ones_cleanup_short(monkeypatch):
    # Ctrl-C pressed twice: the second KeyboardInterrupt landed in the pipeline's cleanup (joining its
    # worker threads), which it abandoned; the threads ran on into the interpreter's exit and the
    # process died of SIGABRT ("terminate called without an active exception").
    import os
    import signal
    import time

    from mvstylizer.cli import main
    from mvstylizer.cli import stylize as group

    cleaned = []

    def interrupted_twice(_args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)
        finally:  # the run's cleanup
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            cleaned.append(True)
        return 0

    monkeypatch.setattr(group, "_models", interrupted_twice)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert main(["models"]) == 130
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("signame, code, line", [("SIGINT", 130, "interrupted"),
                                                 ("SIGTERM", 143, "stopped by SIGTERM")])
def test_a_stop_that_a_library_turned_into_its_own_error_is_still_the_stop(monkeypatch, capsys, signame, code,
                                                                            line):
    # pydantic-core turns a KeyboardInterrupt raised while it builds a schema into a SchemaError: a
    # Ctrl-C while the studio started was "internal error: SchemaError ... KeyboardInterrupt", 70.
    import os
    import signal
    import time

    from mvstylizer.cli import main
    from mvstylizer.cli import stylize as group

    class SchemaError(Exception):
        pass

    def wrapped(_args) -> int:
        try:
            os.kill(os.getpid(), getattr(signal, signame))
            time.sleep(10)
        except BaseException as exc:  # noqa: BLE001 - what such a library does
            raise SchemaError(f"Error building validator: {exc!r}") from None
        return 0

    monkeypatch.setattr(group, "_models", wrapped)
    assert main(["models"]) == code
    assert capsys.readouterr().err.strip() == line


def test_a_report_that_is_a_pipe_is_refused_before_the_run(tmp_path, clip, style, capsys):
    import os
    import stat

    from mvstylizer.cli import main

    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    out = tmp_path / "out.mp4"
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q",
                 "--report", str(fifo)]) == 2
    assert "is a pipe, not a file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not out.exists()


@pytest.mark.parametrize("case", ["stylize -o", "stylize --report", "export-lut -o"])
def test_a_path_too_long_for_the_system_is_one_error_line(tmp_path, clip, style, capsys, case):
    # "internal error: OSError: [Errno 36] File name too long", exit 70: each name fits, the whole path
    # does not, and the first is_dir() or resolve() on it raised.
    from mvstylizer.cli import main

    long = tmp_path.joinpath(*(["d"] * 3000))
    args = {"stylize -o": ["stylize", str(clip), "--style", str(style), "-o", f"{long}/o.mp4"],
            "stylize --report": ["stylize", str(clip), "--style", str(style), "-o", str(tmp_path / "o.mp4"),
                                 "--report", f"{long}/r.json"],
            "export-lut -o": ["export-lut", "--style", str(style), "-o", f"{long}/look.cube"]}[case]
    assert main([*args, "--model", "reinhard" if case.startswith("stylize") else "dncm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "too long" in err and err.count("\n") == 1 and len(err) < 200


def test_an_error_about_a_name_with_control_characters_stays_one_line(tmp_path, style, capsys):
    # A name holding a newline (or a terminal escape) printed as two lines, or moved the cursor.
    from mvstylizer.cli import main

    missing = tmp_path / "in\n\x1b[2Kfake.mp4"
    assert main(["stylize", str(missing), "--style", str(style), "-o", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "in\\n\\x1b[2Kfake.mp4" in err


def test_every_option_with_a_default_says_it_in_help():
    # Many options (bench edge --phones/--model/--key-size, train --checkpoint-every, edge serve
    # --port, bench sweep --gaps, ...) had a default that --help never showed.
    import argparse

    from mvstylizer.cli import build_parser

    def parsers(p: argparse.ArgumentParser, name: str):
        yield name, p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    yield from parsers(child, f"{name} {sub}")

    every = dict(parsers(build_parser(), "mvstylizer"))
    silent = [f"{name} {action.option_strings[-1]}" for name, p in every.items() for action in p._actions
              if action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
              and "default" not in (action.help or "")]
    assert silent == []
    assert "--phones N [N ...] (default 1 4 16)" in " ".join(every["mvstylizer bench edge"].format_help().split())


def test_two_runs_to_one_output_without_y_do_not_replace_each_other(tmp_path, clip, style, capsys, monkeypatch):
    # Both found the name free at the start; the one that finished second replaced the other's video.
    from mvstylizer.cli import main
    from mvstylizer.mobile import pipeline

    out = tmp_path / "out.mp4"
    run = pipeline.VideoPipeline.run

    def another_run_finishes_first(self, *args, **kwargs):
        out.write_bytes(b"the other run's video")
        return run(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.VideoPipeline, "run", another_run_finishes_first)
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q"]) == 2
    assert "appeared while this ran" in capsys.readouterr().err
    assert out.read_bytes() == b"the other run's video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
