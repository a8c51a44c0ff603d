"""The transport codec registry (``wire.CODECS``): every entry round-trips, reads its own header, and is
what the edge offers, so adding a codec is one entry."""

from __future__ import annotations

import cv2
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


def _progressive_jpeg(side: int = 64) -> bytes:
    flat = np.full((side, side, 3), 128, np.uint8)
    return cv2.imencode(".jpg", flat, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()


def _scan_bomb(total_scans: int, side: int = 64) -> bytes:
    """A progressive JPEG whose last scan is repeated until it has ``total_scans``: libjpeg decodes it,
    one pass over the whole image per scan (1024 px, 10,000 scans: 5.5 s for a 126 KB file)."""
    blob = _progressive_jpeg(side)
    scans = blob.count(b"\xff\xda")  # no payload of an OpenCV-made JPEG holds these bytes
    last = blob.rindex(b"\xff\xda")
    return blob[:last] + blob[last:-2] * (total_scans - scans + 1) + blob[-2:]


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding():
    assert wire.decode_frame(_scan_bomb(wire.MAX_JPEG_SCANS)).shape == (64, 64, 3)  # at the limit: decoded
    bomb = _scan_bomb(wire.MAX_JPEG_SCANS + 1)
    assert wire.image_size(bomb) == (64, 64)  # the header alone looks like any frame
    with pytest.raises(wire.TooCostly, match=f"more than {wire.MAX_JPEG_SCANS} scans"):
        wire.decode_frame(bomb)
    blob = _progressive_jpeg()
    comments = b"\xff\xfe\x00\x02" * wire.MAX_JPEG_SEGMENTS  # a walk of thousands of empty segments is refused too
    with pytest.raises(wire.TooCostly, match="marker segments"):
        wire.decode_frame(blob[:2] + comments + blob[2:])


def test_scans_are_counted_by_segment_not_by_bytes():
    blob = _progressive_jpeg()
    # An application segment full of start-of-scan bytes (an EXIF thumbnail holds real ones) is skipped
    # by its length, so it does not count.
    payload = b"\xff\xda" * 200
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    assert wire.decode_frame(blob[:2] + app1 + blob[2:]).shape == (64, 64, 3)


def test_a_jpeg_with_an_orientation_tag_decodes_as_stored():
    # A frame's answer has its size as the header says: the decoder turned a tagged 64x32 JPEG to 32x64.
    import io

    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 64, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to show
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    data = buf.getvalue()
    assert wire.image_size(data) == (64, 32)
    assert wire.decode_frame(data).shape == (32, 64, 3)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _png_with(*chunks: bytes) -> bytes:
    """A 64x64 PNG carrying ``chunks`` right after its IHDR, where a text chunk may stand."""
    blob = wire.encode_frame(np.full((64, 64, 3), 128, np.uint8), wire.Encoding("png"))
    return blob[:33] + b"".join(chunks) + blob[33:]


def _no_decoding(*args):
    raise AssertionError("the image was handed to the decoder")


def test_a_png_of_many_text_chunks_is_refused_before_decoding(monkeypatch):
    import zlib

    # Each zTXt chunk costs libpng up to ~8 MB of inflating, whatever the image's size: ~1000 of them
    # in a 64x64 PNG took 6-40 s to decode.
    ztxt = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * 100_000, 9))
    assert wire.decode_frame(_png_with(ztxt * wire.MAX_PNG_TEXT_CHUNKS)).shape == (64, 64, 3)
    bomb = _png_with(_png_chunk(b"tEXt", b"a\x00b"), ztxt * wire.MAX_PNG_TEXT_CHUNKS)
    assert wire.image_size(bomb) == (64, 64)  # the header alone looks like any frame
    monkeypatch.setattr(cv2, "imdecode", _no_decoding)
    with pytest.raises(wire.TooCostly, match=f"more than {wire.MAX_PNG_TEXT_CHUNKS} text"):
        wire.decode_frame(bomb)


def test_a_png_of_too_much_compressed_metadata_is_refused_before_decoding(monkeypatch):
    noise = np.random.default_rng(0).bytes(wire.MAX_PNG_COMPRESSED_METADATA)  # does not compress
    bomb = _png_with(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + noise))
    monkeypatch.setattr(cv2, "imdecode", _no_decoding)
    with pytest.raises(wire.TooCostly, match="KiB of compressed metadata"):
        wire.decode_frame(bomb)


def test_png_chunks_are_counted_by_header_not_by_bytes():
    # Chunk data full of chunk names (a text chunk about PNGs, an IDAT's compressed bytes) is skipped
    # by its length, so it does not count.
    assert wire.decode_frame(_png_with(_png_chunk(b"tEXt", b"c\x00" + b"zTXt" * 1000))).shape == (64, 64, 3)
