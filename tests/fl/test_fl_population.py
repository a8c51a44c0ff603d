"""``mvstylizer fl simulate``: the population experiment (tiny sizes, package media, no footage)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mvstylizer.cli import main  # noqa: E402
from mvstylizer.errors import UserError  # noqa: E402
from mvstylizer.fl.population import METHODS, PopConfig, aggregate, compare, load_edges  # noqa: E402

TINY = ["--rounds", "1", "--seeds", "2", "--frames-per-clip", "2", "--held-out", "1", "--finetune-steps", "1",
        "--eval-crops", "2", "--local-steps", "1", "--batch", "2", "--size", "32"]


def test_aggregate_matches_flower_strategies():
    glob = [np.zeros(3)]
    ups = [[np.full(3, v)] for v in (1.0, 2.0, 3.0, 100.0)]
    np.testing.assert_allclose(aggregate(glob, ups, [1, 1, 1, 1], "fedavg")[0], 26.5)
    np.testing.assert_allclose(aggregate(glob, ups, [1, 1, 2, 0], "fedavg")[0], 2.25)  # weighted by frames
    np.testing.assert_allclose(aggregate(glob, ups, [1, 1, 1, 1], "median")[0], 2.5)
    np.testing.assert_allclose(aggregate(glob, ups, [1, 1, 1, 1], "trimmed", trim_beta=0.25)[0], 2.5)
    np.testing.assert_allclose(aggregate(glob, ups[:2], [1, 1], "fedavg", server_lr=2.0)[0], 3.0)


def test_compare_calls_noise_a_tie():
    assert compare([1.0, 1.1, 0.9], [2.0, 2.1, 1.9])["verdict"] == "win"
    assert compare([2.0, 2.1, 1.9], [1.0, 1.1, 0.9])["verdict"] == "loss"
    assert compare([1.0, 1.2, 0.8], [1.05, 1.0, 1.0])["verdict"] == "tie"
    assert compare([30.0, 31.0], [29.0, 29.5], lower_is_better=False)["verdict"] == "win"


def test_package_fallback_edges_are_non_iid_and_flag_contamination():
    edges, unseen = load_edges(PopConfig(frames_per_clip=2, held_out_per_clip=1))
    assert len(edges) == 5 and len({e.scene for e in edges}) == 5
    assert unseen.scene not in {e.scene for e in edges}
    assert len({len(e.train) for e in edges}) > 1  # different sizes
    assert not set(unseen.sources) & {s for e in edges for s in e.sources}
    with pytest.raises(UserError):
        PopConfig(edges=1)


@pytest.mark.slow
def test_fl_simulate_writes_summary_for_every_method(tmp_path, capsys):
    out = tmp_path / "pop.json"
    assert main(["fl", "simulate", "--edges", "5", *TINY, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["data"]["source"] == "package media" and len(report["data"]["edges"]) == 5
    assert report["starting_model"]["contaminated"]  # the shipped weights saw the package media
    assert report["seeds"] == [0, 1]
    for m in METHODS:
        s = report["summary"][m]
        for k in ("population", "unseen"):
            assert set(s[k]) == {"mean", "std"} and math.isfinite(s[k]["mean"]) and s[k]["std"] >= 0
        assert len(s["per_edge"]) == 5 and all(math.isfinite(e["mean"]) for e in s["per_edge"])
    assert report["summary"]["pretrained"]["population"]["std"] == 0.0  # no training, fixed crops
    t = report["targets"]
    assert len(t["federated_vs_pretrained_per_edge"]) == 5
    assert {c["verdict"] for c in t["personalized_vs_local_only_own_held_out"]} <= {"win", "loss", "tie"}
    assert "| federated |" in capsys.readouterr().out


def test_fl_simulate_rejects_missing_footage(tmp_path, capsys):
    assert main(["fl", "simulate", "--footage", str(tmp_path / "nope"), *TINY]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["fl", "simulate", "--footage", str(tmp_path / "empty"), *TINY]) == 2
    assert "FOOTAGE_GROUPS" in capsys.readouterr().err


def test_fl_options_too_big_to_train_are_refused_before_any_work(capsys):
    # A crop larger than the frames held in memory, or a batch of thousands, ran out of memory mid-run.
    for extra in (["--size", "100000"], ["--batch", "100000"]):
        assert main(["fl", "simulate", *TINY, *extra]) == 2
        assert "--size must be at most" in capsys.readouterr().err
    assert main(["cloud", "serve", "--size", "5000"]) == 2
    assert "--size must be at most" in capsys.readouterr().err


@pytest.mark.slow
def test_fl_simulate_on_a_footage_folder_names_it_dir(tmp_path, monkeypatch):
    from mvstylizer.video.media import package_media

    footage = tmp_path / "clips"
    footage.mkdir()  # stand-in clips under footage names (links to package videos)
    for name, src in [("ped_street_1080p.mp4", "bikes.mp4"), ("face_talk_hands.mp4", "bigbuckbunny.mp4"),
                      ("juggle_fast.mp4", "carphone_pristine.mp4")]:
        (footage / name).symlink_to(package_media(src))
    out = tmp_path / "pop.json"
    argv = ["fl", "simulate", "--footage", str(footage), *TINY, "--json", str(out)]
    monkeypatch.setattr(sys, "argv", ["mvstylizer", *argv])  # the report's command comes from sys.argv
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert [e["scene"] for e in report["data"]["edges"]] == ["street", "faces"]
    assert report["data"]["unseen"]["scene"] == "outdoor_nature"
    assert str(footage) not in out.read_text() and "--footage DIR" in report["command"]


def test_plot_draws_from_a_report(tmp_path):
    pytest.importorskip("matplotlib")
    from mvstylizer.fl.population import plot

    edges = [{"scene": s} for s in ("a", "b")]
    per = {"mean": 0.03, "std": 0.001}
    report = {"data": {"edges": edges, "unseen": {"scene": "u"}}, "seeds": [0, 1],
              "per_seed": {"pretrained": [{"loss": 0.03}] * 3,
                           "runs": [{"federated_curve": [[0.03, 0.031, 0.029]] * 2}] * 2},
              "summary": {m: {"population": per, "unseen": per} for m in METHODS}}
    plot(report, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_poisoned_updates_and_the_guard():
    from mvstylizer.fl.population import guard, poison_update

    glob, honest = [np.zeros(4)], [np.full(4, 0.1)]
    assert guard(glob, poison_update(glob, honest, "nan"), 100.0) is None
    assert guard(glob, poison_update(glob, honest, "scale"), 100.0) is None  # norm 2e5
    flipped = guard(glob, poison_update(glob, honest, "signflip"), 100.0)
    np.testing.assert_allclose(flipped[0], -0.1)  # passes the guard: robust aggregation must bound it
    np.testing.assert_allclose(guard(glob, [np.full(4, 3.0)], 100.0, clip_norm=1.0)[0], 0.5)
    np.testing.assert_allclose(guard(glob, honest, 100.0)[0], 0.1)


@pytest.mark.slow
def test_fl_simulate_poisoned_run_reports_the_federated_model(tmp_path):
    out = tmp_path / "p.json"
    assert main(["fl", "simulate", "--edges", "5", *TINY, "--poison", "scale", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["rejected_updates_per_seed"] == [1, 1]  # one round, one poisoned edge, per seed
    assert math.isfinite(report["summary"]["federated"]["population"]["mean"])


@pytest.mark.slow
def test_fl_simulate_screens_by_agreement(tmp_path):
    out = tmp_path / "s.json"
    assert main(["fl", "simulate", "--edges", "5", *TINY, "--poison", "signflip", "--min-agreement", "0",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    runs = report["per_seed"]["runs"]
    for run, screened in zip(runs, report["screened_updates_per_seed"], strict=True):
        (round_1,) = run["agreement"]  # one round: five updates, each judged on this round alone
        assert len(round_1) == 5 and all(c is None or -1 <= c <= 1 for c in round_1)
        below = sum(c is not None and c < 0 for c in round_1)
        assert screened <= 2 and screened <= below  # only edges below 0 go, at most a minority
        assert screened > 0 or below == 0  # and with one below 0, something goes


def test_server_optimisers_follow_flower():
    from mvstylizer.fl.population import ServerOpt

    glob, agg = [np.zeros(3)], [np.array([1.0, -2.0, 0.5])]
    np.testing.assert_allclose(ServerOpt("sgd", 1.0).step(glob, agg, 1)[0], agg[0])  # FedAvg
    np.testing.assert_allclose(ServerOpt("sgd", 3.0).step(glob, agg, 1)[0], 3 * agg[0])  # FedAvgM, no momentum
    m = ServerOpt("sgd", 1.0, momentum=0.5)
    first = m.step(glob, agg, 1)
    np.testing.assert_allclose(m.step(first, [first[0] + agg[0]], 2)[0], first[0] + 1.5 * agg[0])
    # FedAdam's first round: m = 0.1 d, v = 0.01 d^2, bias-corrected eta -> eta * 0.1414/0.19 * sign(d)
    eta = 1e-3 * math.sqrt(1 - 0.99 ** 2) / (1 - 0.9 ** 2)
    np.testing.assert_allclose(ServerOpt("adam", 1e-3).step(glob, agg, 1)[0], eta * np.sign(agg[0]), rtol=1e-6)
    np.testing.assert_allclose(ServerOpt("yogi", 1e-3).step(glob, agg, 1)[0], eta * np.sign(agg[0]), rtol=1e-6)


def test_validation_split_stays_inside_the_training_part():
    from mvstylizer.fl.population import _split_source
    from mvstylizer.video.media import package_media

    photo = package_media("astronaut.png")
    full_train, held = _split_source(photo, PopConfig(frames_per_clip=2, held_out_per_clip=1))
    val_train, val = _split_source(photo, PopConfig(frames_per_clip=2, held_out_per_clip=1, validate=True))
    # the validation split re-splits the training part only: the held-out quarter is never used
    assert val_train[0].shape[1] + val[0].shape[1] == full_train[0].shape[1]
    np.testing.assert_array_equal(val_train[0], full_train[0][:, : val_train[0].shape[1]])
    with pytest.raises(UserError):
        PopConfig(server_opt="sgdx")
    with pytest.raises(UserError):
        PopConfig(finetune_part="tail")


def test_head_only_fine_tune_moves_only_the_last_layers():
    from mvstylizer.fl.local import HEAD_PREFIXES, FrameBank, LocalConfig, load_base, local_fit

    net, _ = load_base()
    before = {k: p.detach().clone() for k, p in net.named_parameters()}
    bank = FrameBank(frames=[np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)], max_side=64)
    seen = []
    local_fit(net, bank, LocalConfig(batch=1, size=32, lr=1e-3), 2, part="head", on_step=seen.append)
    assert seen == [1, 2]
    for k, p in net.named_parameters():
        assert p.requires_grad
        moved = not torch.equal(p.detach(), before[k])
        assert moved == k.startswith(HEAD_PREFIXES), k


@pytest.mark.slow
def test_tune_runs_on_validation_data_only(tmp_path):
    from mvstylizer.fl import tune
    from mvstylizer.fl.local import LocalConfig

    cfg = PopConfig(rounds=1, seeds=1, frames_per_clip=2, held_out_per_clip=1, eval_crops=2,
                    local=LocalConfig(epochs=1, batch=2, size=32, lr=3e-5, max_steps=1))
    old = tune.CHECKPOINTS
    tune.CHECKPOINTS = (1, 2)
    try:
        r = tune.tune(cfg, 1, 1, "12", variants=("fedavg", "fedavgm_lr3"))
    finally:
        tune.CHECKPOINTS = old
    assert r["config"]["validate"] and "unseen" not in json.dumps(r["stage1_server"])
    assert r["stage1_choice"]["variant"] in ("fedavg", "fedavgm_lr3")
    assert len(r["stage2_personalisation"]["variants"]) == 3 * 2


def test_every_task_fits_and_scores_on_frames():
    from mvstylizer.fl.local import LocalConfig
    from mvstylizer.fl.tasks import TASKS, starting_model, task

    frames = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8) for i in range(2)]
    for name in TASKS:
        t = task(name)
        net, meta = starting_model(name, None)
        held = t.eval_batch(t.bank(frames), 2, 32)
        before = t.evaluate(net, held)
        assert set(before) == {"loss", "psnr"} and all(math.isfinite(v) for v in before.values())
        t.fit(net, t.bank(frames), LocalConfig(batch=1, size=32, lr=1e-3), 1, round_seed=1)
        assert math.isfinite(t.evaluate(net, held)["loss"])
    with pytest.raises(UserError):
        task("regions")


def test_local_warmup_ramps_the_learning_rate():
    from mvstylizer.fl.local import LocalConfig

    c = LocalConfig(lr=1e-4, warmup=4)
    assert [round(c.lr_at(s), 9) for s in range(5)] == [2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4]
    assert LocalConfig(lr=1e-4).lr_at(0) == 1e-4
    assert LocalConfig.from_config(c.to_config()).warmup == 4  # travels in the round's config


def test_a_diverged_loss_is_written_as_null_in_strict_json():
    """A huge --lr made every loss NaN, and the report held bare NaN tokens that strict parsers refuse."""
    import json

    from mvstylizer.fl.population import report_json

    text = report_json({"summary": {"federated": {"population": {"mean": float("nan"), "std": float("inf")}}},
                        "curve": [[1.0, float("-inf")]], "seeds": (0, 1)})
    assert "NaN" not in text and "Infinity" not in text
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert report["summary"]["federated"]["population"] == {"mean": None, "std": None}
    assert report["curve"] == [[1.0, None]] and report["seeds"] == [0, 1]


def test_more_edges_than_the_data_makes_or_a_screen_without_a_majority_is_said():
    """--edges 1000 ran with the 5 edges the data makes, and --min-agreement with 2 edges judged
    nothing, both without a word."""
    from mvstylizer.fl.population import PopConfig, prepare

    said: list[str] = []
    ctx = prepare(PopConfig(edges=1000, min_agreement=0.0, eval_crops=2, frames_per_clip=1,
                            held_out_per_clip=1), log=said.append)
    assert len(ctx.edges) == 5
    assert any("1000 edges asked for; the data makes 5" in m for m in said)
    said.clear()
    prepare(PopConfig(edges=2, min_agreement=0.0, eval_crops=2, frames_per_clip=1, held_out_per_clip=1),
            log=said.append)
    assert any("judges nothing" in m for m in said)


def test_every_federated_task_is_a_trainable_network_of_the_registry():
    from mvstylizer.fl.tasks import TASKS
    from mvstylizer.models.registry import TRAINABLE, build_model

    assert set(TASKS) <= set(TRAINABLE)
    net, meta = build_model("dncm")
    assert sum(p.numel() for p in net.parameters()) > 0 and isinstance(meta, dict)
    with pytest.raises(UserError, match="trainable"):
        build_model("regions")
