"""Command-line details: --version, overwrite refusal, SIGTERM cleanup, the report's keys and model,
tiny-style warning, logging configuration, `python -m mvstylizer.video.media` without a name."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from mvstylizer import __version__
from mvstylizer.cli import build_parser, main
from mvstylizer.cli.main import _configure_logging
from mvstylizer.bench.synthetic import write_test_clip
from mvstylizer.video.writer import VideoWriter


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"mvstylizer {__version__}"


def test_existing_output_is_refused_unless_overwrite(tmp_path, clip, style, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q", "-y"]) == 0
    assert out.read_bytes() != b"precious"
    cube = tmp_path / "look.cube"
    cube.write_text("x")
    assert main(["export-lut", "--style", str(style), "-o", str(cube)]) == 2
    assert cube.read_text() == "x"


def test_export_lut_says_what_is_wrong_with_its_output_path(tmp_path, style, capsys):
    # A folder or a dangling link named .cube was "already exists; add -y", then, with -y, "cannot
    # write ...: Is a directory"; a file named just ".cube" was "ends in .cube, not .cube".
    folder = tmp_path / "d.cube"
    folder.mkdir()
    link = tmp_path / "link.cube"
    link.symlink_to(tmp_path / "nowhere")
    for output, message in ((folder, "is a folder"), (link, "link to nothing"), (tmp_path / ".cube", "NAME.cube")):
        for extra in ([], ["-y"]):
            assert main(["export-lut", "--style", str(style), "-o", str(output), *extra]) == 2
            err = capsys.readouterr().err
            assert message in err and "-y" not in err, err
    assert main(["export-lut", "--style", str(style), "-o", str(tmp_path / "a.cube"), "--strength", "2"]) == 2
    assert "strength" in capsys.readouterr().err and not (tmp_path / "a.cube").exists()


def test_a_thin_style_warning_names_the_photos_own_size(tmp_path, clip, caplog):
    """The photo is read shrunk to 1024 px; the warning said "is 1024x1" of a 5000x1 photo."""
    thin = tmp_path / "thin.png"
    cv2.imwrite(str(thin), np.random.default_rng(0).integers(0, 255, (1, 5000, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        assert main(["stylize", str(clip), "--style", str(thin), "-o", str(tmp_path / "o.mp4"), "--model",
                     "reinhard", "-q"]) == 0
    assert "style thin.png is 5000x1" in caplog.text

def test_report_lists_each_key_with_its_reason_and_the_model_used(tmp_path, clip, style):
    report = tmp_path / "run.json"
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(tmp_path / "o.mp4"), "--model", "classic",
                 "--keyframes", "every:5", "--report", str(report), "-q"]) == 0
    rep = json.loads(report.read_text())
    assert rep["model"] == "mk:numpy"
    assert [k["index"] for k in rep["keys"]] == rep["key_frames"] == [0, 5, 10, 15]
    assert [k["reason"] for k in rep["keys"]] == ["first", "stride", "stride", "stride"]
    assert sum(rep["key_reasons"].values()) == rep["key_count"]


def test_max_gap_caps_a_fixed_stride_only_when_given(tmp_path, clip, style, caplog):
    def keys(*extra: str) -> list[int]:
        report = tmp_path / "run.json"
        assert main(["stylize", str(clip), "--style", str(style), "-o", str(tmp_path / "o.mp4"), "-y",
                     "--model", "reinhard", "--report", str(report), "-q", *extra]) == 0
        return json.loads(report.read_text())["key_frames"]

    assert keys("--keyframes", "every:8") == [0, 8, 15]  # 16 frames: the last is a key too
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        assert keys("--keyframes", "every:8", "--max-gap", "5") == [0, 5, 10, 15]
    assert "every:8 with a max gap of 5" in caplog.text
    assert keys("--keyframes", "every:3", "--max-gap", "5")[:3] == [0, 3, 6]


def test_key_reasons_add_up_with_a_last_frame_key(tmp_path, style):
    src = tmp_path / "in.mp4"
    write_test_clip(src, width=96, height=64, frames=13, fps=12.0)
    report = tmp_path / "run.json"
    assert main(["stylize", str(src), "--style", str(style), "-o", str(tmp_path / "o.mp4"), "--model", "reinhard",
                 "--keyframes", "every:5", "--report", str(report), "-q"]) == 0
    rep = json.loads(report.read_text())
    assert rep["keys"][-1] == {"index": 12, "reason": "last"}
    assert sum(rep["key_reasons"].values()) == rep["key_count"] == len(rep["keys"])


def test_tiny_style_gets_a_warning(tmp_path, clip, capsys):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((2, 2, 3), 128, np.uint8))
    assert main(["stylize", str(clip), "--style", str(tiny), "-o", str(tmp_path / "o.mp4"), "--model", "reinhard",
                 "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: style tiny.png is 2x2" in err


def test_a_tiny_style_works_with_the_default_model(tmp_path, clip, capsys):
    tiny = tmp_path / "one.png"
    cv2.imwrite(str(tiny), np.full((1, 1, 3), 90, np.uint8))
    assert main(["stylize", str(clip), "--style", str(tiny), "-o", str(tmp_path / "o.mp4"), "-q"]) == 0, \
        capsys.readouterr().err


@pytest.mark.parametrize("side", [2, 11])
def test_a_video_a_few_pixels_across_is_stylized(tmp_path, style, side):
    """Optical flow (key selection) refuses images under 12 px; a static clip makes the selector use it."""
    src = tmp_path / "tiny.mp4"
    with VideoWriter(src, side, side, 10.0) as w:
        for _ in range(6):
            w.write(np.full((side, side, 3), 120, np.uint8))
    assert main(["stylize", str(src), "--style", str(style), "-o", str(tmp_path / "o.mp4"), "--model", "reinhard",
                 "-q"]) == 0


@pytest.mark.parametrize("target", ["input", "style", "output", "folder"])
def test_a_report_path_that_would_replace_a_file_of_the_run_is_refused_first(tmp_path, clip, style, capsys,
                                                                             target):
    src = tmp_path / "in.mp4"
    src.write_bytes(clip.read_bytes())
    sty = tmp_path / "style.png"
    sty.write_bytes(style.read_bytes())
    out = tmp_path / "o.mp4"
    report = {"input": src, "style": sty, "output": out, "folder": tmp_path}[target]
    before = {p: p.read_bytes() for p in (src, sty)}
    assert main(["stylize", str(src), "--style", str(sty), "-o", str(out), "--model", "reinhard",
                 "--report", str(report), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: report") and "Traceback" not in err
    assert not out.exists() and all(p.read_bytes() == b for p, b in before.items())


def test_a_report_over_the_token_file_or_an_old_report_is_refused(tmp_path, clip, style, capsys):
    token = tmp_path / "phone.tok"
    token.write_text("s3cr3t\n")
    out = tmp_path / "o.mp4"
    args = ["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q"]
    assert main([*args, "--edge", "http://127.0.0.1:9", "--edge-token-file", str(token), "--report", str(token)]) == 2
    assert "would overwrite" in capsys.readouterr().err and token.read_text() == "s3cr3t\n"
    old = tmp_path / "r.json"
    old.write_text("{}")
    assert main([*args, "--report", str(old)]) == 2  # as the output: replaced only with -y
    assert "already exists" in capsys.readouterr().err and old.read_text() == "{}"
    assert main([*args, "--report", str(tmp_path / ("r" * 300 + ".json"))]) == 2
    assert capsys.readouterr().err.startswith("error: report file name is too long")


def test_edge_options_without_an_edge_are_refused(clip, style, tmp_path, capsys):
    args = ["stylize", str(clip), "--style", str(style), "-o", str(tmp_path / "o.mp4"), "--model", "reinhard", "-q"]
    assert main([*args, "--edge", ""]) == 2  # an unset $EDGE: not the in-process edge without a word
    assert "--edge is empty" in capsys.readouterr().err
    assert main([*args, "--edge-reconnect", "5"]) == 2
    assert "need --edge URL" in capsys.readouterr().err and not (tmp_path / "o.mp4").exists()


def test_video_only_options_given_for_an_image_are_said_to_do_nothing(tmp_path, style, capsys, caplog):
    import cv2

    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), np.full((24, 32, 3), 120, np.uint8))
    assert main(["stylize", str(photo), "--style", str(style), "-o", str(tmp_path / "o.png"), "--model", "reinhard",
                 "-q", "--crf", "30", "--keyframes", "every:3", "--max-gap", "2"]) == 0
    err = capsys.readouterr().err
    assert "warning: --keyframes, --max-gap, --crf have no effect on an image" in err
    assert "a key every" not in err + caplog.text  # no advice about key spacing for one picture
    assert main(["stylize", str(photo), "--style", str(style), "-o", str(tmp_path / "p.png"), "--model", "reinhard",
                 "-q"]) == 0
    assert "no effect" not in capsys.readouterr().err


def test_output_that_is_the_input_says_so_even_without_y(tmp_path, clip, capsys):
    src = tmp_path / "in.mp4"
    src.write_bytes(clip.read_bytes())
    assert main(["stylize", str(src), "--style", str(clip), "-o", str(src), "-q"]) == 2
    assert "is the input file" in capsys.readouterr().err


def test_a_full_disk_under_export_lut_is_one_error_line(tmp_path, style, capsys, monkeypatch):
    import mvstylizer.models.dncm as dncm

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dncm, "export_cube", full)
    assert main(["export-lut", "--style", str(style), "-o", str(tmp_path / "look.cube")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot write") and not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_bench_footage_refuses_an_edge_latency_that_is_not_a_number_of_seconds(tmp_path, capsys, value):
    try:  # nan and inf are refused by the option's parser (exit 2), -1 by the benchmark's config
        code = main(["bench", "footage", str(tmp_path), "--edge-elsewhere", "--edge-latency", value])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and ("--edge-latency must be" in err or "expected a finite number" in err), err


def test_sigterm_removes_the_temporary_output(tmp_path, style):
    src = tmp_path / "long.mp4"
    write_test_clip(src, width=320, height=240, frames=400, fps=25.0)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "mvstylizer.cli", "stylize", str(src), "--style", str(style),
                             "-o", str(out), "--model", "reinhard", "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]:
        if proc.poll() is not None:
            pytest.fail(f"finished before the signal: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def test_verbosity_configures_the_package_logger(capsys):
    log = logging.getLogger("mvstylizer.test")
    restore = _configure_logging(build_parser().parse_args(["-v", "models"]))
    log.info("an info line")
    restore()
    restore = _configure_logging(build_parser().parse_args(["models"]))
    log.info("hidden")
    log.warning("a warning line")
    restore()
    err = capsys.readouterr().err
    assert "an info line" in err and "hidden" not in err and "warning: a warning line" in err
    # main() leaves the logger as it found it
    assert logging.getLogger("mvstylizer").level == logging.NOTSET and not logging.getLogger("mvstylizer").handlers


def test_media_module_without_a_name_prints_usage():
    result = subprocess.run([sys.executable, "-m", "mvstylizer.video.media"], capture_output=True, text=True,
                            env={**os.environ})
    assert result.returncode != 0 and "usage:" in result.stderr and "Traceback" not in result.stderr


def test_first_cache_write_is_announced_once(tmp_path, monkeypatch, caplog):
    from mvstylizer.models.vgg_weights import cache_dir

    monkeypatch.setenv("MVSTYLIZER_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        cache_dir()
        cache_dir()
    notes = [r for r in caplog.records if "first run" in r.getMessage()]
    assert len(notes) == 1 and str(tmp_path / "cache") in notes[0].getMessage()


def test_bench_footage_writes_montages_into_an_existing_folder(tmp_path, capsys):
    montage = tmp_path / "montage"
    montage.mkdir()
    code = main(["bench", "footage", str(tmp_path / "no_clips_here"), "--montage", str(montage)])
    assert "is a folder" not in capsys.readouterr().err and code == 2  # refused for the missing clips only


def test_a_reader_that_stops_early_is_not_an_internal_error():
    # `mvstylizer ... | head`: the summary's write fails with EPIPE. Before: "internal error:
    # BrokenPipeError", exit 70.
    p = subprocess.Popen([sys.executable, "-m", "mvstylizer.cli", "models"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and "error" not in err


def test_the_report_counts_the_frames_written_when_avi_drops_some(tmp_path, style):
    # A 60 fps burst then 10 fps into AVI (one frame per 1/fps slot): frames with no slot are dropped.
    from fractions import Fraction

    import av

    times = [i / 60 for i in range(30)] + [0.5 + i / 10 for i in range(1, 11)]
    src = tmp_path / "in.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    report, out = tmp_path / "run.json", tmp_path / "out.avi"
    assert main(["stylize", str(src), "--style", str(style), "-o", str(out), "--model", "reinhard",
                 "--report", str(report), "-q"]) == 0
    with av.open(str(out)) as c:
        written = sum(1 for _ in c.decode(video=0))
    assert written < len(times) and json.loads(report.read_text())["frames"] == written


def test_an_edge_that_lists_no_model_is_named_as_such():
    from mvstylizer.cli.stylize import _check_model
    from mvstylizer.errors import UserError

    class NoModels:
        def models(self) -> list:
            return []

    with pytest.raises(UserError, match="the edge runs no model"):
        _check_model(NoModels(), "default")
