"""Which runtime runs each edge model faster on this machine: PyTorch or onnxruntime.

Times ``stylize`` (the model call on one frame, style statistics prepared beforehand) at the key-frame
size and at 1080p, median of several runs, each runtime side by side in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import cv2
import numpy as np

from ..models.registry import available_models, create_model
from ..video.image import read_image
from ..video.media import package_media

SIZES = {"key 512x288": (512, 288), "1080p": (1920, 1080)}


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls allocate and, for onnxruntime, pick kernels
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run_runtime(repeats: int = 5) -> dict:
    content = read_image(package_media("astronaut.png"))
    style = read_image(package_media("coffee.png"))
    rows: list[dict[str, Any]] = []
    for spec in available_models():
        if len(spec.runtimes) < 2:
            continue
        for runtime in spec.runtimes:
            model = create_model(f"{spec.name}:{runtime}")
            state = model.prepare_style(style)
            row: dict[str, Any] = {"model": spec.name, "runtime": runtime}
            for label, (w, h) in SIZES.items():
                frame = cv2.resize(content, (w, h), interpolation=cv2.INTER_AREA)
                row[f"ms {label}"] = round(1000 * _median_seconds(partial(model.stylize, frame, state), repeats), 1)
            rows.append(row)
    key_size = f"ms {next(iter(SIZES))}"  # the first size is the key frames'
    fastest = {}
    for name in {r["model"] for r in rows}:
        mine = [r for r in rows if r["model"] == name]
        fastest[name] = min(mine, key=lambda r: r[key_size])["runtime"]
    return {"repeats": repeats, "rows": rows, "fastest_at_key_size": fastest}
