"""`mvstylizer train` never replaces a file that is not its own: an existing ``--checkpoint`` (given, or
found at the default place in the cache) that is not a training checkpoint, and an existing ONNX file
beside ``--out`` that the smoothing export would have taken the place of, are refused before any work."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import texture

from mvstylizer.cli import main
from mvstylizer.errors import UserError
from mvstylizer.models.training import Checkpointer, TrainConfig, check_replaceable_checkpoint
from mvstylizer.video.image import write_image

MODELS = ["wct2", "dncm", "smoothing"]


def _strangers(tmp_path: Path) -> dict[str, bytes]:
    """Files a user may have, by name: a text, a photo, a zip archive (a torch file is a zip too)."""
    (tmp_path / "notes.txt").write_text("my notes\n")
    write_image(tmp_path / "photo.png", texture(16, 16, seed=3))
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as z:
        z.writestr("a.txt", "hello")
    torch.save({"not": "a checkpoint"}, tmp_path / "other.pt")
    return {name: (tmp_path / name).read_bytes() for name in ("notes.txt", "photo.png", "archive.zip", "other.pt")}


def _args(model: str) -> list[str]:
    return ["--steps", "1", "--batch", "1", "-q", *([] if model == "smoothing" else ["--size", "32"])]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", ["notes.txt", "photo.png", "archive.zip", "other.pt"])
def test_a_checkpoint_path_holding_another_file_is_refused(tmp_path, photos, capsys, model, name):
    before = _strangers(tmp_path)
    out = tmp_path / "w.pt"
    rc = main(["train", model, "--data", str(photos), *_args(model), "--out", str(out),
               "--checkpoint", str(tmp_path / name)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: --checkpoint") and "not a training checkpoint" in err and err.count("\n") == 1, err
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    assert not out.exists() and not out.with_suffix(".onnx").exists()


def test_the_default_checkpoint_is_not_replaced_when_it_is_not_one(tmp_path, photos, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MVSTYLIZER_CACHE", str(cache))
    (cache / "train").mkdir(parents=True)
    (cache / "train" / "wct2.ckpt").write_text("not ours")
    rc = main(["train", "wct2", "--data", str(photos), *_args("wct2"), "--out", str(tmp_path / "w.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "the checkpoint" in err and "not a training checkpoint" in err, err
    assert (cache / "train" / "wct2.ckpt").read_text() == "not ours"


def test_a_checkpoint_of_ours_may_be_replaced(tmp_path):
    model = torch.nn.Linear(2, 2)
    ckpt = tmp_path / "c.any-suffix"
    Checkpointer(ckpt).save(3, model, torch.optim.Adam(model.parameters()), {})
    check_replaceable_checkpoint(ckpt)
    TrainConfig(checkpoint=ckpt)
    TrainConfig(checkpoint=tmp_path / "new.ckpt")  # a new file is fine
    weights = tmp_path / "w.pt"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, weights)  # weights, not a checkpoint
    for path in (weights, Path(__file__)):
        with pytest.raises(UserError, match="not a training checkpoint"):
            TrainConfig(checkpoint=path)


def test_smoothing_keeps_a_users_file_beside_out(tmp_path, photos, capsys):
    onnx = tmp_path / "w.onnx"
    onnx.write_text("the user's own file, not an export\n")
    rc = main(["train", "smoothing", "--data", str(photos), *_args("smoothing"), "--out", str(tmp_path / "w.pt"),
               "--checkpoint", str(tmp_path / "c.ckpt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "--onnx" in err and err.count("\n") == 1, err
    assert onnx.read_text() == "the user's own file, not an export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "w.onnx"]


def test_smoothing_refuses_a_named_onnx_that_is_not_an_export(tmp_path, photos, capsys):
    other = tmp_path / "mine.onnx"
    other.write_bytes(b"\x08\x07 something else")
    rc = main(["train", "smoothing", "--data", str(photos), *_args("smoothing"), "--out", str(tmp_path / "w.pt"),
               "--checkpoint", str(tmp_path / "c.ckpt"), "--onnx", str(other)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --onnx") and err.count("\n") == 1, err
    assert other.read_bytes() == b"\x08\x07 something else"


def test_onnx_without_out_is_refused(tmp_path, photos, capsys):
    # Without --out the shipped weights are replaced; the phone's shipped graph must go with them.
    rc = main(["train", "smoothing", "--data", str(photos), *_args("smoothing"),
               "--checkpoint", str(tmp_path / "c.ckpt"), "--onnx", str(tmp_path / "g.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --onnx needs --out") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_onnx_is_for_smoothing_only(tmp_path, photos, capsys):
    rc = main(["train", "wct2", "--data", str(photos), *_args("wct2"), "--out", str(tmp_path / "w.pt"),
               "--checkpoint", str(tmp_path / "c.ckpt"), "--onnx", str(tmp_path / "x.onnx")])
    assert rc == 2 and "smoothing only" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.mark.slow
def test_smoothing_writes_its_export_where_asked_and_replaces_its_own(tmp_path, photos, capsys):
    out, onnx, ckpt = tmp_path / "w.pt", tmp_path / "export" / "graph.onnx", tmp_path / "c.ckpt"
    onnx.parent.mkdir()
    keep = tmp_path / "w.onnx"
    keep.write_text("the user's own file\n")
    base = ["train", "smoothing", "--data", str(photos), *_args("smoothing"), "--out", str(out),
            "--checkpoint", str(ckpt)]
    assert main([*base, "--onnx", str(onnx)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {out}", f"wrote {onnx}"]
    assert keep.read_text() == "the user's own file\n"
    from mvstylizer.models.meta_smoother_train import is_export

    assert is_export(onnx)
    first = onnx.read_bytes()
    # A second run replaces what the first wrote: the weights, the checkpoint and the export are all its own.
    assert main([*base, "--onnx", str(onnx), "--seed", "1"]) == 0
    assert onnx.read_bytes() != first and is_export(onnx)
    # And the default place beside --out, once it holds an export, is replaced too.
    keep.unlink()
    assert main(base) == 0 and is_export(keep)


def test_smoothing_failed_export_keeps_its_old_weights_and_graph(tmp_path, photos, monkeypatch):
    """(tests/models/test_training.py's case of the same name, with a real export as the old graph: a fake
    one is now refused before any work, as any file beside --out that is not an export is.)"""
    from mvstylizer.models import meta_smoother, meta_smoother_train
    from mvstylizer.models.training import save_weights

    out = save_weights(meta_smoother.build_net(None, seed=0), tmp_path / "w.pt", {"model": "smoothing"})
    meta_smoother.export_onnx(meta_smoother.build_net(None, seed=0), out.with_suffix(".onnx"))
    old_weights, old_graph = out.read_bytes(), out.with_suffix(".onnx").read_bytes()

    def broken(net, path):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(meta_smoother_train, "export_onnx", broken)
    config = TrainConfig(data=[str(photos)], steps=1, batch=1, threads=1, out=out, checkpoint=tmp_path / "c.ckpt",
                         progress=False)
    with pytest.raises(RuntimeError, match="exporter failed"):
        meta_smoother_train.train(config)
    assert out.read_bytes() == old_weights and out.with_suffix(".onnx").read_bytes() == old_graph


@pytest.mark.skipif(not Path("/proc/1").is_dir(), reason="no /proc")
@pytest.mark.parametrize("flag", ["--out", "--checkpoint", "--onnx"])
def test_an_output_folder_that_takes_no_files_is_refused_before_training(tmp_path, photos, capsys, flag):
    """procfs takes no new files, even from root: found out only when the run had ended (torch.save's
    "open file failed", an internal error)."""
    paths = {"--out": str(tmp_path / "w.pt"), "--checkpoint": str(tmp_path / "c.ckpt")}
    paths[flag] = "/proc/1/x.bin"
    extra = [a for k, v in paths.items() for a in (k, v)]
    rc = main(["train", "smoothing", "--data", str(photos), *_args("smoothing"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: {flag} folder is not writable: /proc/1"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.mark.parametrize("flag", ["--out", "--checkpoint", "--onnx"])
def test_a_missing_output_folder_is_refused_not_made(tmp_path, photos, capsys, flag):
    """As stylize and export-lut refuse one: `--out /nonexist/dir/x.pt` made the folders, typo and all."""
    paths = {"--out": str(tmp_path / "w.pt"), "--checkpoint": str(tmp_path / "c.ckpt")}
    paths[flag] = str(tmp_path / "missing" / "x.bin")
    rc = main(["train", "smoothing", "--data", str(photos), *_args("smoothing"),
               *[a for kv in paths.items() for a in kv]])
    assert rc == 2 and capsys.readouterr().err == f"error: {flag} folder does not exist: {tmp_path / 'missing'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
import torch
from mvstylizer.errors import UserError
from mvstylizer.models.training import Checkpointer, save_weights

out, ckpt = Path(sys.argv[1]), Path(sys.argv[2])
model = torch.nn.Linear(256, 256)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
for save in (lambda: save_weights(model, out, {}),
             lambda: Checkpointer(ckpt).save(2, model, torch.optim.Adam(model.parameters()), {})):
    try:
        save()
    except UserError as e:
        print(e)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="no file size limit to hit")
def test_a_failed_write_of_weights_or_checkpoint_says_why_and_keeps_the_old_file(tmp_path):
    # A full disk was "[enforce fail at inline_container.cc:672] ... file write failed", torch's own
    # writer's words without the system's reason; a file size limit fails the write the same way.
    out, ckpt = tmp_path / "w.pt", tmp_path / "c.ckpt"
    out.write_bytes(b"old weights")
    ckpt.write_bytes(b"old checkpoint")
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(out), str(ckpt)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    why = os.strerror(errno.EFBIG)
    assert done.stdout.splitlines() == [f"cannot write {out}: {why}; it was left as it was",
                                        f"cannot write {ckpt}: {why}; it was left as it was"], done.stdout
    assert (out.read_bytes(), ckpt.read_bytes()) == (b"old weights", b"old checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt", "w.pt"]  # no temporary left behind


def _other_models_files(tmp_path: Path) -> dict[str, Path]:
    """Weights files and checkpoints of each model: named as runs record them now, and without a name
    (the smoothing weights and every checkpoint written before names were recorded)."""
    from mvstylizer.models import meta_smoother
    from mvstylizer.models.dncm.network import build_net as dncm_net
    from mvstylizer.models.training import save_weights
    from mvstylizer.models.wct2 import WCT2Decoder

    def checkpoint(path: Path, net: torch.nn.Module, model: str | None) -> Path:
        Checkpointer(path, model=model).save(1, net, torch.optim.Adam(net.parameters()), {})
        return path

    smoother = meta_smoother.build_net(None, seed=0)
    return {"wct2.pt": save_weights(WCT2Decoder(), tmp_path / "wct2.pt", {"model": "wct2"}),
            "dncm.ckpt": checkpoint(tmp_path / "dncm.ckpt", dncm_net(None), "dncm"),
            "unnamed-smoothing.pt": save_weights(smoother, tmp_path / "unnamed-smoothing.pt", {}),
            "unnamed-smoothing.ckpt": checkpoint(tmp_path / "unnamed-smoothing.ckpt", smoother, None)}


OTHER_MODELS = [  # (the run's model, flag, the file given, what the refusal names)
    ("dncm", "--out", "wct2.pt", "a weights file of wct2, not of dncm"),  # the reviewer's case
    ("smoothing", "--checkpoint", "dncm.ckpt", "a training checkpoint of dncm, not of smoothing"),
    ("wct2", "--out", "unnamed-smoothing.pt", "a weights file of another model, not of wct2"),
    ("dncm", "--checkpoint", "unnamed-smoothing.ckpt", "a training checkpoint of another model, not of dncm"),
]


@pytest.mark.parametrize(("model", "flag", "name", "said"), OTHER_MODELS,
                         ids=[f"{m} {f} {n}" for m, f, n, _ in OTHER_MODELS])
def test_another_models_weights_or_checkpoint_is_not_replaced(tmp_path, photos, capsys, model, flag, name, said):
    # `train dncm --out wct2.pt` replaced the wct2 weights, which then failed to load as an internal error.
    files = _other_models_files(tmp_path)
    before = {n: p.read_bytes() for n, p in files.items()}
    paths = {"--out": str(tmp_path / "new.pt"), "--checkpoint": str(tmp_path / "new.ckpt"), flag: str(files[name])}
    rc = main(["train", model, "--data", str(photos), *_args(model), *[a for kv in paths.items() for a in kv]])
    err = capsys.readouterr().err
    assert rc == 2 and err == (f"error: {flag} {files[name]} is {said}, so it is not replaced; choose a new name "
                               "or remove it first\n"), err
    assert {n: p.read_bytes() for n, p in files.items()} == before
    assert not (tmp_path / "new.pt").exists() and not (tmp_path / "new.ckpt").exists()


def test_a_file_of_the_same_model_without_a_name_may_be_replaced(tmp_path):
    from mvstylizer.models import meta_smoother
    from mvstylizer.models.training import check_replaceable_weights

    files = _other_models_files(tmp_path)
    params = meta_smoother.build_net(None, seed=0).state_dict().keys()
    check_replaceable_weights(files["unnamed-smoothing.pt"], "--out", "smoothing", params)
    check_replaceable_checkpoint(files["unnamed-smoothing.ckpt"], "--checkpoint", "smoothing", params)


def test_loading_another_models_weights_is_a_user_error(tmp_path):
    from mvstylizer.models.dncm import DNCMStylizer
    from mvstylizer.models.training import load_weights
    from mvstylizer.models.wct2 import WCT2Decoder

    files = _other_models_files(tmp_path)
    with pytest.raises(UserError, match=r"wct2\.pt holds the weights of the wct2 model, not of this one"):
        DNCMStylizer(weights=files["wct2.pt"])  # was: RuntimeError, "Missing key(s) in state_dict"
    with pytest.raises(UserError, match="holds the weights of another model"):
        load_weights(WCT2Decoder(), files["unnamed-smoothing.pt"])
