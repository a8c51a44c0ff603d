"""`mvstylizer train`: what every trainer shares (models/training.py) and the settings each refuses
before its first step: files it would write over the training photos or over each other, numbers out of
range, crop sizes a model cannot take, and weights that diverged."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mvstylizer.cli import main
from mvstylizer.errors import UserError
from mvstylizer.models.training import Checkpointer, TrainConfig, save_weights
from mvstylizer.video.image import write_image


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# {data}: the photo folder, {tmp}: the test's folder (holding only the photo folder and what the case adds).
REFUSED = [
    ("wct2", ["--checkpoint", "{data}/p0.png"]),  # the reviewer's case: the photo became a checkpoint
    ("wct2", ["--out", "{data}/p0.png"]),
    ("dncm", ["--out", "{data}/p1.png"]),
    ("wct2", ["--out", "{data}/sub/w.pt"]),  # a new file inside a --data folder
    ("smoothing", ["--checkpoint", "{data}/c.ckpt"]),
    ("wct2", ["--out", "{tmp}/link.png"]),  # a symbolic link to a training photo
    ("dncm", ["--checkpoint", "{tmp}/hard.png"]),  # a hard link to one (found among the sources)
    ("smoothing", ["--out", "{tmp}/w.onnx"]),  # its own ONNX export would overwrite the weights
    ("smoothing", ["--out", "{tmp}/w.ONNX"]),
    ("smoothing", ["--out", "{tmp}/x.pt", "--checkpoint", "{tmp}/x.onnx"]),  # the export over the checkpoint
    ("smoothing", ["--size", "64"]),  # smoothing takes no crop size
    ("wct2", ["--checkpoint", "{tmp}/D", "--out", "{tmp}/D/w.pt"]),  # failed after training: "cannot make D"
    ("dncm", ["--out", "{tmp}/D", "--checkpoint", "{tmp}/D/c.ckpt"]),
    ("wct2", ["--out", "{tmp}/photos"]),  # a folder
    ("wct2", ["--size", "20"]), ("wct2", ["--size", "12"]), ("wct2", ["--size", "8"]),
    ("wct2", ["--seed", "99999999999999999999"]), ("dncm", ["--seed", "-1"]),
    ("wct2", ["--threads", "100000"]), ("dncm", ["--threads", "-1"]),
    ("dncm", ["--out", "{tmp}/video.mp4"]),  # an existing file that is not a weights file is not replaced
    ("wct2", ["--out", "{tmp}/junk.pt"]),  # the suffix alone does not make a weights file
    ("smoothing", ["--out", "{tmp}/dangling"]),  # a link to nothing
    ("wct2", ["--lr", "1e308"]), ("dncm", ["--lr", "2"]), ("smoothing", ["--lr", "0"]),
    # Sizes no step fits in memory: once "internal error: MemoryError" after the data was read.
    ("dncm", ["--size", "60000"]), ("dncm", ["--batch", "1000000"]), ("wct2", ["--batch", "200", "--size", "512"]),
    # A folder that does not exist, as stylize and export-lut refuse one (the run made it, typo and all).
    ("wct2", ["--out", "{tmp}/missing/w.pt"]), ("dncm", ["--checkpoint", "{tmp}/missing/c.ckpt"]),
    ("smoothing", ["--out", "{tmp}/w.pt", "--onnx", "{tmp}/missing/g.onnx"]),
]


@pytest.mark.parametrize(("model", "flags"), REFUSED, ids=[f"{m} {' '.join(f)}" for m, f in REFUSED])
def test_bad_settings_are_refused_before_any_work(tmp_path, photos, capsys, model, flags):
    (tmp_path / "link.png").symlink_to(photos / "p0.png")
    os.link(photos / "p1.png", tmp_path / "hard.png")
    (tmp_path / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before, listing = _snapshot(photos), sorted(p.name for p in tmp_path.iterdir())
    args = [f.format(data=photos, tmp=tmp_path) for f in flags]
    # No --out given: the default is the shipped weights, which a refused run must not touch either.
    if "--out" not in args:
        args += ["--out", str(tmp_path / "w.pt")]
    if "--checkpoint" not in args:
        args += ["--checkpoint", str(tmp_path / "c.ckpt")]
    assert main(["train", model, "--data", str(photos), "--steps", "1", "--batch", "1", "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1, err
    assert _snapshot(photos) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # nothing written, no folder made
    assert (tmp_path / "video.mp4").read_bytes().startswith(b"\x00\x00\x00\x18ftyp")


def test_threads_error_says_what_0_means_on_the_command_line(tmp_path, photos, capsys):
    args = ["--out", str(tmp_path / "w.pt"), "--checkpoint", str(tmp_path / "c.ckpt")]
    assert main(["train", "dncm", "--data", str(photos), "--threads", "-1", "-q", *args]) == 2
    err = capsys.readouterr().err
    # `train --help`: 0 stands for the model's recipe, which the CLI fills in (not torch's default).
    assert "--threads" in err and "0 for the model's recipe" in err and "torch" not in err, err


def test_out_replaces_an_existing_weights_file_and_nothing_else(tmp_path):
    from mvstylizer.models.training import check_replaceable_weights

    weights = save_weights(torch.nn.Linear(2, 2), tmp_path / "model.weights", {"steps": 1})  # any suffix
    TrainConfig(out=weights)  # the documented default: a weights file is replaced
    check_replaceable_weights(tmp_path / "new.pt")  # a new file is fine
    torch.save({"not": "weights"}, tmp_path / "other.pt")  # a torch file, but not of save_weights' layout
    for path in (tmp_path / "other.pt", Path(os.devnull)):
        with pytest.raises(UserError, match=r"--out .* exists and is not a weights file"):
            TrainConfig(out=path)


def test_wct2_crop_sizes():
    from mvstylizer.models.wct2_train import check_size

    for size in (16, 24, 32, 112):
        check_size(size)
    with pytest.raises(UserError, match="try --size 24"):
        check_size(26)


def test_config_bounds():
    TrainConfig(seed=2**32 - 1, lr=1.0, threads=os.cpu_count() or 1)
    for bad in ({"seed": 2**32}, {"lr": float("nan")}, {"lr": 1.5}, {"threads": (os.cpu_count() or 1) + 1},
                {"checkpoint_every": 0}):
        with pytest.raises(UserError):
            TrainConfig(**bad)


def test_non_finite_weights_are_never_saved(tmp_path):
    model = torch.nn.Linear(2, 2)
    out, ckpt = tmp_path / "w.pt", tmp_path / "c.ckpt"
    out.write_bytes(b"old weights")
    ckpt.write_bytes(b"old checkpoint")
    optim = torch.optim.Adam(model.parameters())
    with torch.no_grad():
        model.weight[0, 0] = 1e6  # finite in fp32, infinite in the fp16 of the weights file
    with pytest.raises(UserError, match="NaN or infinite"):
        save_weights(model, out, {})
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="diverged"):
        Checkpointer(ckpt).save(1, model, optim, {})
    assert out.read_bytes() == b"old weights" and ckpt.read_bytes() == b"old checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt", "w.pt"]  # no temporary left behind


@pytest.mark.slow
def test_a_diverging_run_stops_and_keeps_the_old_weights(tmp_path, photos, monkeypatch, capsys):
    from mvstylizer.models import wct2_train

    real = wct2_train.reconstruction_loss

    def diverged(*args):
        loss, stats = real(*args)
        return loss * float("nan"), dict(stats, loss=float("nan"))

    monkeypatch.setattr(wct2_train, "reconstruction_loss", diverged)
    # --out replaces only a weights file of the same model
    out = save_weights(wct2_train.WCT2Decoder(), tmp_path / "w.pt", {"model": "wct2"})
    old = out.read_bytes()
    args = ["train", "wct2", "--data", str(photos), "--steps", "2", "--batch", "1", "--size", "16",
            "--threads", "1", "--out", str(out), "--checkpoint", str(tmp_path / "c.ckpt"), "-q"]
    assert main(args) == 2
    assert "diverged at step 1" in capsys.readouterr().err
    assert out.read_bytes() == old and not (tmp_path / "c.ckpt").exists()


def _one_pixel_folder(tmp_path: Path) -> Path:
    """A data folder ``tiny`` holding one 1x1 picture: too small for any training crop."""
    data = tmp_path / "tiny"
    data.mkdir()
    write_image(data / "dot.png", np.full((1, 1, 3), 0.5, np.float32))
    return data


def test_smoothing_refuses_data_with_only_pictures_too_small_to_crop(tmp_path, capsys):
    data = _one_pixel_folder(tmp_path)
    args = ["train", "smoothing", "--data", str(data), "--steps", "1", "--batch", "1", "-q",
            "--out", str(tmp_path / "w.pt"), "--checkpoint", str(tmp_path / "c.ckpt")]
    assert main(args) == 2
    assert "at least 8x8 pixels" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


@pytest.mark.slow
def test_smoothing_skips_pictures_too_small_to_crop_and_names_its_onnx(tmp_path, photos, capsys):
    write_image(photos / "dot.png", np.full((1, 1, 3), 0.5, np.float32))  # crashed: scale must be in [1, 8]
    out = tmp_path / "w.pt"
    args = ["train", "smoothing", "--data", str(photos), "--steps", "2", "--batch", "2", "--threads", "1",
            "--out", str(out), "--checkpoint", str(tmp_path / "c.ckpt"), "-q"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "skipped 1 of 3 training pictures" in captured.err
    assert captured.out.splitlines() == [f"wrote {out}", f"wrote {out.with_suffix('.onnx')}"]
    assert torch.load(out, weights_only=False)["meta"]["size"] is None  # the recipe names no crop size


@pytest.mark.slow
def test_smoothing_replaces_its_weights_and_graph_together_or_not_at_all(tmp_path, photos, monkeypatch):
    from mvstylizer.models import meta_smoother, meta_smoother_train

    def broken(net, path):
        raise RuntimeError("exporter failed")

    # --out replaces only a weights file of the same model
    out = save_weights(meta_smoother.build_net(None, seed=0), tmp_path / "w.pt", {"model": "smoothing"})
    old = out.read_bytes()
    # The graph beside it must be an export of the module too, or the run is refused before training.
    meta_smoother_train.export_onnx(meta_smoother.build_net(None, seed=0), out.with_suffix(".onnx"))
    old_graph = out.with_suffix(".onnx").read_bytes()
    monkeypatch.setattr(meta_smoother_train, "export_onnx", broken)
    config = TrainConfig(data=[str(photos)], steps=1, batch=1, threads=1, out=out, checkpoint=tmp_path / "c.ckpt",
                         progress=False)
    with pytest.raises(RuntimeError, match="exporter failed"):  # was: new weights beside the old graph
        meta_smoother_train.train(config)
    assert out.read_bytes() == old and out.with_suffix(".onnx").read_bytes() == old_graph


@pytest.mark.parametrize("model", ["wct2", "dncm", "smoothing"])
def test_resume_refuses_other_settings_and_takes_the_same(tmp_path, photos, capsys, model):
    # wct2 and smoothing went on with the new --batch/--lr/--seed and wrote them into the weights'
    # recipe, which no run followed; dncm alone refused.
    ckpt = tmp_path / "c.ckpt"
    base = ["train", model, "--data", str(photos), "--steps", "1", "--threads", "1", "--checkpoint", str(ckpt),
            "-q", *([] if model == "smoothing" else ["--size", "16"])]
    assert main([*base, "--batch", "1", "--lr", "0.001", "--out", str(tmp_path / "a.pt")]) == 0
    capsys.readouterr()
    saved = ckpt.read_bytes()
    resumed = [*base, "--out", str(tmp_path / "b.pt"), "--resume"]
    assert main([*resumed, "--batch", "2", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {ckpt} was made with --batch 1, --lr 0.001, not --batch 2, --lr 0.5"), err
    assert ckpt.read_bytes() == saved and not (tmp_path / "b.pt").exists()
    assert main([*resumed, "--batch", "1", "--lr", "0.001"]) == 0
    assert torch.load(tmp_path / "b.pt", weights_only=False)["meta"]["batch"] == 1


def test_a_checkpoint_that_records_no_settings_is_not_resumed(tmp_path):
    from mvstylizer.models.training import check_resumed_setup

    with pytest.raises(UserError, match="does not record the settings"):
        check_resumed_setup(tmp_path / "old.ckpt", None, {"steps": 2})


def test_smoothing_takes_a_batch_of_any_size_up_to_the_bound(tmp_path, capsys):
    # Its pairs go through the network one at a time: --batch 256 was refused as too many megapixels of
    # "--size 192" crops, a flag smoothing takes none of. Here it gets as far as the data.
    data = _one_pixel_folder(tmp_path)
    args = ["train", "smoothing", "--data", str(data), "--steps", "1", "--batch", "256", "-q",
            "--out", str(tmp_path / "w.pt"), "--checkpoint", str(tmp_path / "c.ckpt")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "at least 8x8 pixels" in err and "--size" not in err, err


def test_training_data_that_is_neither_a_file_nor_a_folder(tmp_path, capsys):
    args = ["train", "dncm", "--data", os.devnull, "--steps", "1", "-q", "--out", str(tmp_path / "w.pt"),
            "--checkpoint", str(tmp_path / "c.ckpt")]
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: training data {os.devnull} is neither a file nor a folder of photos " \
                                      "or videos\n"  # was: "does not exist"
