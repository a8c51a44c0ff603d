"""Issue 14 item 5: a model file is data, never code.

Every .pt file is loaded with torch's weights-only unpickler; the edge's hot swap additionally checks
the file's sha256 against the hash recorded next to it (from the cloud) and refuses, in one log line,
anything that does not match or is not weights-only, while the previous model keeps serving.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mvstylizer.edge.model_sync import MODEL_FILE, ModelWatcher, SyncConfig  # noqa: E402
from mvstylizer.models.safeload import UnsafeModelFile, load_pt, sha256_file  # noqa: E402


class _Evil:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _malicious(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"x": _Evil(marker)}}, path)
    return path


def test_a_pickle_that_runs_code_is_refused_by_every_loader(tmp_path):
    from mvstylizer.models.dncm.network import load_net
    from mvstylizer.models.training import Checkpointer, load_weights

    marker = tmp_path / "pwned"
    bad = _malicious(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeModelFile, match="weights-only"):
        load_pt(bad)
    with pytest.raises(UnsafeModelFile):
        load_pt(bad.read_bytes())
    net = torch.nn.Linear(2, 1)
    with pytest.raises(UnsafeModelFile):
        load_weights(net, bad)
    with pytest.raises(UnsafeModelFile):
        load_net(bad)
    with pytest.raises(UnsafeModelFile):
        Checkpointer(bad).load(net, torch.optim.SGD(net.parameters(), lr=0.1))
    assert not marker.exists()


def test_shipped_weights_still_load_weights_only():
    from mvstylizer.models.dncm import default_weights
    from mvstylizer.models.dncm.network import load_net

    blob = load_pt(default_weights())
    assert "state_dict" in blob and "meta" in blob
    net, meta = load_net()
    assert isinstance(meta, dict)


class _Service:
    def __init__(self) -> None:
        self.swapped: list[tuple[str, object]] = []

    def swap_model(self, name: str, stylizer: object) -> None:
        self.swapped.append((name, stylizer))


def _publish(data_dir: Path, blob: bytes | None = None, *, stamp_sha: str | None = None) -> Path:
    """A model file and its stamp as fl_client.publish_model writes them (stamp_sha overrides)."""
    target = data_dir / MODEL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    if blob is not None:
        target.write_bytes(blob)
    sha = stamp_sha if stamp_sha is not None else sha256_file(target)
    target.with_suffix(".json").write_text(json.dumps({"digest": "x", "sha256": sha, "round": 1}))
    return target


def _good_blob(tmp_path: Path, scale: float = 1.0) -> bytes:
    p = tmp_path / f"good-{scale}.pt"
    torch.save({"state_dict": {"w": torch.full((2,), scale).half()}, "meta": {"fl_round": 1}}, p)
    return p.read_bytes()


def _watcher(tmp_path: Path, service: _Service) -> ModelWatcher:
    return ModelWatcher(service, SyncConfig(tmp_path, interval_s=60),
                        build=lambda p: {"dncm:torch": ("model", sha256_file(p))})


def test_hot_swap_refuses_a_code_pickle_even_with_a_matching_hash(tmp_path, caplog):
    service = _Service()
    _publish(tmp_path, _good_blob(tmp_path))
    watcher = _watcher(tmp_path, service)
    assert watcher.check() and len(service.swapped) == 1
    marker = tmp_path / "pwned"
    evil = _malicious(tmp_path / "evil.pt", marker).read_bytes()
    _publish(tmp_path, evil)  # whoever wrote the file also wrote a matching stamp
    with caplog.at_level(logging.ERROR, logger="mvstylizer.edge.model_sync"):
        assert not watcher.check()
    assert not marker.exists()
    assert len(service.swapped) == 1 and watcher.refused == 1
    lines = [r for r in caplog.records if r.name == "mvstylizer.edge.model_sync"]
    assert len(lines) == 1 and "weights-only" in lines[0].getMessage() and lines[0].exc_info is None
    assert not list((tmp_path / "models" / "serving").glob(f"dncm-{sha256_file(tmp_path / MODEL_FILE)[:16]}*"))


def test_hot_swap_refuses_a_file_whose_hash_does_not_match_the_recorded_one(tmp_path, caplog):
    service = _Service()
    _publish(tmp_path, _good_blob(tmp_path))
    watcher = _watcher(tmp_path, service)
    assert watcher.check()
    # A valid weights file, but not the one the cloud's hash names (stamp left from the old model).
    old_sha = sha256_file(tmp_path / MODEL_FILE)
    _publish(tmp_path, _good_blob(tmp_path, 2.0), stamp_sha=old_sha)
    with caplog.at_level(logging.ERROR, logger="mvstylizer.edge.model_sync"):
        assert not watcher.check()  # first sight: maybe caught between the two renames
        assert not watcher.check()  # still mismatched: refused, one line
        assert not watcher.check()  # nothing changed: not re-reported
    assert len(service.swapped) == 1 and watcher.refused == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "does not match" in errors[0].getMessage()
    # No stamp at all: refused too.
    (tmp_path / MODEL_FILE).with_suffix(".json").unlink()
    _publish(tmp_path, _good_blob(tmp_path, 3.0))
    (tmp_path / MODEL_FILE).with_suffix(".json").unlink()
    watcher.check()
    assert not watcher.check() and len(service.swapped) == 1
    # Once the stamp matches, the new model is swapped in.
    _publish(tmp_path, None)
    assert watcher.check() and len(service.swapped) == 2


def test_fl_client_and_model_sync_share_one_model_file():
    from mvstylizer.edge import fl_client, model_sync
    from mvstylizer.fl.model_file import model_file

    assert fl_client.MODEL_FILE is model_sync.MODEL_FILE
    assert model_file() == model_file("dncm") == Path("models") / "dncm.pt"


def test_hot_swap_refuses_nan_weights(tmp_path, caplog):
    service = _Service()
    _publish(tmp_path, _good_blob(tmp_path))
    watcher = _watcher(tmp_path, service)
    assert watcher.check()
    bad = tmp_path / "nan.pt"
    torch.save({"state_dict": {"w": torch.tensor([1.0, float("nan")]).half()}, "meta": {}}, bad)
    _publish(tmp_path, bad.read_bytes())
    with caplog.at_level(logging.ERROR, logger="mvstylizer.edge.model_sync"):
        assert not watcher.check()
    assert len(service.swapped) == 1 and watcher.refused == 1 and "NaN or infinite" in caplog.text


def test_a_snapshot_that_cannot_be_written_is_retried_and_never_stops_the_start(tmp_path, monkeypatch):
    import mvstylizer.edge.model_sync as sync

    service = _Service()
    _publish(tmp_path, _good_blob(tmp_path))
    watcher = _watcher(tmp_path, service)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sync, "atomic_write_bytes", full)
    watcher.start()  # the first check fails: the server starts on the shipped model
    watcher.stop()
    assert not service.swapped
    monkeypatch.undo()
    assert watcher.check() and len(service.swapped) == 1  # space again: the same file is swapped in
