"""``mvstylizer cloud serve``: a Flower SuperLink plus our ServerApp, as one command.

What it does, all with Flower's own tools:

1. writes a Flower app folder (``STATE/app/pyproject.toml``) whose components are
   ``mvstylizer.cloud.server_app:app`` and ``mvstylizer.edge.fl_client:app`` and whose run config is
   this command's settings (:class:`~mvstylizer.cloud.server_app.CloudConfig`), and a Flower config
   (``STATE/flwr-home/config.toml``) naming this SuperLink;
2. starts ``flower-superlink`` (runtime dependency installation disabled: everything the apps need is
   already installed, and the machines may be offline);
3. submits the run with ``flwr run``, then follows it with ``flwr ls`` and the model registry until it
   ends, and stops the SuperLink it started (by its process group, which is its PID).

The registry (``STATE/registry``) holds every completed round, so running the same command again
after a crash or a stop resumes from the last completed round.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from ..errors import UserError
from ..files import atomic_write_text, lock_folder
from ..fl.flower import check_port_free, console_script, flower_env, stop_process
from .registry import ModelRegistry
from .server_app import CloudConfig

log = logging.getLogger("mvstylizer.cloud")

CONNECTION = "mvstylizer-cloud"


@dataclass
class ServeConfig:
    state_dir: Path = Path("fl-cloud")
    host: str = "127.0.0.1"  # where the SuperLink listens (0.0.0.0 for edges on other machines)
    port: int = 9092  # one HTTP port for the Fleet (edges), Control (flwr run) and Runtime APIs
    cloud: CloudConfig = field(default_factory=CloudConfig)
    registry: Path | None = None  # default: STATE/registry (cloud.registry is set from this)
    poll_s: float = 3.0
    start_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise UserError(f"--port must be 1..65535, got {self.port}")


def write_app(app_dir: Path, cloud: CloudConfig) -> Path:
    """The Flower app folder ``flwr run`` bundles (a FAB): only a pyproject, the code is installed."""
    app_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": "mvstylizer-fl", "version": "1.0.0", "license": "MIT", "dependencies": [],
                    "description": "mvstylizer: federated retraining of the edge style-transfer model"},
        "tool": {"flwr": {"app": {
            "publisher": "mvstylizer",
            "components": {"serverapp": "mvstylizer.cloud.server_app:app",
                           "clientapp": "mvstylizer.edge.fl_client:app"},
            "config": cloud.to_run_config(),
        }}},
    }
    path = app_dir / "pyproject.toml"
    atomic_write_text(path, tomli_w.dumps(doc))
    return path


def write_flower_config(home: Path, address: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    doc = {"superlink": {"default": CONNECTION, CONNECTION: {"address": address, "insecure": True}}}
    atomic_write_text(home / "config.toml", tomli_w.dumps(doc))


def control_address(host: str, port: int) -> tuple[str, str]:
    """(host this machine reaches the SuperLink on, Flower's ``HOST:PORT`` for it): a wildcard --host is
    reached on loopback, and an IPv6 address goes in brackets (unbracketed, Flower read ``::1:9092`` as a
    bad port)."""
    near = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return near, (f"[{near}]:{port}" if ":" in near else f"{near}:{port}")


def wait_for_port(host: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the Flower process exited with status {proc.returncode} before listening on "
                            f"{host}:{port}; see its log")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.3)
    raise UserError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def _flwr(args: list[str], env: dict[str, str], cwd: Path) -> dict:
    out = subprocess.run([console_script("flwr"), *args, "--format", "json"], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    text = out.stdout.strip()
    try:
        return json.loads(text[text.index("{"):]) if "{" in text else {}
    except ValueError:
        raise UserError(f"flwr {' '.join(args)} failed: {(out.stderr or text).strip()[-400:]}") from None


def serve(cfg: ServeConfig, echo: Callable[[str], None] = print) -> dict:
    """Run the SuperLink and the federation to ``cfg.cloud.num_rounds`` rounds; returns the run's summary."""
    state = cfg.state_dir.resolve()
    cloud = cfg.cloud
    cloud.registry = str(Path(cfg.registry).resolve() if cfg.registry else state / "registry")
    registry_dir = Path(cloud.registry)
    for flag, folder, made in (("--state-dir", state, state), ("--registry", registry_dir, registry_dir / "rounds")):
        try:
            made.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file of that name, no permission
            raise UserError(f"{flag} {folder} cannot be used as a folder: {e.strerror or e}") from None
    # Two clouds on one state folder rewrote each other's Flower config, and the first then polled a
    # dead SuperLink for ever.
    lock = lock_folder(state, f"--state-dir {state} is in use by another running cloud; wait for it or give "
                              "another folder")
    try:
        return _serve(cfg, state, registry_dir, echo)
    finally:
        if lock is not None:
            lock.close()


def _serve(cfg: ServeConfig, state: Path, registry_dir: Path, echo: Callable[[str], None]) -> dict:
    cloud = cfg.cloud
    registry = ModelRegistry(registry_dir)
    done = registry.latest()
    if done is not None and done.round >= cloud.num_rounds:
        echo(f"the registry {cloud.registry} already holds {done.round} rounds (>= {cloud.num_rounds}); nothing to do")
        return {"status": "finished:completed", "rounds": registry.rounds()}
    if done is not None:
        registry.verify(done.round)
        echo(f"resuming after round {done.round} from {done.path}")
    check_port_free(cfg.host, cfg.port)  # before the app and config are written: a wrong --host or --port
    home, app_dir = state / "flwr-home", state / "app"
    near, control = control_address(cfg.host, cfg.port)
    write_app(app_dir, cloud)
    write_flower_config(home, control)
    env = flower_env(home)
    log_path = state / "superlink.log"
    with open(log_path, "ab") as log_file:
        link = subprocess.Popen(
            [console_script("flower-superlink"), "--insecure", "--host", cfg.host, "--port", str(cfg.port),
             "--disable-runtime-dependency-installation"],
            env=env, cwd=state, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(near, cfg.port, link, cfg.start_timeout_s)
        echo(f"SuperLink on {cfg.host}:{cfg.port} (pid {link.pid}, log {log_path}); "
             f"edges join with: mvstylizer edge fl-join --superlink HOST:{cfg.port} --data-dir DIR")
        started = _flwr(["run", str(app_dir), CONNECTION], env, state)
        run_id = started.get("run-id")
        if not run_id:
            raise UserError(f"flwr run did not start a run: {started}")
        echo(f"run {run_id}: {cloud.num_rounds} rounds, strategy {cloud.strategy.name}, "
             f"registry {cloud.registry}")
        seen = set(registry.rounds())
        status = ""
        # Flower waits for --min-edges SuperNodes without a limit and says so only in its own log: an
        # edge gone for good left the operator before a silent terminal.
        quiet_since = time.monotonic()
        while not status.startswith("finished"):
            time.sleep(cfg.poll_s)
            if time.monotonic() - quiet_since > cloud.round_timeout:
                quiet_since = time.monotonic()
                echo(f"no round stored for {cloud.round_timeout:g} s: a round starts once "
                     f"{cloud.strategy.min_available_nodes} edges are connected (the SuperLink waits for them "
                     f"without a limit; Ctrl-C stops, the same command resumes)")
            if link.poll() is not None:
                raise UserError(f"the SuperLink exited (status {link.returncode}); see {log_path}")
            runs = _flwr(["ls", CONNECTION, "--run-id", str(run_id)], env, state).get("runs", [])
            status = runs[0]["status"] if runs else ""
            for rnd in registry.rounds():
                if rnd not in seen:
                    seen.add(rnd)
                    quiet_since = time.monotonic()
                    ev = registry.entry(rnd).metrics.get("evaluate", {})
                    extra = f": held-out loss {ev['loss']:.5f}, PSNR {ev['psnr']:.2f} dB" if "loss" in ev else ""
                    echo(f"round {rnd} stored{extra}")
        echo(f"run {run_id} {status}; registry holds rounds {registry.rounds()}")
        if status != "finished:completed":
            raise UserError(f"run {run_id} ended as {status}; rerun the same command to resume from the "
                            f"last completed round (see {log_path})")
        return {"status": status, "run_id": run_id, "rounds": registry.rounds()}
    finally:
        stop_process(link)
