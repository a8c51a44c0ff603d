"""Every audio track of the input is kept (a phone's second language, a commentary track): copied or
re-encoded as a single track is, in the input's order, with its language, title and disposition."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from mvstylizer.video.reader import VideoReader
from mvstylizer.video.writer import VideoWriter

# (codec, sample rate, layout, language, title): told apart by their rates and layouts
_TRACKS = [("aac", 44100, "stereo", "eng", "Main"), ("aac", 16000, "mono", "fra", "Commentaire")]


def _tone(codec: str, rate: int, layout: str, pts: int, samples: int = 1024) -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    t = (np.arange(samples) + pts) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if codec.startswith("pcm_"):
        data = np.repeat((wave * 32767).astype(np.int16), channels)[None, :]
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
    else:
        frame = av.AudioFrame.from_ndarray(np.tile(wave, (channels, 1)), format="fltp", layout=layout)
    frame.sample_rate, frame.pts = rate, pts
    return frame


def _clip(path: Path, tracks: list[tuple[str, int, str, str, str]], default: int = 0) -> None:
    """A 1 s, 10 fps 32x24 H.264 video with the given audio tracks (track ``default`` marked so)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        streams = []
        for i, (codec, rate, layout, lang, title) in enumerate(tracks):
            a = out.add_stream(codec, rate=rate, layout=layout)
            a.metadata["language"], a.metadata["title"] = lang, title
            a.disposition = av.stream.Disposition.default if i == default else av.stream.Disposition(0)
            streams.append(a)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        for a, (codec, rate, layout, _, _) in zip(streams, tracks, strict=True):
            for pts in range(0, rate, 1024):
                out.mux(a.encode(_tone(codec, rate, layout, pts)))
            out.mux(a.encode(None))
        out.mux(video.encode(None))


def _transcode(src: Path, dst: Path) -> None:
    with VideoReader(src) as reader:
        info = reader.info
        with VideoWriter(dst, info.width, info.height, info.fps, reader.time_base,
                         audio_template=reader.audio_streams) as writer:
            for frame in reader.frames(audio_sink=writer.mux_audio):
                writer.write(frame.rgb8, frame.pts)


def _tracks(path: Path) -> list[dict]:
    with av.open(str(path)) as c:
        audio = list(c.streams.audio)
        ticks = {a.index: 0 for a in audio}
        for packet in c.demux(*audio):
            if packet.dts is not None:
                ticks[packet.stream.index] += packet.duration
        # MOV stores a track's title as its name
        return [{"codec": a.codec_context.name, "rate": a.codec_context.sample_rate,
                 "channels": a.codec_context.layout.nb_channels, "language": a.metadata.get("language"),
                 "title": a.metadata.get("title") or a.metadata.get("name"),
                 "default": bool(a.disposition & av.stream.Disposition.default),
                 "seconds": round(float(ticks[a.index] * a.time_base), 1)} for a in audio]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_two_audio_tracks_are_both_copied_in_order(tmp_path, suffix, caplog):
    """A phone video with a second audio track came out with one (and the user warned)."""
    src, dst = tmp_path / f"phone{suffix}", tmp_path / f"out{suffix}"
    _clip(src, _TRACKS)
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        _transcode(src, dst)
    assert "audio tracks" not in caplog.text
    got = _tracks(dst)
    assert [(t["codec"], t["rate"], t["channels"], t["language"]) for t in got] == [
        ("aac", 44100, 2, "eng"), ("aac", 16000, 1, "fra")]
    assert [t["default"] for t in got] == [True, False]
    assert [t["seconds"] for t in got] == [t["seconds"] for t in _tracks(src)]
    assert all(t["seconds"] >= 1.0 for t in got)  # every packet copied
    if suffix != ".mp4":  # FFmpeg's MP4 muxer stores no track title
        assert [t["title"] for t in got] == ["Main", "Commentaire"]


def test_two_audio_tracks_that_mp4_cannot_hold_are_both_re_encoded(tmp_path):
    """PCM (from a camera's MOV or an MKV) goes into MP4 as AAC, each track as the single one does."""
    src, dst = tmp_path / "pcm.mkv", tmp_path / "out.mp4"
    _clip(src, [("pcm_s16le", 48000, "stereo", "eng", "Main"), ("pcm_s16le", 22050, "mono", "deu", "Kommentar")],
          default=1)
    _transcode(src, dst)
    got = _tracks(dst)
    assert [(t["codec"], t["rate"], t["channels"], t["language"], t["default"]) for t in got] == [
        ("aac", 48000, 2, "eng", False), ("aac", 22050, 1, "deu", True)]
    assert all(abs(t["seconds"] - 1.05) <= 0.1 for t in got), [t["seconds"] for t in got]


def test_a_track_that_keeps_failing_costs_only_itself(tmp_path, caplog):
    """Audio errors are counted per track: one track's dropped packets do not drop the other's."""
    src, dst = tmp_path / "phone.mkv", tmp_path / "out.mkv"
    _clip(src, _TRACKS)
    with VideoReader(src) as reader:
        info = reader.info
        with caplog.at_level(logging.WARNING, logger="mvstylizer"), VideoWriter(
                dst, info.width, info.height, info.fps, reader.time_base, audio_template=reader.audio_streams) as w:
            second = reader.audio_streams[1].index

            def sink(packet: av.Packet) -> None:
                if packet.stream.index == second:
                    packet.dts = packet.pts = 0  # every packet of track 2 repeats the first's time
                w.mux_audio(packet)

            for frame in reader.frames(audio_sink=sink):
                w.write(frame.rgb8, frame.pts)
    got = _tracks(dst)
    assert got[0]["seconds"] == _tracks(src)[0]["seconds"]
    assert "of audio track 2 of" in caplog.text and "audio track 1" not in caplog.text
