"""Swap a new global model into a running edge server, without failing a request.

``mvstylizer edge fl-join`` writes each global model it receives to ``DATA_DIR/models/dncm.pt``
(atomically: temp file + rename). :class:`ModelWatcher` polls that file's mtime/size from a daemon
thread; when it changes it

0. checks the file: its sha256 must be the one recorded next to it (``models/dncm.json``, written
   by ``fl_client.publish_model`` after checking the parameters against the hash the cloud sent and
   its registry records), and it must load with torch's weights-only unpickler (tensors and plain
   data: a pickle that would run code is refused without running it);
1. copies the file to a content-addressed snapshot (``models/serving/dncm-<sha>.pt``), so the
   stylizers below read one fixed file even if a newer model lands meanwhile (the ONNX export cache is
   keyed by the weights' bytes, and must see the same bytes as the export);
2. builds the new stylizers completely (torch and ONNX runtimes of ``dncm``), off the request path;
3. swaps each into the :class:`~mvstylizer.edge.service.EdgeService` under its lock
   (:meth:`EdgeService.swap_model`), which also drops the style states prepared with the old model.

A request already running keeps the stylizer object it started with and finishes on the old model;
the next request gets the new one. A refused or broken file is logged in one line and skipped, and
the old model keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes
from ..fl.model_file import MODEL_FILE
from ..models.safeload import UnsafeModelFile, load_pt, sha256_file

log = logging.getLogger("mvstylizer.edge.model_sync")

SERVING_DIR = Path("models") / "serving"
KEEP_SNAPSHOTS = 3  # older snapshots are deleted; in-flight requests hold their model in memory


def _build_dncm(weights: Path) -> dict[str, Any]:
    """Both runtimes of the dncm model on ``weights`` (registry names -> stylizer objects)."""
    from ..models.dncm import DNCMOnnxStylizer, DNCMStylizer

    return {"dncm:torch": DNCMStylizer(weights=weights), "dncm:onnx": DNCMOnnxStylizer(weights=weights)}


@dataclass
class SyncConfig:
    data_dir: Path
    interval_s: float = 2.0  # how often the model file is checked (a stat call: cheap)


class ModelWatcher:
    """Polls ``DATA_DIR/models/dncm.pt`` and swaps new versions into ``service``."""

    def __init__(self, service: Any, config: SyncConfig,
                 build: Callable[[Path], dict[str, Any]] = _build_dncm) -> None:
        self.service = service
        self.config = config
        self.build = build
        self.path = Path(config.data_dir) / MODEL_FILE
        self.stamp = self.path.with_suffix(".json")  # {"digest", "sha256", "round"} from fl_client
        self.current: str | None = None  # sha256 of the model now serving
        self.swaps = 0
        self.refused = 0  # files refused (hash mismatch, not weights-only, failed to build)
        self._seen: tuple[Any, ...] | None = None
        self._mismatch: str | None = None  # a file whose hash did not match at the last check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelWatcher:
        if self._thread is None:
            try:
                self.check()  # a model already there serves from the first request on
            except Exception:  # noqa: BLE001 - e.g. a full disk: serve the shipped model, retry in the loop
                log.exception("model sync: first check failed; serving the shipped model meanwhile")
            self._thread = threading.Thread(target=self._loop, name="model-sync", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.config.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad model file
                log.exception("model sync: check failed; still serving the previous model")

    def check(self) -> bool:
        """Swap in the model file if it changed since the last check; True if a swap happened.

        Refused (one log line, the previous model keeps serving): a file whose sha256 is not the one
        recorded in the stamp ``models/dncm.json`` (written by ``fl_client.publish_model`` with the
        hash the cloud sent), and a file torch cannot load as weights only (code, foreign objects).
        """
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        try:
            sst = self.stamp.stat()
            stamp_seen: tuple[float, int] | None = (sst.st_mtime, sst.st_size)
        except FileNotFoundError:
            stamp_seen = None
        seen = (st.st_mtime, st.st_size, stamp_seen)
        if seen == self._seen:
            return False
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.current:
            self._seen = seen
            return False
        expected = self._recorded_sha256()
        if expected != digest:
            # The model and its stamp are replaced one after the other: give a fresh mismatch one more
            # poll before refusing it, so a model caught between the two renames is not reported.
            if self._mismatch != digest:
                self._mismatch = digest
                return False
            self._seen = seen
            self.refused += 1
            log.error("model sync: refusing %s (sha256 %s): %s; still serving the previous model", self.path,
                      digest[:12], "no recorded hash in " + str(self.stamp) if expected is None
                      else f"it does not match the hash recorded in {self.stamp} ({expected[:12]})")
            return False
        self._mismatch = None
        try:
            blob = load_pt(data)  # weights only: a pickle that would run code is refused here, unrun
            if not _all_finite(blob):  # a diverged round: it would turn every frame black
                raise UnsafeModelFile("it holds NaN or infinite weights")
        except UnsafeModelFile as e:
            self._seen = seen  # refused for good: the same file is not looked at again
            self.refused += 1
            log.error("model sync: refusing %s: %s; still serving the previous model", self.path, e)
            return False
        snap_dir = Path(self.config.data_dir) / SERVING_DIR
        snap_dir.mkdir(parents=True, exist_ok=True)
        snapshot = snap_dir / f"dncm-{digest[:16]}.pt"
        if not snapshot.is_file() or sha256_file(snapshot) != digest:
            atomic_write_bytes(snapshot, data)
        try:
            stylizers = self.build(snapshot)  # fully built before anything is swapped
        except Exception as e:  # noqa: BLE001 - a model that does not load must not take the server down
            self._seen = seen
            self.refused += 1
            log.error("model sync: %s does not load (%s: %s); keeping the previous model", self.path,
                      type(e).__name__, str(e)[:300])
            return False
        for name, stylizer in stylizers.items():
            self.service.swap_model(name, stylizer)
        self.current = digest
        self._seen = seen  # only now: a snapshot that could not be written (a full disk) is tried again
        self.swaps += 1
        log.info("model sync: now serving %s (%s)", self.path, digest[:12])
        self._prune(snap_dir, keep=snapshot)
        return True

    def _recorded_sha256(self) -> str | None:
        try:
            value = json.loads(self.stamp.read_text()).get("sha256")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    @staticmethod
    def _prune(snap_dir: Path, keep: Path) -> None:
        snaps = sorted((p for p in snap_dir.glob("dncm-*.pt") if p != keep), key=lambda p: p.stat().st_mtime)
        for p in snaps[: max(0, len(snaps) - (KEEP_SNAPSHOTS - 1))]:
            p.unlink(missing_ok=True)
        shutil.rmtree(snap_dir / "tmp", ignore_errors=True)


def _all_finite(obj: Any) -> bool:
    """Whether every floating-point tensor in a loaded model file (nested dicts and lists) is finite."""
    import torch

    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_all_finite(v) for v in obj)
    return True
