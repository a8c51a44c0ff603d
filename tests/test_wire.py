"""The transport codec registry (``wire.CODECS``): every entry round-trips, reads its own header, and is
what the edge offers, so adding a codec is one entry."""

from __future__ import annotations

import numpy as np
import pytest

from mvstylizer import wire


@pytest.mark.parametrize("name", sorted(wire.CODECS))
def test_every_codec_round_trips_and_reads_its_own_header(name):
    y, x = np.mgrid[0:21, 0:34]
    frame = np.stack([x * 7, y * 12, x * 3 + y * 5], axis=-1).astype(np.uint8)  # smooth: lossy codecs keep it
    blob = wire.encode_frame(frame, wire.Encoding(name, 100))
    codec = wire.CODECS[name]
    assert wire.codec_of(blob) is codec
    assert codec.image_size(blob) == wire.image_size(blob) == (34, 21)
    assert all(other.image_size(blob) is None for other in wire.CODECS.values() if other is not codec)
    back = wire.decode_frame(blob)
    assert back.shape == frame.shape and back.dtype == np.float32
    assert np.abs(back * 255 - frame).mean() < 8


def test_unknown_bytes_and_formats_are_refused():
    assert wire.codec_of(b"GIF89a" + b"\0" * 40) is None and wire.image_size(b"") is None
    with pytest.raises(ValueError, match="not a decodable image"):
        wire.decode_frame(b"GIF89a" + b"\0" * 40)
    with pytest.raises(ValueError, match="unknown frame encoding 'gif'"):
        wire.Encoding("gif")


def test_the_edge_offers_exactly_the_registry():
    pytest.importorskip("fastapi")
    from mvstylizer.edge.server.app import create_app
    from mvstylizer.edge.service import EdgeService

    spec = create_app(EdgeService()).openapi()
    encoding = next(p for p in spec["paths"]["/v1/stylize"]["post"]["parameters"] if p["name"] == "encoding")
    assert encoding["schema"]["enum"] == list(wire.CODECS)
    style_types = spec["paths"]["/v1/styles"]["post"]["requestBody"]["content"]
    assert list(style_types) == [c.media_type for c in wire.CODECS.values()]
