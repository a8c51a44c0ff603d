"""The cloud's versioned global-model registry: one folder per completed round.

Layout::

    ROOT/rounds/000000/model.pt      the starting model (round 0: the pre-trained weights)
    ROOT/rounds/000000/round.json    {"round", "metrics", "created", "sha256", "params_sha256"}
    ROOT/rounds/000001/...           after round 1, and so on

``model.pt`` has the same fp16 format as :func:`mvstylizer.models.training.save_weights`, so any
round's model can be served as it is (``DNCMStylizer(weights=...)``). ``sha256`` is the hash of
``model.pt``'s bytes; ``params_sha256`` the hash of the parameters as they are sent to the edges
(:func:`mvstylizer.models.safeload.params_digest`, float32), which the edges check on receipt and record
next to the model their server hot-swaps in. A round folder is built under a
temporary name and renamed into place, so a crash leaves either a complete round or none; a restarted
server resumes from :meth:`ModelRegistry.latest`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class RoundEntry:
    round: int
    path: Path  # the round's model.pt
    metrics: dict[str, Any]


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.rounds_dir = self.root / "rounds"
        self.rounds_dir.mkdir(parents=True, exist_ok=True)

    def rounds(self) -> list[int]:
        """Completed rounds, ascending (half-written temporary folders are not rounds)."""
        out = []
        for p in self.rounds_dir.iterdir():
            if p.is_dir() and p.name.isdigit() and (p / "round.json").is_file() and (p / "model.pt").is_file():
                out.append(int(p.name))
        return sorted(out)

    def latest(self) -> RoundEntry | None:
        done = self.rounds()
        return self.entry(done[-1]) if done else None

    def entry(self, rnd: int) -> RoundEntry:
        folder = self.rounds_dir / f"{rnd:06d}"
        if not (folder / "round.json").is_file():
            raise UserError(f"no round {rnd} in the model registry {self.root}")
        info = self._info(rnd)
        return RoundEntry(rnd, folder / "model.pt", dict(info.get("metrics", {})))

    def _info(self, rnd: int) -> dict[str, Any]:
        path = self.rounds_dir / f"{rnd:06d}" / "round.json"
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._damaged(rnd, f"{path.name} does not read ({exc})") from None
        if not isinstance(info, dict) or not isinstance(info.get("metrics", {}), dict):
            raise self._damaged(rnd, f"{path.name} is not a round record")
        return info

    def verify(self, rnd: int) -> None:
        """Refuse (UserError) round ``rnd`` if its model file is not the one its record hashed: a resume
        from a truncated model failed only inside Flower, with no reason given, on every rerun."""
        want = self._info(rnd).get("sha256")
        path = self.rounds_dir / f"{rnd:06d}" / "model.pt"
        try:
            got = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise self._damaged(rnd, f"model.pt does not read ({exc.strerror or exc})") from None
        if want is not None and got != want:
            raise self._damaged(rnd, "model.pt is not the file its round.json recorded (sha256 differs)")

    def _damaged(self, rnd: int, why: str) -> UserError:
        folder = self.rounds_dir / f"{rnd:06d}"
        return UserError(f"round {rnd} of the model registry is damaged: {why}; move {folder} away to resume "
                         "from the round before it")

    def save(self, rnd: int, state: dict[str, Any], meta: dict[str, Any], metrics: dict[str, Any],
             params_sha256: str | None = None) -> RoundEntry:
        """Store round ``rnd``'s model (a full state dict of tensors) with its metrics, atomically."""
        import torch

        folder = self.rounds_dir / f"{rnd:06d}"
        tmp = self.rounds_dir / f".tmp-{rnd:06d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
        torch.save({"state_dict": half, "meta": {**meta, "fl_round": rnd}}, tmp / "model.pt")
        digest = hashlib.sha256((tmp / "model.pt").read_bytes()).hexdigest()
        info = {"round": rnd, "metrics": _jsonable(metrics), "created": time.time(), "sha256": digest}
        if params_sha256:
            info["params_sha256"] = params_sha256
        (tmp / "round.json").write_text(json.dumps(info, indent=2) + "\n")
        if folder.exists():  # a re-run of a round (resume raced a crash): the new one wins
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return RoundEntry(rnd, folder / "model.pt", info["metrics"])

    def history(self) -> list[dict[str, Any]]:
        return [{"round": r, **self.entry(r).metrics} for r in self.rounds()]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
