"""Video/image I/O: timing-exact round trips, audio pass-through, rotation, atomic outputs, errors."""

from __future__ import annotations

import logging
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from mvstylizer.errors import UserError
from mvstylizer.files import atomic_path
from mvstylizer.video.formats import check_output_path, is_image_path, is_video_path
from mvstylizer.video.image import read_image, write_image
from mvstylizer.video.reader import VideoReader
from mvstylizer.video.writer import VideoWriter
from mvstylizer.bench.synthetic import MOTION_PX, clip_frames, write_test_clip


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def transcode(src: Path, dst: Path, **writer_kw) -> None:
    """What the pipeline does, minus the styling: read, write the same frames, copy audio."""
    with VideoReader(src) as reader:
        info = reader.info
        with VideoWriter(
            dst, info.width, info.height, info.fps, reader.time_base, reader.audio_stream, **writer_kw
        ) as writer:
            for frame in reader.frames(audio_sink=writer.mux_audio):
                writer.write(frame.rgb8, frame.pts)


def read_all(path: Path):
    with VideoReader(path) as reader:
        frames = list(reader.frames())
        return reader.info, frames


def audio_summary(path: Path) -> tuple[str, float] | None:
    """(codec, seconds covered by audio packets) or None without an audio stream."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        packets = [p for p in c.demux(stream) if p.dts is not None]
        start = min(p.pts for p in packets)
        end = max(p.pts + p.duration for p in packets)
        return stream.codec_context.name, float((end - start) * stream.time_base)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# synthetic clips
# ---------------------------------------------------------------------------------------------


def test_synthetic_clip_is_fast_and_has_known_motion(tmp_path):
    t0 = time.perf_counter()
    write_test_clip(tmp_path / "c.mp4", audio=True, scene_cut_at=6)
    assert time.perf_counter() - t0 < 0.5
    frames = list(clip_frames(64, 48, 12, scene_cut_at=6))
    dx, dy = MOTION_PX
    for t in (0, 3):  # content moves exactly (dx, dy) per frame within a scene
        a, b = frames[t], frames[t + 1]
        np.testing.assert_array_equal(b[dy:, dx:], a[: a.shape[0] - dy, : a.shape[1] - dx])
    # At the cut the content changes completely (colour histogram and structure).
    assert np.abs(frames[6].astype(int).mean((0, 1)) - frames[5].astype(int).mean((0, 1))).max() > 30
    assert psnr(frames[5], frames[6]) < 15


def test_synthetic_decodes_close_to_source(tmp_path):
    write_test_clip(tmp_path / "c.mp4")
    _, frames = read_all(tmp_path / "c.mp4")
    src = list(clip_frames())
    assert len(frames) == len(src) == 12
    assert min(psnr(f.rgb8, s) for f, s in zip(frames, src)) > 25
    # No systematic colour shift from YUV<->RGB conversion.
    bias = np.mean([(f.rgb8.astype(float) - s).mean((0, 1)) for f, s in zip(frames, src)], axis=0)
    assert np.abs(bias).max() < 0.6


# ---------------------------------------------------------------------------------------------
# round trips and timing
# ---------------------------------------------------------------------------------------------


def test_reader_info_and_frames(tmp_path):
    write_test_clip(tmp_path / "in.mp4", frames=12, fps=10.0)
    info, frames = read_all(tmp_path / "in.mp4")
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(10.0)
    assert info.frame_count == 12
    assert info.duration == pytest.approx(1.2, abs=1e-3)
    assert info.rotation == 0 and not info.has_audio and info.codec == "h264"
    assert [f.index for f in frames] == list(range(12))
    assert [f.time for f in frames] == pytest.approx([i / 10 for i in range(12)], abs=1e-3)
    f0 = frames[0].rgb8
    assert f0.dtype == np.uint8 and f0.shape == (48, 64, 3) and f0.flags.c_contiguous


@pytest.mark.parametrize("size", [(64, 48), (33, 25)])
def test_round_trip_keeps_count_size_fps_duration(tmp_path, size):
    w, h = size
    write_test_clip(tmp_path / "in.mp4", width=w, height=h, frames=12, fps=10.0)
    transcode(tmp_path / "in.mp4", tmp_path / "out.mp4")
    info_in, frames_in = read_all(tmp_path / "in.mp4")
    info_out, frames_out = read_all(tmp_path / "out.mp4")
    assert (info_out.width, info_out.height) == (w, h)  # odd sizes kept exactly (yuv444p)
    assert len(frames_out) == len(frames_in) == 12
    assert info_out.frame_count == 12
    assert info_out.fps == pytest.approx(info_in.fps)
    assert info_out.duration == pytest.approx(info_in.duration, abs=1e-3)
    assert [f.time for f in frames_out] == pytest.approx([f.time for f in frames_in], abs=1e-3)
    assert min(psnr(a.rgb8, b.rgb8) for a, b in zip(frames_in, frames_out)) > 30


@pytest.mark.parametrize("ext", [".mkv", ".mov", ".m4v", ".avi"])
def test_other_output_containers(tmp_path, ext):
    write_test_clip(tmp_path / "in.mp4", frames=12, fps=10.0)
    out = tmp_path / f"out{ext}"
    transcode(tmp_path / "in.mp4", out)
    info, frames = read_all(out)
    assert len(frames) == 12
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(10.0)
    assert info.duration == pytest.approx(1.2, abs=0.051)
    if ext != ".avi":  # AVI counts frames and FFmpeg's demuxer may start it one tick late
        assert [f.time for f in frames] == pytest.approx([i / 10 for i in range(12)], abs=1e-3)


def test_mkv_input_keeps_timing(tmp_path):
    write_test_clip(tmp_path / "in.mkv", frames=9, fps=12.5)
    transcode(tmp_path / "in.mkv", tmp_path / "out.mp4")
    info_in, fin = read_all(tmp_path / "in.mkv")
    info_out, fout = read_all(tmp_path / "out.mp4")
    assert info_in.frame_count is None and info_in.duration == pytest.approx(0.72, abs=1e-3)
    assert len(fout) == 9 and info_out.fps == pytest.approx(12.5)
    assert info_out.duration == pytest.approx(0.72, abs=1e-3)
    assert [f.time for f in fout] == pytest.approx([f.time for f in fin], abs=1e-3)


def test_writer_without_pts_uses_frame_index(tmp_path):
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 32, 24, 25.0) as writer:
        for rgb in clip_frames(32, 24, 10):
            writer.write(rgb)
    info, frames = read_all(out)
    assert len(frames) == 10 and info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(0.4, abs=1e-3)
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(10)], abs=1e-3)


def test_writer_rejects_wrong_frames(tmp_path):
    with VideoWriter(tmp_path / "o.mp4", 32, 24, 10.0) as writer:
        with pytest.raises(ValueError):
            writer.write(np.zeros((24, 32, 3), np.float32))
        with pytest.raises(ValueError):
            writer.write(np.zeros((32, 24, 3), np.uint8))
        writer.write(np.zeros((24, 32, 3), np.uint8))
    assert (tmp_path / "o.mp4").exists()


# ---------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------


def test_audio_copied_through(tmp_path):
    write_test_clip(tmp_path / "in.mp4", audio=True)
    transcode(tmp_path / "in.mp4", tmp_path / "out.mp4")
    codec_in, dur_in = audio_summary(tmp_path / "in.mp4")
    codec_out, dur_out = audio_summary(tmp_path / "out.mp4")
    assert codec_out == codec_in == "aac"
    assert dur_in == pytest.approx(1.2, abs=0.05)
    assert dur_out == pytest.approx(dur_in, abs=0.03)
    info, frames = read_all(tmp_path / "out.mp4")
    assert info.has_audio and len(frames) == 12


def test_audio_sink_gets_every_audio_packet(tmp_path):
    write_test_clip(tmp_path / "in.mkv", audio=True)
    got = []
    with VideoReader(tmp_path / "in.mkv") as reader:
        assert reader.audio_stream is not None
        n = sum(1 for _ in reader.frames(audio_sink=got.append))
    with av.open(str(tmp_path / "in.mkv")) as c:
        expected = sum(1 for p in c.demux(c.streams.audio[0]) if p.dts is not None)
    assert n == 12 and len(got) == expected > 0
    assert all(p.dts is not None for p in got)


def test_audio_transcoded_when_container_refuses_codec(tmp_path):
    # PCM can live in Matroska but not in .m4v (ipod muxer): the writer re-encodes it as AAC.
    write_test_clip(tmp_path / "in.mkv", audio=True, audio_codec="pcm_s16le")
    assert audio_summary(tmp_path / "in.mkv")[0] == "pcm_s16le"
    transcode(tmp_path / "in.mkv", tmp_path / "out.m4v")
    codec, dur = audio_summary(tmp_path / "out.m4v")
    assert codec == "aac"
    assert dur == pytest.approx(1.2, abs=0.06)


def test_no_audio_clip_gives_no_audio_stream(tmp_path):
    write_test_clip(tmp_path / "in.mp4", audio=False)
    transcode(tmp_path / "in.mp4", tmp_path / "out.mp4")
    assert audio_summary(tmp_path / "out.mp4") is None
    assert not read_all(tmp_path / "out.mp4")[0].has_audio


# ---------------------------------------------------------------------------------------------
# rotation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_read_back_upright(tmp_path, rotation):
    path = tmp_path / "rot.mp4"
    write_test_clip(path, width=64, height=48, rotation=rotation)
    info, frames = read_all(path)
    swapped = rotation in (90, 270)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if swapped else (64, 48))
    assert frames[0].rgb8.shape == (info.height, info.width, 3)
    # Counter-clockwise convention: upright == np.rot90(stored, rotation // 90).
    expected = np.rot90(next(clip_frames(64, 48)), rotation // 90)
    assert psnr(frames[0].rgb8, expected) > 25
    # Independent check of the sign convention: OpenCV's FFmpeg backend auto-rotates too.
    cap = cv2.VideoCapture(str(path))
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        pytest.skip("this OpenCV build cannot read mp4")
    assert bgr.shape == frames[0].rgb8.shape
    # Luma only: OpenCV converts chroma differently; orientation is what is being checked.
    ours = cv2.cvtColor(frames[0].rgb8, cv2.COLOR_RGB2GRAY).astype(int)
    ref = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(int)
    assert np.abs(ours - ref).mean() < 3
    assert np.abs(ours[::-1, ::-1] - ref).mean() > 10  # the check can tell orientations apart


def test_display_matrix_flip_is_applied(tmp_path):
    path = tmp_path / "flip.mp4"
    img = np.zeros((32, 48, 3), np.uint8)
    img[:8, :8] = (255, 0, 0)  # red marker top-left in stored pixels
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 48, 32, "yuv420p"
        vs.set_display_rotation(0, hflip=True)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    info, frames = read_all(path)
    rgb = frames[0].rgb8
    assert (info.width, info.height) == (48, 32)
    assert rgb[:8, -8:, 0].mean() > 200 and rgb[:8, :8, 0].mean() < 50  # marker now top-right


def test_rotated_input_written_upright_without_metadata(tmp_path):
    write_test_clip(tmp_path / "in.mov", rotation=90)
    transcode(tmp_path / "in.mov", tmp_path / "out.mp4")
    info_in, fin = read_all(tmp_path / "in.mov")
    info_out, fout = read_all(tmp_path / "out.mp4")
    assert info_out.rotation == 0
    assert (info_out.width, info_out.height) == (info_in.width, info_in.height) == (48, 64)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (48, 64)
    assert psnr(fin[0].rgb8, fout[0].rgb8) > 30


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        VideoReader(tmp_path / "nope.mp4")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        VideoReader(tmp_path / "empty.mp4")


def test_not_a_video(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(UserError, match="not a video"):
        VideoReader(tmp_path / "notes.mp4")


def test_folder_is_not_a_video(tmp_path):
    (tmp_path / "d.mp4").mkdir()
    with pytest.raises(UserError, match="folder"):
        VideoReader(tmp_path / "d.mp4")


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=44100, layout="mono")
        _mux(out, a, _silence(4096, 44100))
        _mux(out, a, None)
    with pytest.raises(UserError, match="no video stream"):
        VideoReader(path)


def _cut(tmp_path: Path, ext: str, keep: float) -> Path:
    src = tmp_path / f"full{ext}"
    write_test_clip(src, width=96, height=64, frames=30, audio=ext == ".mkv")
    data = src.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


@pytest.mark.parametrize(("ext", "keep"), [(".mp4", 0.3), (".mp4", 0.6), (".avi", 0.3)])
def test_truncated_file_without_its_header_or_index_is_refused(tmp_path, ext, keep):
    # mp4 keeps its index at the end; an AVI cut this short has lost part of its header.
    with pytest.raises(UserError, match="truncated or corrupt"):
        VideoReader(_cut(tmp_path, ext, keep))


@pytest.mark.parametrize(("ext", "keep"), [(".mkv", 0.3), (".mkv", 0.6), (".avi", 0.6)])
def test_truncated_file_gives_the_frames_before_the_cut_and_a_warning(tmp_path, caplog, ext, keep):
    cut = _cut(tmp_path, ext, keep)
    with caplog.at_level(logging.WARNING, logger="mvstylizer"), VideoReader(cut) as reader:
        count = sum(1 for _ in reader.frames(audio_sink=lambda p: None))
    assert 0 < count < 30
    messages = [r.getMessage() for r in caplog.records]
    declared = "3.00 s of video" if ext == ".mkv" else "30 frames"
    assert len(messages) == 1 and messages[0].startswith(f"{cut} declares {declared} but only ")
    assert messages[0].endswith(f"; using the {count} decodable frames")


def test_full_mkv_with_audio_is_not_flagged(tmp_path):
    write_test_clip(tmp_path / "ok.mkv", width=96, height=64, frames=30, audio=True)
    assert len(read_all(tmp_path / "ok.mkv")[1]) == 30


def test_frames_iterates_once(tmp_path):
    write_test_clip(tmp_path / "c.mp4")
    with VideoReader(tmp_path / "c.mp4") as reader:
        list(reader.frames())
        with pytest.raises(RuntimeError):
            list(reader.frames())


# ---------------------------------------------------------------------------------------------
# atomic outputs
# ---------------------------------------------------------------------------------------------


def test_writer_aborted_inside_with_leaves_nothing(tmp_path):
    write_test_clip(tmp_path / "in.mp4")
    before = only_files(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with VideoReader(tmp_path / "in.mp4") as reader:
            with VideoWriter(tmp_path / "out.mp4", 64, 48, 10.0, reader.time_base) as writer:
                for frame in reader.frames():
                    writer.write(frame.rgb8, frame.pts)
                    if frame.index == 5:
                        raise KeyboardInterrupt
    assert only_files(tmp_path) == before


def test_writer_abort_keeps_existing_output(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 32, 24, 10.0) as writer:
            writer.write(np.zeros((24, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert out.read_bytes() == b"previous result"
    assert only_files(tmp_path) == ["out.mp4"]


def test_writer_with_no_frames_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", 32, 24, 10.0):
            pass
    assert only_files(tmp_path) == []


def test_writer_rejects_webm_and_missing_folder(tmp_path):
    with pytest.raises(UserError, match="webm|use one of"):
        VideoWriter(tmp_path / "out.webm", 32, 24, 10.0)
    with pytest.raises(UserError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", 32, 24, 10.0)
    assert only_files(tmp_path) == []


def test_webm_input_is_readable(tmp_path):
    write_test_clip(tmp_path / "in.webm", audio=True)
    transcode(tmp_path / "in.webm", tmp_path / "out.mov")  # Opus cannot go in .mov -> AAC
    info, frames = read_all(tmp_path / "out.mov")
    assert len(frames) == 12 and info.has_audio
    assert audio_summary(tmp_path / "out.mov")[0] == "aac"


def test_atomic_path(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".json" and tmp != target
            tmp.write_text("half")
            raise ValueError
    assert target.read_text() == "old" and only_files(tmp_path) == ["report.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and only_files(tmp_path) == ["report.json"]


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def test_read_image_colour_grey_rgba_16bit(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])
    img = read_image(tmp_path / "c.png")
    assert img.dtype == np.float32 and img.shape == (10, 12, 3)
    np.testing.assert_allclose(img[0, 0], [1, 0, 0])

    cv2.imwrite(str(tmp_path / "g.png"), np.full((10, 12), 128, np.uint8))
    g = read_image(tmp_path / "g.png")
    assert g.shape == (10, 12, 3)
    np.testing.assert_allclose(g[0, 0], [128 / 255] * 3, atol=1e-6)

    bgra = np.zeros((10, 12, 4), np.uint8)
    bgra[..., 2] = 255  # red...
    bgra[:, :6, 3] = 255  # ...opaque on the left, fully transparent on the right
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    a = read_image(tmp_path / "a.png")
    assert a.shape == (10, 12, 3)
    np.testing.assert_allclose(a[0, 0], [1, 0, 0])
    np.testing.assert_allclose(a[0, -1], [1, 1, 1])  # composited on white

    deep = np.full((10, 12, 3), 40000, np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    d = read_image(tmp_path / "d.png")
    np.testing.assert_allclose(d[0, 0], [40000 / 65535] * 3, atol=1e-6)


def test_read_image_honours_exif_orientation(tmp_path):
    from PIL import Image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:10, :10] = (255, 0, 0)  # red top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / "o.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "o.jpg")
    assert img.shape == (40, 20, 3)
    assert img[:10, -10:, 0].mean() > 0.8 and img[:10, :10, 0].mean() < 0.2  # now top-right


def test_read_image_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(UserError, match="not a readable image"):
        read_image(tmp_path / "x.png")
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        read_image(tmp_path / "e.jpg")


def test_write_image_round_trip_and_atomic(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.random((9, 11, 3)).astype(np.float32)
    write_image(tmp_path / "o.png", img)
    np.testing.assert_allclose(read_image(tmp_path / "o.png"), img, atol=0.5 / 255 + 1e-6)
    u8 = (img * 255).astype(np.uint8)
    write_image(tmp_path / "u.png", u8)
    np.testing.assert_array_equal((read_image(tmp_path / "u.png") * 255).round().astype(np.uint8), u8)
    write_image(tmp_path / "j.jpg", img)
    assert read_image(tmp_path / "j.jpg").shape == (9, 11, 3)
    with pytest.raises(UserError):
        write_image(tmp_path / "o.gif", img)
    with pytest.raises(UserError, match="does not exist"):
        write_image(tmp_path / "no" / "o.png", img)
    assert only_files(tmp_path) == ["j.jpg", "o.png", "u.png"]


# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------


def test_path_kinds():
    assert is_video_path("a/B.MP4") and is_video_path("x.webm") and not is_video_path("x.png")
    assert is_image_path("x.JPG") and is_image_path("x.tiff") and not is_image_path("x.mp4")


def test_check_output_path(tmp_path):
    inp = tmp_path / "in.mp4"
    write_test_clip(inp)
    check_output_path(inp, tmp_path / "out.mp4")  # fine
    check_output_path(inp, tmp_path / "out.MKV")  # case-insensitive
    with pytest.raises(UserError, match="does not exist"):
        check_output_path(inp, tmp_path / "missing" / "out.mp4")
    with pytest.raises(UserError, match="is the input"):
        check_output_path(inp, inp)
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="is the input"):
        check_output_path(inp, tmp_path / "sub" / ".." / "in.mp4")
    os.symlink(inp, tmp_path / "link.mp4")
    with pytest.raises(UserError, match="is the input"):
        check_output_path(inp, tmp_path / "link.mp4")
    os.link(inp, tmp_path / "hard.mp4")
    with pytest.raises(UserError, match="is the input"):
        check_output_path(inp, tmp_path / "hard.mp4")
    with pytest.raises(UserError, match="unsupported output extension"):
        check_output_path(inp, tmp_path / "out.txt")
    with pytest.raises(UserError, match="unsupported output extension"):
        check_output_path(inp, tmp_path / "out.png")  # video in, image out
    with pytest.raises(UserError, match="webm"):
        check_output_path(inp, tmp_path / "out.webm")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UserError, match="folder"):
        check_output_path(inp, tmp_path / "dir.mp4")
    with pytest.raises(UserError, match="image not found"):
        check_output_path(tmp_path / "photo.jpg", tmp_path / "styled.png")
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.zeros((8, 8, 3), np.uint8))
    check_output_path(tmp_path / "photo.jpg", tmp_path / "styled.png")  # image in, image out
    with pytest.raises(UserError, match="unsupported output extension"):
        check_output_path(tmp_path / "photo.jpg", tmp_path / "styled.mp4")


def test_fraction_time_base_passthrough(tmp_path):
    out = tmp_path / "o.mkv"
    with VideoWriter(out, 32, 24, 30000 / 1001, time_base=Fraction(1, 90000)) as writer:
        for i, rgb in enumerate(clip_frames(32, 24, 6)):
            writer.write(rgb, pts=i * 3003)
    info, frames = read_all(out)
    assert info.fps == pytest.approx(30000 / 1001, rel=1e-4)
    assert [f.time for f in frames] == pytest.approx([i * 3003 / 90000 for i in range(6)], abs=1e-3)


# ---------------------------------------------------------------------------------------------
# threads: prefetching reader, encoding writer
# ---------------------------------------------------------------------------------------------


def test_prefetching_reader_gives_the_same_frames_and_audio_as_a_plain_one(tmp_path):
    write_test_clip(tmp_path / "in.mkv", frames=20, audio=True)

    def read(prefetch: int):
        events = []
        with VideoReader(tmp_path / "in.mkv") as reader:
            for frame in reader.frames(audio_sink=lambda p: events.append(("a", p.pts)), prefetch=prefetch,
                                       prepare=lambda f: (f.index, f.pts, f.rgb8.sum())):
                events.append(("v", frame))
        return events

    plain, ahead = read(0), read(3)
    assert ahead == plain  # same frames, same audio packets, same interleaving
    assert [e[1][0] for e in ahead if e[0] == "v"] == list(range(20))


def test_prefetching_reader_can_be_left_early_and_passes_errors_on(tmp_path):
    write_test_clip(tmp_path / "in.mp4", frames=30)
    with VideoReader(tmp_path / "in.mp4") as reader:
        for frame in reader.frames(prefetch=2):
            if frame.index == 3:
                break  # the reader's close must stop the decoding thread
    assert reader._decode_thread is None

    def boom(frame):
        if frame.index == 5:
            raise UserError("frame 5 is bad")
        return frame

    with VideoReader(tmp_path / "in.mp4") as reader:
        with pytest.raises(UserError, match="frame 5"):
            for _ in reader.frames(prefetch=2, prepare=boom):
                pass


def test_writer_thread_output_matches_the_inline_writer(tmp_path):
    # 128 px wide: x264's output at some other widths differs from run to run (even inline).
    write_test_clip(tmp_path / "in.mkv", width=128, height=96, frames=15, audio=True)
    transcode(tmp_path / "in.mkv", tmp_path / "bg.mp4")
    transcode(tmp_path / "in.mkv", tmp_path / "inline.mp4", background=False)
    (_, a), (_, b) = read_all(tmp_path / "bg.mp4"), read_all(tmp_path / "inline.mp4")
    assert len(a) == len(b) == 15
    assert all(np.array_equal(x.rgb8, y.rgb8) and x.pts == y.pts for x, y in zip(a, b))
    assert audio_summary(tmp_path / "bg.mp4") == audio_summary(tmp_path / "inline.mp4")


# ---------------------------------------------------------------------------------------------
# deferred frames: held as decoded, made RGB when asked
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [0, 90])
def test_deferred_frames_convert_as_decoded_frames_do(tmp_path, rotation):
    from mvstylizer.imaging import quick_downscale

    path = tmp_path / "clip.mp4"
    write_test_clip(path, width=320, height=192, rotation=rotation)
    info, eager = read_all(path)
    with VideoReader(path) as reader:
        deferred = list(reader.frames(deferred=True))
    assert info.decoded_frame_bytes == 320 * 192 * 3 // 2  # 8-bit 4:2:0
    assert [f.index for f in deferred] == [f.index for f in eager]
    assert [f.pts for f in deferred] == [f.pts for f in eager] and [f.time for f in deferred] == [f.time for f in eager]
    for d, e in zip(deferred, eager, strict=True):
        assert np.array_equal(d.rgb8(), e.rgb8)  # the same conversion, only later
        assert d.nbytes <= 0.6 * e.rgb8.nbytes  # 4:2:0 as decoded: half of RGB, plus the planes' padding
        w, h = info.width // 2, info.height // 2
        small = d.small(w, h)
        assert small.shape == (h, w, 3)  # upright, like the full frame
        assert np.abs(small.astype(int) - quick_downscale(e.rgb8, (w, h))).mean() < 2.0


def test_deferred_frames_can_be_prepared_on_the_decoding_thread(tmp_path):
    path = tmp_path / "clip.mp4"
    write_test_clip(path, width=64, height=48)
    with VideoReader(path) as reader:
        sizes = list(reader.frames(prepare=lambda f: f.small(32, 24).shape, deferred=True))
    assert sizes and all(s == (24, 32, 3) for s in sizes)


def _mux(out: av.container.OutputContainer, stream: av.stream.Stream, frame: av.frame.Frame | None) -> None:
    """Encode ``frame`` (None: flush) on ``stream`` and mux what comes out."""
    for packet in stream.encode(frame):
        out.mux(packet)


def _silence(samples: int, rate: int, layout: str = "mono", pts: int = 0) -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    frame = av.AudioFrame.from_ndarray(np.zeros((1, samples * channels), np.int16) if layout == "stereo"
                                       else np.zeros((1, samples), np.float32),
                                       format="s16" if layout == "stereo" else "fltp", layout=layout)
    frame.sample_rate, frame.pts = rate, pts
    return frame


def _video_and_audio(out: av.container.OutputContainer, codec: str, rate: int, layout: str
                     ) -> tuple[av.stream.Stream, av.stream.Stream]:
    """A 64x48 30 fps H.264 stream and an audio stream in ``out``."""
    v = out.add_stream("libx264", rate=30)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    a = out.add_stream(codec, rate=rate)
    a.layout = layout
    return v, a


def _grey(level: int, h: int = 48, w: int = 64) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.full((h, w, 3), level, np.uint8), format="rgb24")


def _two_audio_tracks(path: Path, default: int) -> None:
    """A short MKV with two AAC tracks (English, French), track ``default`` (0 or 1) marked default."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        tracks = []
        for i, lang in enumerate(("eng", "fra")):
            a = out.add_stream("aac", rate=16000)
            a.layout = "mono"
            a.metadata["language"] = lang
            a.disposition = av.stream.Disposition.default if i == default else av.stream.Disposition(0)
            tracks.append(a)
        for i in range(5):
            _mux(out, video, _grey(40 * i, 24, 32))
        for a in tracks:
            _mux(out, a, _silence(8000, 16000))
            _mux(out, a, None)
        _mux(out, video, None)


@pytest.mark.parametrize("default", [0, 1])
def test_a_writer_given_one_of_several_audio_tracks_keeps_the_default_and_tells(tmp_path, caplog, default):
    """``audio_stream`` is the main track; a writer given it alone (not ``audio_streams``) keeps that
    one and says so (all tracks are kept when all are given: test_audio_tracks.py)."""
    path = tmp_path / "two_tracks.mkv"
    _two_audio_tracks(path, default)
    with caplog.at_level(logging.WARNING, logger="mvstylizer"), VideoReader(path) as reader:
        assert reader.audio_stream is not None
        assert reader.audio_stream.metadata.get("language") == ("eng", "fra")[default]
        assert [a.metadata.get("language") for a in reader.audio_streams] == ["eng", "fra"]
        out = tmp_path / "out.mp4"
        with VideoWriter(out, 32, 24, reader.info.fps, reader.time_base, audio_template=reader.audio_stream) as w:
            for f in reader.frames(audio_sink=w.mux_audio):
                w.write(f.rgb8, f.pts)
    assert f"2 audio tracks; only track {default + 1} ({('eng', 'fra')[default]}) is kept" in caplog.text
    with av.open(str(out)) as c:
        assert [a.metadata.get("language") for a in c.streams.audio] == [("eng", "fra")[default]]
        assert c.streams.audio[0].frames > 0


def test_stereo_pcm_from_avi_goes_into_mp4_as_aac(tmp_path):
    """FFmpeg gives AVI's stereo PCM channels in no stated order: the MP4 muxer took its header and
    refused at the trailer, after the whole video was encoded."""
    src, out = tmp_path / "pcm.avi", tmp_path / "out.mp4"
    with av.open(str(src), "w") as o:
        v, a = _video_and_audio(o, "pcm_s16le", 44100, "stereo")
        for i in range(10):
            _mux(o, v, _grey(i * 20))
        for i in range(8):
            _mux(o, a, _silence(1024, 44100, "stereo", i * 1024))
        for s in (v, a):
            _mux(o, s, None)
    with VideoReader(src) as reader:
        assert reader.audio_stream.codec_context.layout.name == "2 channels"
        with VideoWriter(out, 64, 48, reader.info.fps, reader.time_base, audio_template=reader.audio_stream) as w:
            for f in reader.frames(audio_sink=w.mux_audio):
                w.write(f.rgb8, f.pts)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac" and c.streams.audio[0].frames > 0


def test_an_mkv_whose_video_starts_after_its_audio_is_not_called_damaged(tmp_path, caplog):
    """Matroska's per-track DURATION tag is where the track ends, not its length."""
    path = tmp_path / "late.mkv"
    with av.open(str(path), "w") as o:
        v, a = _video_and_audio(o, "aac", 48000, "mono")
        for i in range(40):
            _mux(o, a, _silence(1024, 48000, pts=i * 1024))
        for i in range(30):
            f = _grey(i * 8)
            f.pts, f.time_base = 15 + i, Fraction(1, 30)  # the video starts at 0.5 s
            _mux(o, v, f)
        for s in (v, a):
            _mux(o, s, None)
    with caplog.at_level(logging.WARNING, logger="mvstylizer"), VideoReader(path) as reader:
        assert len(list(reader.frames())) == 30
    assert "declares" not in caplog.text


def _exif_mjpeg(path, rotation: int) -> np.ndarray:
    """A camera-style MJPEG movie whose JPEG frames carry EXIF (FFmpeg 8 attaches it to each frame as
    side data of a type PyAV 18 does not know); returns the stored pixels."""
    import io
    from fractions import Fraction

    from PIL import Image

    img = np.zeros((32, 48, 3), np.uint8)
    img[:8, :8] = (255, 0, 0)  # red marker top-left in stored pixels
    exif = Image.Exif()
    exif[0x010F] = "Camera"  # Make
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95, exif=exif)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mjpeg", rate=10)
        vs.width, vs.height, vs.pix_fmt = 48, 32, "yuvj420p"
        if rotation:
            vs.set_display_rotation(rotation)
        for i in range(3):
            packet = av.Packet(buf.getvalue())
            packet.stream, packet.pts, packet.dts = vs, i, i
            packet.time_base, packet.is_keyframe = Fraction(1, 10), True
            out.mux(packet)
    return img


@pytest.mark.parametrize(("name", "rotation"), [("cam.avi", 0), ("cam.mov", 90)])
def test_mjpeg_frames_with_exif_are_read(tmp_path, name, rotation):
    # Listing such a frame's side data raised "31 is not a valid Type": stylize ended in an internal error.
    path = tmp_path / name
    stored = _exif_mjpeg(path, rotation)
    info, frames = read_all(path)
    assert len(frames) == 3 and info.rotation == rotation
    expected = np.rot90(stored, rotation // 90)
    assert frames[0].rgb8.shape == expected.shape
    assert np.abs(frames[0].rgb8.astype(int) - expected).mean() < 8
