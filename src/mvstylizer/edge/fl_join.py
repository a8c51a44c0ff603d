"""``mvstylizer edge fl-join``: run this edge as a Flower SuperNode of the cloud's federation.

The SuperNode (``flower-supernode``) connects out to the cloud's SuperLink, so the edge needs no open
port towards the cloud. Its node config carries ``data-dir``: the ClientApp
(:mod:`mvstylizer.edge.fl_client`) trains on the opt-in frames stored there and writes each new global
model to ``DATA_DIR/models/dncm.pt``, where ``mvstylizer edge serve --data-dir DATA_DIR`` swaps it in.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class JoinConfig:
    superlink: str  # HOST:PORT of the cloud's SuperLink
    data_dir: Path
    port: int = 9094  # the SuperNode's local runtime API (loopback; one per SuperNode on a machine)

    def __post_init__(self) -> None:
        host, sep, port = self.superlink.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise UserError(f"--superlink must be HOST:PORT, got {self.superlink!r}")
        if not 1 <= self.port <= 65535:
            raise UserError(f"--port must be 1..65535, got {self.port}")
        if not Path(self.data_dir).is_dir():
            raise UserError(f"--data-dir {self.data_dir} is not a folder")
        if any(c in str(Path(self.data_dir).resolve()) for c in "'\n\r"):
            raise UserError(f"--data-dir {self.data_dir}: Flower's node config cannot hold a path with a ' or a "
                            "line break; use another folder name")
        if not (Path(self.data_dir) / "index.sqlite").is_file():
            raise UserError(f"--data-dir {self.data_dir} holds no frame store; run `mvstylizer edge serve "
                            f"--data-dir {self.data_dir}` and let phones opt in first")


def supernode_command(cfg: JoinConfig) -> list[str]:
    from ..fl.flower import console_script

    # A TOML literal string: Flower reads the value as TOML, where a basic "..." string would turn a
    # Windows path's backslashes into escapes and could not hold a '"'. (JoinConfig refuses a "'".)
    data_dir = str(Path(cfg.data_dir).resolve())
    return [console_script("flower-supernode"), "--insecure", "--superlink", cfg.superlink,
            "--node-config", f"data-dir='{data_dir}'", "--port", str(cfg.port)]


def join(cfg: JoinConfig) -> int:
    """Run the SuperNode in the foreground until it exits or is interrupted; returns its exit status."""
    from ..fl.flower import flower_env, stop_process

    env = flower_env(Path(cfg.data_dir).resolve() / "flwr-home")
    proc = subprocess.Popen(supernode_command(cfg), env=env, start_new_session=True)
    print(f"flower-supernode (pid {proc.pid}) joining {cfg.superlink}; frames and models in {cfg.data_dir}",
          file=sys.stderr, flush=True)
    try:
        return proc.wait()
    finally:
        stop_process(proc)
