"""Memory admission for the edge server: a budget, a measured cost per megapixel per
model and runtime, and the pixel limits that follow from them.

A request's memory is not bounded by its size: a 633-byte JPEG may claim 4096x4096 pixels (libjpeg
fills in the missing data), and a model's working memory grows with the pixels it runs on. So the edge
admits work by *decoded* size, read from the image header before a pixel is decoded
(:func:`mvstylizer.wire.image_size`), against per-model limits:

    per-worker budget  B = memory_budget / workers
    a batch fits if     HOLD * batch pixels + cost(model) * its largest frame's pixels <= B
    so pixels per image <= B / (cost(model) + HOLD)    (and <= ServerConfig.max_frame_pixels)

(frames of a batch are stylized one after the other by one worker, while all of them and their
results are held: ``HOLD_BYTES_PER_PIXEL``).

``cost(model)`` is the peak resident-memory growth of one worker stylizing one frame, per pixel,
measured with ``python -m mvstylizer.edge.memory`` (a fresh process per model and size: build the
model, prepare a style, warm up on a small frame, then decode + stylize + encode one frame of N Mpx
and read the peak RSS from ``getrusage``). The table below is what that command printed on the
development machine (x86-64, 2 cores, torch 2.13 CPU, onnxruntime); the figure used is the larger of
the two measured sizes' ratios, rounded up, so it includes the fixed part of a request.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from dataclasses import dataclass

MIB = 1024 * 1024
MPX = 1_000_000

# Bytes per pixel of peak RSS growth, per "model:runtime", measured by
#   python -m mvstylizer.edge.memory          (prints the table; ~1 min on 2 cores)
# (frames 512x512 and 1024x1024; regions, dncm:torch, mk, reinhard also 2048x2048). Measured B/px:
#   model:runtime    512^2  1024^2  2048^2   used
#   regions:numpy      537     444     416    600
#   wct2:torch        2001    1614       -   2100
#   wct2:onnx         2827    2969       -   3000
#   dncm:torch         143     138      66    200
#   dncm:onnx          114      85       -    200
#   mk:numpy            75      22      63    100
#   reinhard:numpy      51      30      64    100
COST_BYTES_PER_PIXEL: dict[str, int] = {
    "regions:numpy": 600,
    "wct2:torch": 2100,
    "wct2:onnx": 3000,
    "dncm:torch": 200,
    "dncm:onnx": 200,
    "mk:numpy": 100,
    "reinhard:numpy": 100,
}
# The smallest per-frame limit an edge may start with: the phone's key frames are 512 pixels on their
# long side by default (PipelineConfig.key_size), so a square video's are 512x512. Below it the edge
# would start and refuse every frame (`--memory-budget 8`, its unit forgotten: "at most 1 pixels").
MIN_USABLE_FRAME_PIXELS = 512 * 512
UNKNOWN_COST = 4000  # bytes/pixel assumed for a model missing from the table (above every measured one)
STYLE_BYTES_PER_PIXEL = 64  # decoding a style photo (uint8 + float32 + colour conversion), then shrunk
HOLD_BYTES_PER_PIXEL = 40  # a batch's decoded frames (float32) and results (float32) + encoded output


def total_memory() -> int:
    """Physical memory of this machine, or the cgroup (container) limit if that is smaller."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def default_budget() -> int:
    """Half the machine's (or container's) memory: the rest is for the models, the OS and the page cache."""
    return total_memory() // 2


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5GiB', '1000000000' -> bytes (binary units)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1024, "M": MIB, "G": 1024 * MIB, "T": 1024**4}.get(t[-1:] or "", 1)
    num = t[:-1] if t[-1:] in ("K", "M", "G", "T") else t
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"not a memory size: {text!r} (e.g. 8G, 512M)") from None
    if not value > 0:
        raise ValueError(f"memory size must be > 0, got {text!r}")
    # "inf", "1e309" and "1e308G" parse as floats but have no whole number of bytes (int() overflows).
    if not math.isfinite(value * mult):
        raise ValueError(f"not a memory size: {text!r} (too large; e.g. 8G, 512M)")
    return int(value * mult)


def cost_per_pixel(model: str) -> int:
    """Measured bytes per pixel for a canonical ``name:runtime`` (UNKNOWN_COST if not measured)."""
    return COST_BYTES_PER_PIXEL.get(model) or UNKNOWN_COST


@dataclass(frozen=True)
class MemoryLimits:
    """Pixel limits derived from a memory budget shared by ``workers`` worker threads."""

    budget: int
    workers: int
    max_frame_pixels: int  # the server's absolute cap (ServerConfig.max_frame_pixels)
    max_batch_pixels: int  # likewise for a batch

    @property
    def per_worker(self) -> int:
        return self.budget // self.workers

    def frame_pixels(self, model: str) -> int:
        """Most pixels one frame may have for ``model`` (canonical name:runtime)."""
        return max(1, min(self.max_frame_pixels, self.per_worker // (cost_per_pixel(model) + HOLD_BYTES_PER_PIXEL)))

    def batch_fits(self, model: str, pixels: int, largest: int) -> bool:
        """Whether a batch of ``pixels`` in all, ``largest`` in its biggest frame, fits one worker's share."""
        return (pixels <= self.max_batch_pixels
                and pixels * HOLD_BYTES_PER_PIXEL + largest * cost_per_pixel(model) <= self.per_worker)

    def style_pixels(self) -> int:
        return max(1, min(self.max_frame_pixels, self.per_worker // STYLE_BYTES_PER_PIXEL))

    def describe(self, model: str) -> str:
        return (f"{self.frame_pixels(model)} pixels per frame ({self.frame_pixels(model) / MPX:.2f} Mpx) for "
                f"model {model}: memory budget {self.budget // MIB} MiB / {self.workers} workers / "
                f"{cost_per_pixel(model)} bytes per pixel")


# ---------------------------------------------------------------- measurement


def _rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def probe(model: str, width: int, height: int) -> dict:
    """In this (fresh) process: peak RSS growth of decode + stylize + encode of one width x height frame."""
    import numpy as np

    from .. import wire
    from .service import EdgeService

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.clip(np.stack([0.5 + 0.4 * np.sin(xx / (9 + 4 * c) + yy / (13 + 3 * c)) for c in range(3)], -1)
                    + rng.normal(0, 0.02, (height, width, 3)), 0, 1).astype(np.float32)
    blob = wire.encode_frame(frame)
    del frame, yy, xx
    style = wire.encode_frame(rng.uniform(0, 1, (256, 320, 3)).astype(np.float32), wire.Encoding("png"))
    service = EdgeService()
    sid = service.register_style(style)
    warm = wire.encode_frame(np.full((64, 64, 3), 0.5, np.float32))
    service.stylize(sid, model, [wire.decode_frame(warm)])  # model built, style prepared, runtimes warm
    base = _rss_now()
    before_peak = _rss_peak()
    t0 = time.perf_counter()
    out = service.stylize(sid, model, [wire.decode_frame(blob)])
    wire.encode_frame(out[0])
    seconds = time.perf_counter() - t0
    peak = max(_rss_peak(), before_peak)
    return {"model": model, "width": width, "height": height, "base_rss": base,
            "growth": max(0, peak - base), "seconds": seconds}


def measure(models: list[str], sides: tuple[int, ...] = (512, 1024)) -> list[dict]:
    """Run :func:`probe` in a fresh process per model and square frame side; prints a table."""
    import json
    import subprocess

    rows = []
    for model in models:
        for side in sides:
            out = subprocess.run([sys.executable, "-m", "mvstylizer.edge.memory", "--probe", model, str(side),
                                  str(side)], capture_output=True, text=True, timeout=1800)
            if out.returncode != 0:
                print(f"{model} {side}x{side}: failed: {out.stderr.strip()[-300:]}", flush=True)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["bytes_per_pixel"] = row["growth"] / (side * side)
            rows.append(row)
            print(f"{model:16s} {side}x{side}: +{row['growth'] / MIB:8.1f} MiB peak RSS "
                  f"({row['bytes_per_pixel']:7.0f} B/px, {row['growth'] / MIB / (side * side / MPX):7.1f} MiB/Mpx) "
                  f"base {row['base_rss'] / MIB:.0f} MiB, {row['seconds']:.1f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    import json

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--probe"]:
        print(json.dumps(probe(args[1], int(args[2]), int(args[3]))))
        return 0
    models = args or list(COST_BYTES_PER_PIXEL)
    measure(models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
