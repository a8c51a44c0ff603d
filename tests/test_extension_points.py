"""The four extension points of docs/ARCHITECTURE.md, each shown by a tiny example: a new model, an
interpolation method, a transport codec and an FL aggregation rule are one class or function and one
registry entry each, and the CLI, the edge and the pipeline pick them up. (The interpolation method's
example is ``test_an_interpolation_method_is_one_registry_entry`` in tests/mobile/test_interpolate.py.)"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mvstylizer import wire
from mvstylizer.bench.synthetic import clip_frames
from mvstylizer.cli import build_parser, main
from mvstylizer.models import registry
from mvstylizer.video.reader import VideoReader


class WarmTint:
    """A model: the content pulled a quarter of the way toward the style's mean colour."""

    name = "warm-tint"
    description = "example: a quarter of the way toward the style's mean colour (global)"

    def prepare_style(self, style: np.ndarray) -> np.ndarray:
        return style.reshape(-1, 3).mean(axis=0)

    def stylize(self, content: np.ndarray, style_state: np.ndarray) -> np.ndarray:
        return np.clip(0.75 * content + 0.25 * style_state, 0.0, 1.0).astype(np.float32)


def test_a_model_is_one_class_and_one_registry_entry(monkeypatch, tmp_path, clip, style, capsys):
    monkeypatch.setitem(registry.MODELS, "warm-tint",
                        registry.ModelSpec("warm-tint", WarmTint.description, {"numpy": WarmTint}))
    assert main(["models"]) == 0 and "warm-tint" in capsys.readouterr().out
    out = tmp_path / "out.mp4"
    assert main(["stylize", str(clip), "--style", str(style), "-o", str(out), "--model", "warm-tint", "-q"]) == 0
    with VideoReader(out) as reader:
        frames = [f.rgb8 for f in reader.frames()]
    assert len(frames) == 16
    # A global model at a quarter strength: every output frame is within the tint's reach of its input.
    source = list(clip_frames(96, 64, 16))
    gap = np.mean([np.abs(o.astype(float) - s.astype(float)).mean() for o, s in zip(frames, source, strict=True)])
    assert 1.0 < gap < 40.0


class RawRGB:
    """A codec: uncompressed RGB after an 8-byte header (b"RAW" + a version byte, width and height)."""

    name = "raw"
    media_type = "application/x-mvstylizer-raw"

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        h, w = rgb.shape[:2]
        return b"RAW\x01" + struct.pack(">HH", w, h) + np.ascontiguousarray(rgb, np.uint8).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        size = self.image_size(data)
        if size is None or len(data) != 8 + size[0] * size[1] * 3:
            raise ValueError("not a raw frame")
        return np.frombuffer(data, np.uint8, offset=8).reshape(size[1], size[0], 3).copy()

    def image_size(self, data: bytes) -> tuple[int, int] | None:
        return struct.unpack(">HH", data[4:8]) if data[:4] == b"RAW\x01" and len(data) >= 8 else None


def test_a_codec_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(wire.CODECS, "raw", RawRGB())
    frame = (np.random.default_rng(0).random((12, 20, 3)) * 255).astype(np.uint8)
    data = wire.encode_frame(frame, wire.Encoding("raw"))
    assert wire.image_size(data) == (20, 12)
    np.testing.assert_array_equal(np.rint(wire.decode_frame(data) * 255), frame)  # lossless
    batch = wire.unpack_frames(wire.pack_frames([data, data]))
    assert [wire.decode_frame(b).shape for b in batch] == [(12, 20, 3)] * 2


def test_an_fl_aggregation_rule_is_one_function_and_one_entry_in_each_registry(monkeypatch):
    pytest.importorskip("flwr")
    from flwr.serverapp.strategy import FedAvg

    from mvstylizer.cloud.strategies import FLOWER_STRATEGIES, StrategyConfig, build_strategy
    from mvstylizer.fl.aggregation import AGGREGATIONS, Aggregation
    from mvstylizer.fl.population import aggregate

    def first_edge(stack: np.ndarray, weights: np.ndarray, trim_beta: float) -> np.ndarray:
        return stack[0]  # example only: the first edge's model wins

    monkeypatch.setitem(AGGREGATIONS, "first", Aggregation("first", "the first edge's model", first_edge, robust=False))
    monkeypatch.setitem(FLOWER_STRATEGIES, "first", lambda cfg, common: FedAvg(**common))
    glob = [np.zeros(3)]
    assert aggregate(glob, [[np.ones(3)], [np.full(3, 5.0)]], [1, 1], "first")[0].tolist() == [1.0, 1.0, 1.0]
    assert build_strategy(StrategyConfig(name="first")) is not None
    assert build_parser().parse_args(["cloud", "serve", "--strategy", "first"]).strategy == "first"
