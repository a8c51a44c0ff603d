"""What the studio needs to know: where its work folder is, its limits, which edge to use."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


def binds_loopback(host: str) -> bool:
    """Whether listening on ``host`` serves this machine only, judged by the address it resolves to as
    the server binds it (the first one), not by its spelling: 127.0.0.2, 127.1 and localhost are
    loopback too, and were served as if open to the network (no DNS-rebinding check)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        return ipaddress.ip_address(infos[0][4][0]).is_loopback
    except (OSError, UnicodeError, ValueError, IndexError):
        return False


@dataclass
class StudioConfig:
    """Settings of one studio server (``mvstylizer studio`` flags map onto these).

    Args:
        workdir: the work folder; uploads, previews' sources and finished jobs live in
            ``workdir/sessions/<session>/``. Its ``sessions`` folder is emptied at start (sessions
            live in the server's memory, so files of a previous run belong to nobody).
        host, port: where to listen (port 0: any free port).
        edge: URL of a remote edge server (``mvstylizer edge serve``); None runs the models in
            this process, as ``mvstylizer stylize`` does.
        edge_token: the remote edge's bearer token.
        max_upload_bytes: largest video upload.
        max_video_pixels: largest video frame, in pixels (width x height, so either orientation of
            4K UHD fits the default); a render's memory grows with it, whatever the file's size.
        max_style_bytes: largest style photo upload.
        upload_idle_seconds: an upload that sends nothing for this long is dropped (408).
        max_uploads: uploads one session may have arriving at once (more: 429). Each holds up to
            4 MB (1/64 of a smaller work folder) ahead of what it has written, so without a bound
            one tab's slow uploads could hold all of the folder.
        max_style_pixels: largest style photo, in pixels (a small PNG can decode to gigabytes).
        decode_slots: uploads decoded at once (style photos, a video's probe and preview frames);
            the others wait, without holding a server thread. Each can take a few hundred MB.
        max_work_bytes: size limit of the work folder; the oldest finished jobs, then the oldest
            unused uploads, are removed to stay under it.
        ttl_seconds: files untouched for this long are removed (and idle sessions forgotten).
        max_sessions: sessions (browser tabs) at once; a new one beyond makes the studio forget the one
            idle longest, files and all.
        preview_cache_bytes: previews kept in memory, all sessions together (least recently used go).
        preview_frames: key frames stylized for a preview.
        preview_side: long side of the preview frames, pixels.
        max_waiting_previews: sessions whose preview may wait for its turn at once (previews run
            one at a time; a session has at most one waiting).
        max_queued: jobs one session may have queued or running at once.
        max_queued_total: jobs all sessions together may have queued or running (sessions cost
            nothing to make, so the per-session limit alone bounds nothing).
        max_finished_jobs: finished (done, failed, cancelled) jobs a session keeps; beyond, the one
            that finished first is forgotten, files and all (records of every render ever made were
            kept, and sent whole with every job list).
        crf, preset: H.264 settings of the rendered videos.
    """

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 8500
    edge: str | None = None
    edge_token: str | None = None
    max_upload_bytes: int = 500 * MB
    max_video_pixels: int = 3840 * 2160
    max_style_bytes: int = 40 * MB
    upload_idle_seconds: float = 60.0
    max_uploads: int = 3
    max_style_pixels: int = 50_000_000
    decode_slots: int = 2
    max_work_bytes: int = 5000 * MB
    ttl_seconds: float = 24 * 3600.0
    max_sessions: int = 500
    preview_cache_bytes: int = 64 * MB
    preview_frames: int = 4
    preview_side: int = 640
    max_waiting_previews: int = 16
    max_queued: int = 8
    max_queued_total: int = 16
    max_finished_jobs: int = 50
    crf: int = 18
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        if self.max_upload_bytes < 1 or self.max_style_bytes < 1 or self.max_work_bytes < 1:
            raise ValueError("upload and work-folder limits must be positive")
        if self.max_upload_bytes > self.max_work_bytes:
            raise ValueError("the upload limit cannot be larger than the work-folder limit")
        if not 1 <= self.preview_frames <= 8:
            raise ValueError(f"preview_frames must be 1..8, got {self.preview_frames}")
        if not 64 <= self.preview_side <= 2048:
            raise ValueError(f"preview_side must be 64..2048, got {self.preview_side}")
        if self.max_video_pixels < 1 or self.max_style_pixels < 1:
            raise ValueError("pixel limits must be positive")
        if not self.upload_idle_seconds > 0:
            raise ValueError(f"upload_idle_seconds must be > 0, got {self.upload_idle_seconds}")
        if self.ttl_seconds <= 0 or self.max_queued < 1 or self.decode_slots < 1 or self.max_uploads < 1:
            raise ValueError("ttl_seconds, max_queued, decode_slots and max_uploads must be positive")
        if self.max_sessions < 1 or self.preview_cache_bytes < 1 or self.max_waiting_previews < 1:
            raise ValueError("max_sessions, preview_cache_bytes and max_waiting_previews must be positive")
        if self.max_finished_jobs < 1:
            raise ValueError(f"max_finished_jobs must be positive, got {self.max_finished_jobs}")
        if self.max_queued_total < self.max_queued:
            raise ValueError("max_queued_total cannot be smaller than max_queued")
