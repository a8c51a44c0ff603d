"""``mvstylizer edge fl-join``: run this edge as a Flower SuperNode of the cloud's federation.

The SuperNode (``flower-supernode``) connects out to the cloud's SuperLink, so the edge needs no open
port towards the cloud. Its node config carries ``data-dir``: the ClientApp
(:mod:`mvstylizer.edge.fl_client`) trains on the opt-in frames stored there and writes each new global
model to ``DATA_DIR/models/dncm.pt``, where ``mvstylizer edge serve --data-dir DATA_DIR`` swaps it in.

Everything that would only fail inside Flower is refused here first, as one line: a SuperLink address
Flower cannot reach by construction (a host with spaces, a port that is not ASCII digits), a folder
name Flower's node config cannot carry (a ``'`` or a control character), and a frame store the
ClientApp could not train on (unreadable, or fewer than :data:`MIN_FRAMES` frames). A SuperLink that
does not answer is retried for at most ``max_wait`` seconds per connection attempt (Flower's
``--max-wait-time``), then the SuperNode exits: it never retries forever.
"""

from __future__ import annotations

import ipaddress
import math
import re
import sqlite3
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MIN_FRAMES = 2  # the ClientApp holds one frame out and trains on the rest (fl.local.split_held_out)
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")  # one DNS label (RFC 1123; "_" too, as in container names)


def _check_host(host: str) -> None:
    """A DNS name, an IPv4 address, or an IPv6 address in brackets; anything else raises UserError."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
            return
        except ValueError:
            raise UserError(f"--superlink host {host} is not an IPv6 address") from None
    if "://" in host:  # a URL: the SuperLink's address is HOST:PORT alone (its gRPC has no scheme)
        raise UserError(f"--superlink takes HOST:PORT, without a scheme: not {host.partition('://')[0]}://")
    if ":" in host:
        raise UserError(f"--superlink host {host!r}: write an IPv6 address in brackets, e.g. [::1]:9092")
    name = host[:-1] if host.endswith(".") else host
    if not (name.isascii() and len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))):
        raise UserError(f"--superlink host {host!r} is not a host name or an IP address")


@dataclass(frozen=True)
class JoinConfig:
    superlink: str  # HOST:PORT of the cloud's SuperLink
    data_dir: Path
    port: int = 9094  # the SuperNode's local runtime API (loopback; one per SuperNode on a machine)
    max_wait: float = 600.0  # seconds Flower retries an unanswered SuperLink before the SuperNode exits

    def __post_init__(self) -> None:
        host, sep, port = self.superlink.rpartition(":")
        if not sep or not host or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise UserError(f"--superlink must be HOST:PORT with a port 1..65535, got {self.superlink!r}")
        if host.startswith("[") != host.endswith("]"):  # "[::1" split at its last ':' read as host '[:'
            raise UserError(f"--superlink {self.superlink!r}: an IPv6 address goes in brackets, e.g. [::1]:9092")
        _check_host(host)
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise UserError(f"--port must be 1..65535, got {self.port}")
        if not (isinstance(self.max_wait, (int, float)) and math.isfinite(self.max_wait) and self.max_wait > 0):
            raise UserError(f"the SuperLink wait must be a number of seconds > 0, got {self.max_wait!r}")
        if not Path(self.data_dir).is_dir():
            raise UserError(f"--data-dir {self.data_dir} is not a folder")
        resolved = str(Path(self.data_dir).resolve())
        # A TOML literal string ('...') holds no ' and no control character (a tab aside: refused too,
        # as is any other control character Flower's log lines would print raw).
        if "'" in resolved or any(unicodedata.category(c) == "Cc" for c in resolved):
            raise UserError(f"--data-dir {self.data_dir!r}: Flower's node config cannot hold a path with a ' or a "
                            "control character (such as a line break); use another folder name")
        if not (Path(self.data_dir) / "index.sqlite").is_file():
            raise UserError(f"--data-dir {self.data_dir} holds no frame store; run `mvstylizer edge serve "
                            f"--data-dir {self.data_dir}` and let phones opt in first")


def stored_frames(data_dir: Path, enough: int = MIN_FRAMES) -> int:
    """How many frames of the store in ``data_dir`` have a file that decodes, counted up to ``enough``
    (a store of damaged files passed, and the ClientApp then failed inside Flower with a traceback). The
    index is opened read-only (the edge server owns it); one that is not a frame store raises UserError."""
    index = Path(data_dir).resolve() / "index.sqlite"
    try:
        db = sqlite3.connect(f"{index.as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            ids = [row[0] for row in db.execute("SELECT id FROM frames ORDER BY seq")]
        finally:
            db.close()
    except sqlite3.Error as e:
        raise UserError(f"--data-dir {data_dir}: {index.name} is not a readable frame store ({e}); run "
                        f"`mvstylizer edge serve --data-dir {data_dir}` to make one") from None
    import cv2

    found = 0
    for fid in ids:
        path = Path(index.parent) / "frames" / f"{fid}.png"
        if isinstance(fid, str) and path.is_file() and cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8) is not None:
            found += 1
            if found >= enough:
                break
    return found


def check_store(cfg: JoinConfig) -> None:
    """Refuse a frame store the ClientApp could not train on, before the SuperNode joins."""
    found = stored_frames(Path(cfg.data_dir))
    if found < MIN_FRAMES:
        raise UserError(f"--data-dir {cfg.data_dir} has {found} stored frame(s); training needs at least "
                        f"{MIN_FRAMES} (one to train, one held out): let phones opt in (stylize --contribute) first")


def supernode_command(cfg: JoinConfig) -> list[str]:
    from ..fl.flower import console_script

    # A TOML literal string: Flower reads the value as TOML, where a basic "..." string would turn a
    # Windows path's backslashes into escapes and could not hold a '"'. (JoinConfig refuses a "'".)
    data_dir = str(Path(cfg.data_dir).resolve())
    return [console_script("flower-supernode"), "--insecure", "--superlink", cfg.superlink,
            "--node-config", f"data-dir='{data_dir}'", "--port", str(cfg.port),
            "--max-wait-time", f"{cfg.max_wait:g}"]


def join(cfg: JoinConfig) -> int:
    """Run the SuperNode in the foreground until it exits or is interrupted; returns its exit status."""
    from ..fl.flower import check_port_free, flower_env, stop_process

    check_store(cfg)
    check_port_free("127.0.0.1", cfg.port)  # the SuperNode's runtime API; taken, it failed with a traceback
    env = flower_env(Path(cfg.data_dir).resolve() / "flwr-home")
    proc = subprocess.Popen(supernode_command(cfg), env=env, start_new_session=True)
    print(f"flower-supernode (pid {proc.pid}) joining {cfg.superlink}; frames and models in {cfg.data_dir}",
          file=sys.stderr, flush=True)
    try:
        rc = proc.wait()
    finally:
        stop_process(proc)
    if rc != 0:
        print(f"error: flower-supernode exited with status {rc} (its log is above); the SuperLink at "
              f"{cfg.superlink} may be unreachable (retried for {cfg.max_wait:g} s)", file=sys.stderr, flush=True)
    return rc
