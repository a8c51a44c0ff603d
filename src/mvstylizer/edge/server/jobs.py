"""The work a request hands to the worker pool: decode, stylize, encode, and keep opted-in frames."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException

from ... import wire
from ...models.registry import resolve_name
from ..store import FrameTooLarge, StoreFull
from .images import checked_decode, checked_size
from .runtime import ServerRuntime

log = logging.getLogger("mvstylizer.edge.server")  # one logger for the whole server package


def register_style(rt: ServerRuntime, body: bytes) -> str:
    if not body:
        raise HTTPException(400, "empty body; send the style photo's encoded bytes")
    why = f"style photos, memory budget {rt.limits.budget >> 20} MiB / {rt.limits.workers} workers"
    checked_size(body, "style", rt.limits.style_pixels(), rt.config.min_frame_side, why)
    # Decoded once, by the service, and only for a style it does not hold yet.
    return rt.service.register_style(
        body, lambda blob: checked_decode(blob, "style", rt.limits.style_pixels(), rt.config.min_frame_side, why))


@dataclass
class Run:
    """Consecutive frames of a batch, one :func:`stylize` job."""

    first: int  # index in the batch of blobs[0], for error messages
    blobs: list[bytes]


def runs(blobs: list[bytes], max_pixels: int) -> list[Run]:
    """The batch as runs of consecutive frames of at most ``max_pixels`` together (a larger frame
    alone), each one :func:`stylize` job: the scheduler serves other clients between two runs."""
    out: list[Run] = []
    pixels = max_pixels  # the first frame starts a run
    for i, blob in enumerate(blobs):
        w, h = wire.image_size(blob) or (0, 0)  # checked by frames_body: never None here
        if pixels + w * h > max_pixels:
            out.append(Run(i, []))
            pixels = 0
        out[-1].blobs.append(blob)
        pixels += w * h
    return out


def stylize(rt: ServerRuntime, run: Run, style_id: str, model: str, encoding: wire.Encoding,
            collect_for: str | None = None) -> tuple[bytes, int]:
    """Stylize a run of a batch (its headers already checked by :func:`.bodies.frames_body`); with
    ``collect_for`` (the client's name) also keep the decoded frames. Returns the packed results and
    how many were kept.
    """
    cfg = rt.config
    limit = rt.limits.frame_pixels(resolve_name(model))
    frames = [checked_decode(b, f"frame {i}", limit, cfg.min_frame_side) for i, b in enumerate(run.blobs, run.first)]
    results = rt.service.stylize(style_id, model, frames)
    rt.metrics.frames.labels(resolve_name(model).split(":", 1)[0]).inc(len(frames))
    kept = collect(rt, frames, collect_for) if collect_for is not None else 0
    return wire.pack_frames([wire.encode_frame(r, encoding) for r in results]), kept


def collect(rt: ServerRuntime, frames: list[np.ndarray], client: str) -> int:
    """Keep opted-in frames in the store; a store failure (disk full...) never fails the stylize call."""
    store = rt.store
    if store is None:
        return 0
    kept = 0
    for i, f in enumerate(frames):
        try:
            # decode_frame gives k/255 exactly, so this recovers the uploaded 8-bit pixels bit for bit.
            store.add((f * 255.0 + 0.5).astype(np.uint8), client)
            kept += 1
        except FrameTooLarge as e:  # this frame only: the batch's smaller frames are still kept
            log.warning("frame store %s: not keeping a frame of %s: %s", store.root, client, e)
        except StoreFull as e:
            log.warning("frame store %s: not keeping %d frame(s) of %s: %s", store.root, len(frames) - i, client, e)
            break
        except Exception as e:  # noqa: BLE001 - one line per failing insert, never a traceback per request
            log.warning("frame store %s: could not keep %d frame(s) of %s (%s: %s)", store.root,
                        len(frames) - i, client, type(e).__name__, e)
            break
    rt.metrics.frames_kept.inc(kept)
    with contextlib.suppress(Exception):
        rt.metrics.store_bytes.set(store.total_bytes)
    return kept
