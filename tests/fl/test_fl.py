"""Federated learning: update vetting, the registry and resume, faults, hot swap, and the simulation.

The ServerApp's federation loop runs here against an in-process Grid (the edges' ClientApp code called
directly), so faults and resume are tested in seconds; the Flower simulation engine (Ray) and the real
SuperLink/SuperNode deployment are exercised by ``test_fl_simulation_*`` and ``test_fl_deploy.py``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")
torch = pytest.importorskip("torch")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402

from helpers import texture, to8  # noqa: E402
from mvstylizer.cli import main  # noqa: E402
from mvstylizer.cloud.registry import ModelRegistry  # noqa: E402
from mvstylizer.cloud.server_app import CloudConfig, run_federation  # noqa: E402
from mvstylizer.cloud.strategies import StrategyConfig, UpdateGuard, build_strategy  # noqa: E402
from mvstylizer.edge.fl_client import MODEL_FILE, EdgeTrainer, publish_model  # noqa: E402
from mvstylizer.errors import UserError  # noqa: E402
from mvstylizer.fl.local import LocalConfig, load_base, parameter_arrays  # noqa: E402

TINY = LocalConfig(epochs=1.0, batch=2, size=32, lr=1e-4, max_steps=1)


pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py


def _reply(node: int, arrays: dict[str, np.ndarray] | None, n: float = 4.0, error: str | None = None) -> Message:
    ask = Message(content=RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type="train")
    if error:
        return Message(Error(code=0, reason=error), reply_to=ask)
    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                          "metrics": MetricRecord({"num-examples": n, "train-loss": 0.1})})
    return Message(content=content, reply_to=ask)


class _Grid:
    """Just enough of a Grid for Strategy.configure_* (node ids); vet() needs nothing else."""

    def get_node_ids(self) -> list[int]:
        return [1, 2, 3, 4, 5]


def test_update_guard_rejects_nan_huge_malformed_and_clips():
    glob = {"w": np.zeros(4, np.float32), "b": np.zeros(2, np.float32)}
    guard = build_strategy(StrategyConfig(name="fedavg", clip_norm=1.0, reject_norm=50.0, min_train_nodes=1,
                                          min_available_nodes=1))
    list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(), _Grid()))
    good = _reply(1, {"w": np.full(4, 0.1, np.float32), "b": np.zeros(2, np.float32)})
    long = _reply(2, {"w": np.full(4, 3.0, np.float32), "b": np.zeros(2, np.float32)})  # norm 6: clipped to 1
    nan = _reply(3, {"w": np.array([np.nan, 0, 0, 0], np.float32), "b": np.zeros(2, np.float32)})
    huge = _reply(4, {"w": np.full(4, 1e6, np.float32), "b": np.zeros(2, np.float32)})
    shape = _reply(5, {"w": np.zeros(5, np.float32), "b": np.zeros(2, np.float32)})
    weight = _reply(6, {"w": np.zeros(4, np.float32), "b": np.zeros(2, np.float32)}, n=math.inf)
    dropped = _reply(7, None, error="node went away")
    arrays, metrics = guard.aggregate_train(1, [good, long, nan, huge, shape, weight, dropped])
    assert metrics["accepted-updates"] == 2 and metrics["rejected-updates"] == 5
    w = arrays["w"].numpy()
    assert np.all(np.isfinite(w))
    # Equal weights: mean of 0.1 and the clipped update 3 * (1 / 6) = 0.5.
    np.testing.assert_allclose(w, (0.1 + 0.5) / 2, rtol=1e-5)
    reasons = {u["node"]: u["reason"] for u in guard.last_round["updates"]}
    assert reasons[2] == "clipped" and "non-finite" in reasons[3] and "norm" in reasons[4]
    assert "shape" in reasons[5] and "num-examples" in reasons[6] and reasons[7].startswith("error")
    # Nothing acceptable: no new model (Strategy.start keeps the old one).
    list(guard.configure_train(2, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(), _Grid()))
    assert guard.aggregate_train(2, [_reply(3, {"w": np.full(4, np.inf, np.float32), "b": np.zeros(2, np.float32)})]) \
        == (None, None)


@pytest.mark.parametrize("name", ["fedprox", "trimmed", "median"])
def test_other_strategies_aggregate_behind_the_guard(name):
    glob = {"w": np.zeros(3, np.float32)}
    guard = build_strategy(StrategyConfig(name=name, min_train_nodes=1, min_available_nodes=1, trim_beta=0.2))
    assert isinstance(guard, UpdateGuard)
    list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(), _Grid()))
    replies = [_reply(i, {"w": np.full(3, v, np.float32)}) for i, v in enumerate([0.1, 0.2, 0.3, 0.4, 9.0], 1)]
    arrays, _ = guard.aggregate_train(1, replies)
    value = float(arrays["w"].numpy()[0])
    if name == "median":
        assert value == pytest.approx(0.3)
    elif name == "trimmed":
        assert value == pytest.approx(0.3)  # 0.1 and 9.0 cut
    else:
        assert value == pytest.approx(2.0)


@pytest.mark.parametrize("name", ["trimmed", "median"])
def test_server_learning_rate_scales_a_robust_aggregate(name):
    glob = {"w": np.full(3, 1.0, np.float32)}
    guard = build_strategy(StrategyConfig(name=name, server_lr=1.5, min_train_nodes=1, min_available_nodes=1))
    list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(), _Grid()))
    replies = [_reply(i, {"w": np.full(3, v, np.float32)}) for i, v in enumerate([1.1, 1.2, 1.3, 1.4, 10.0], 1)]
    arrays, _ = guard.aggregate_train(1, replies)
    # robust aggregate 1.3 (0.3 from the global), moved 1.5 times as far: 1.45, as fl.population computes it
    assert float(arrays["w"].numpy()[0]) == pytest.approx(1.45, rel=1e-5)


def test_server_momentum_on_a_robust_aggregate_matches_the_experiment():
    from mvstylizer.fl.population import ServerOpt

    guard = build_strategy(StrategyConfig(name="median", server_lr=0.75, server_momentum=0.5, min_train_nodes=1,
                                          min_available_nodes=1))
    opt = ServerOpt("sgd", 0.75, 0.5)
    glob = np.full(3, 1.0)
    for r, moves in enumerate(([0.1, 0.2, 0.3], [-0.2, 0.05, 0.4]), 1):
        list(guard.configure_train(r, ArrayRecord({"w": Array(glob.astype(np.float32))}), ConfigRecord(), _Grid()))
        replies = [_reply(i, {"w": (glob + m).astype(np.float32)}) for i, m in enumerate(moves, 1)]
        arrays, _ = guard.aggregate_train(r, replies)
        expected = opt.step([glob], [glob + float(np.median(moves))], r)[0]
        np.testing.assert_allclose(arrays["w"].numpy(), expected, rtol=1e-5)
        glob = arrays["w"].numpy().astype(np.float64)
    assert float(glob[0]) != pytest.approx(1.0 + 0.75 * (0.2 + 0.05))  # the second step carried momentum


def test_server_learning_rate_scales_the_averaged_update():
    glob = {"w": np.full(3, 1.0, np.float32)}
    guard = build_strategy(StrategyConfig(server_lr=3.0, min_train_nodes=1, min_available_nodes=1))
    list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(), _Grid()))
    replies = [_reply(i, {"w": np.full(3, v, np.float32)}) for i, v in enumerate([1.1, 1.3], 1)]
    arrays, _ = guard.aggregate_train(1, replies)
    assert float(arrays["w"].numpy()[0]) == pytest.approx(1.0 + 3.0 * 0.2)  # mean delta 0.2, applied x3
    with pytest.raises(UserError):
        StrategyConfig(server_lr=0.0)


def test_guard_drops_an_update_pointing_against_the_others():
    rng = np.random.default_rng(0)
    glob = {"w": np.zeros(400, np.float32), "b": np.zeros(3, np.float32)}
    common = rng.normal(size=403)
    honest = [common + 1.5 * rng.normal(size=403) for _ in range(5)]
    deltas = [-honest[0], *honest[1:]]  # the first edge sign-flips its update
    replies = [_reply(i, {"w": d[:400].astype(np.float32), "b": d[400:].astype(np.float32)}, n=4.0 + i)
               for i, d in enumerate(deltas, 1)]
    guard = build_strategy(StrategyConfig(name="fedavg", min_agreement=0.0, min_train_nodes=1,
                                          min_available_nodes=1))
    list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(), _Grid()))
    arrays, metrics = guard.aggregate_train(1, replies)
    assert metrics["accepted-updates"] == 4 and metrics["rejected-updates"] == 1
    updates = {u["node"]: u for u in guard.last_round["updates"]}
    assert not updates[1]["accepted"] and updates[1]["reason"].startswith("mean agreement")
    assert updates[1]["agreement"] < 0 < min(updates[i]["agreement"] for i in range(2, 6))
    weights = np.arange(6.0, 10.0)  # frame counts of edges 2-5
    expected = np.tensordot(weights / weights.sum(), np.stack(deltas[1:]), axes=1)
    np.testing.assert_allclose(arrays["w"].numpy(), expected[:400], rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError):
        StrategyConfig(min_agreement=1.0)
    sent = CloudConfig(strategy=StrategyConfig(name="trimmed", min_agreement=0.0)).to_run_config()
    assert CloudConfig.from_run_config(sent).strategy.min_agreement == 0.0  # reaches the ServerApp


# ---------------------------------------------------------------- in-process federation


def _edge_dir(root: Path, seed: int, n: int = 5) -> Path:
    from mvstylizer.edge.store import FrameStore

    with FrameStore(root) as store:
        for i in range(n):
            store.add(to8(texture(48, 64, seed=seed * 100 + i)))
    return root


class InProcessGrid(Grid):
    """Edges are EdgeTrainer objects called directly; ``faults[(round, node)]`` makes an edge fail
    (``"drop"``: it dies mid-round) or lie (``"nan"`` / ``"huge"``: a poisoned update)."""

    def __init__(self, data_dirs: dict[int, Path], faults: dict[tuple[int, int], str] | None = None) -> None:
        self.trainer = EdgeTrainer()
        self.data_dirs = data_dirs
        self.faults = faults or {}
        self.train_calls: list[tuple[int, int]] = []

    def set_run(self, run_id: int) -> None:  # pragma: no cover - not used by Strategy.start
        raise NotImplementedError

    @property
    def run(self):  # pragma: no cover
        raise NotImplementedError

    def create_message(self, *args, **kwargs):  # pragma: no cover
        raise NotImplementedError

    def push_messages(self, messages):  # pragma: no cover
        raise NotImplementedError

    def pull_messages(self, message_ids):  # pragma: no cover
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return list(self.data_dirs)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            ctx = Context(run_id=1, node_id=node, node_config={"data-dir": str(self.data_dirs[node])},
                          state=RecordDict(), run_config={})
            rnd = int(msg.content.config_records["config"]["server-round"])
            fault = self.faults.get((rnd, node)) if msg.metadata.message_type == "train" else None
            if fault == "drop":
                replies.append(Message(Error(code=0, reason="edge dropped out"), reply_to=msg))
                continue
            if msg.metadata.message_type == "train":
                self.train_calls.append((rnd, node))
                reply = self.trainer.train(msg, ctx)
                if fault in ("nan", "huge"):
                    rec = next(iter(reply.content.array_records.values()))
                    bad = {k: v.numpy() * (np.nan if fault == "nan" else 1e6) for k, v in rec.items()}
                    reply.content["arrays"] = ArrayRecord({k: Array(v.astype(np.float32)) for k, v in bad.items()})
            else:
                reply = self.trainer.evaluate(msg, ctx)
            replies.append(reply)
        return replies


def _finite_model(path: Path) -> bool:
    from mvstylizer.models.safeload import load_pt

    blob = load_pt(path)  # weights only, like every loader
    return all(torch.isfinite(v.float()).all() for v in blob["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
def test_federation_survives_dropout_and_poison_then_resumes(tmp_path):
    dirs = {n: _edge_dir(tmp_path / f"edge{n}", seed=n) for n in (11, 12, 13)}
    cfg = CloudConfig(registry=str(tmp_path / "registry"), num_rounds=2, local=TINY,
                      strategy=StrategyConfig(min_train_nodes=2, min_evaluate_nodes=2, min_available_nodes=3))
    grid = InProcessGrid(dirs, faults={(1, 13): "drop", (2, 12): "nan", (2, 13): "huge"})
    torch.set_num_threads(1)
    registry = run_federation(grid, cfg)
    assert registry.rounds() == [0, 1, 2]
    r1, r2 = registry.entry(1).metrics, registry.entry(2).metrics
    assert [u["accepted"] for u in sorted(r1["updates"], key=lambda u: u["node"])] == [True, True, False]
    assert sum(u["accepted"] for u in r2["updates"]) == 1 and r2["train"]["rejected-updates"] == 2
    for rnd in (0, 1, 2):
        assert _finite_model(registry.entry(rnd).path)
    # Round 2's only honest update moved the model; the poisoned ones did not reach it.
    base, _ = load_base()
    from mvstylizer.models.training import load_weights

    load_weights(base, registry.entry(2).path)
    assert all(np.all(np.isfinite(v)) for v in parameter_arrays(base).values())
    # Each edge holds the newest global model for its edge server, written atomically.
    assert (dirs[11] / MODEL_FILE).is_file() and _finite_model(dirs[11] / MODEL_FILE)
    assert len(r2["edges"]) == 3 and all(math.isfinite(e["loss"]) for e in r2["edges"])

    # A restarted cloud resumes after the last completed round: only round 3 is trained.
    grid2 = InProcessGrid(dirs)
    cfg.num_rounds = 3
    run_federation(grid2, cfg)
    assert registry.rounds() == [0, 1, 2, 3]
    assert {r for r, _ in grid2.train_calls} == {1} and len(grid2.train_calls) == 3
    assert ModelRegistry(tmp_path / "registry").entry(3).metrics["train"]["accepted-updates"] == 3


def test_global_model_hash_is_sent_recorded_and_checked(tmp_path):
    """Issue 14 item 5: the cloud sends each global model's hash, records it per round, and an edge
    refuses arrays that do not match it; the stamp it publishes names the file's sha256."""
    import json

    from mvstylizer.models.safeload import params_digest, sha256_file

    glob = {"w": np.zeros(4, np.float32)}
    guard = build_strategy(StrategyConfig(min_train_nodes=1, min_available_nodes=1))
    sent = list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(),
                                      _Grid()))
    assert sent[0].content.config_records["config"]["model-sha256"] == params_digest(glob)
    sent = list(guard.configure_evaluate(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(),
                                         _Grid()))
    assert sent[0].content.config_records["config"]["model-sha256"] == params_digest(glob)

    net, meta = load_base()
    arrays = parameter_arrays(net)
    entry = ModelRegistry(tmp_path / "reg").save(0, net.state_dict(), meta, {}, params_sha256=params_digest(arrays))
    info = json.loads((entry.path.parent / "round.json").read_text())
    assert info["params_sha256"] == params_digest(arrays) and info["sha256"] == sha256_file(entry.path)

    def message(expected: str) -> Message:
        content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                              "config": ConfigRecord({"server-round": 1, "model-sha256": expected})})
        return Message(content=content, dst_node_id=1, message_type="evaluate")

    trainer = EdgeTrainer()
    assert trainer._model(message(params_digest(arrays)))[3] == params_digest(arrays)
    with pytest.raises(UserError, match="does not match the cloud's hash"):
        trainer._model(message("0" * 64))
    publish_model(tmp_path / "edge", net, meta, digest=params_digest(arrays), server_round=1)
    stamp = json.loads((tmp_path / "edge" / MODEL_FILE).with_suffix(".json").read_text())
    assert stamp["digest"] == params_digest(arrays) and stamp["sha256"] == sha256_file(tmp_path / "edge" / MODEL_FILE)


# ---------------------------------------------------------------- hot swap on the edge server


def test_model_watcher_swaps_without_failing_requests(tmp_path):
    from mvstylizer.edge.model_sync import ModelWatcher, SyncConfig
    from mvstylizer.edge.service import EdgeService
    from mvstylizer.models.dncm import DNCMStylizer
    from mvstylizer.wire import Encoding, encode_frame

    service = EdgeService()
    style_id = service.register_style(encode_frame(texture(64, 64, seed=3), Encoding("png")))
    frame = texture(40, 56, seed=4)
    before = service.stylize(style_id, "dncm:torch", [frame])[0]

    # A "new global model": the shipped one with its style map's output matrix nudged.
    net, meta = load_base()
    with torch.no_grad():
        net.style_map.Q.mul_(0.8)
    publish_model(tmp_path, net, meta, digest="new", server_round=1)

    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                out = service.stylize(style_id, "dncm:torch", [frame])[0]
                assert out.shape == frame.shape and np.all(np.isfinite(out))
            except BaseException as e:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(e)
                return

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    watcher = ModelWatcher(service, SyncConfig(tmp_path, interval_s=0.05),
                           build=lambda p: {"dncm:torch": DNCMStylizer(weights=p)})
    try:
        watcher.start()
        assert watcher.swaps == 1
        # A broken file is skipped: the new model keeps serving.
        (tmp_path / MODEL_FILE).write_bytes(b"not a model")
        deadline = threading.Event()
        deadline.wait(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        watcher.stop()
    assert not errors
    after = service.stylize(style_id, "dncm:torch", [frame])[0]
    assert watcher.swaps == 1
    assert np.abs(after - before).max() > 1e-3  # the new model serves, style state re-prepared


# ---------------------------------------------------------------- CLI input checks


@pytest.mark.parametrize("argv, message", [
    (["edge", "fl-join", "--superlink", "nohost", "--data-dir", "."], "HOST:PORT"),
    (["edge", "fl-join", "--superlink", "127.0.0.1:9092", "--data-dir", "/no/such/dir"], "not a folder"),
    (["fl", "simulate", "--edges", "2", "--rounds", "1", "--strategy", "trimmed", "--trim-beta", "0.7"], "beta"),
    (["cloud", "serve", "--port", "70000"], "port"),
    (["cloud", "serve", "--min-agreement", "2"], "agreement"),
])
def test_fl_cli_rejects_bad_input(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1


def test_cloud_serve_checks_its_starting_weights_before_starting_flower(tmp_path, capsys):
    """A file that is no model started the SuperLink and ended as 'finished:failed', no reason given."""
    notes = tmp_path / "notes.pt"
    notes.write_text("not a model")
    state = tmp_path / "state"
    assert main(["cloud", "serve", "--port", "19099", "--state-dir", str(state), "--base-weights", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "weights" in err and err.count("\n") == 1
    assert not (state / "superlink.log").exists()


def test_a_host_that_names_nothing_is_not_called_a_port_in_use(tmp_path, capsys):
    assert main(["cloud", "serve", "--host", "999.9.9.9", "--port", "19099", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--host 999.9.9.9 is not a name or address" in err and "in use" not in err


def test_a_second_cloud_on_a_state_folder_in_use_is_refused(tmp_path, capsys):
    """It rewrote the running cloud's Flower config, which then polled a dead SuperLink for ever."""
    from mvstylizer.files import lock_folder

    state = tmp_path / "state"
    state.mkdir()
    running = lock_folder(state, "held by the running cloud")
    try:
        assert main(["cloud", "serve", "--port", "19099", "--state-dir", str(state)]) == 2
    finally:
        running.close()
    err = capsys.readouterr().err
    assert "is in use by another running cloud" in err and err.count("\n") == 1
    assert not (state / "flwr-home").exists()


# ---------------------------------------------------------------- Flower's simulation engine


@pytest.mark.slow
def test_fl_simulation_reports_rounds_and_baselines(tmp_path):
    pytest.importorskip("ray")
    from mvstylizer.fl.partitions import PartitionSpec
    from mvstylizer.cloud.simulate import SimConfig, simulate

    cloud = CloudConfig(local=TINY)
    report = simulate(SimConfig(edges=2, rounds=2, cloud=cloud, registry=tmp_path / "registry",
                                partition=PartitionSpec(frames_per_edge=3, held_out_per_edge=2, video_stride=25)))
    import ray

    assert not ray.is_initialized()
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for row in report["rounds"]:
        for kind in ("federated", "local_only", "pretrained"):
            assert set(row[kind]["per_edge"]) == {"0", "1"}
            assert math.isfinite(row[kind]["mean_loss"])
    assert [f["scene"] for f in report["final"]] == ["street", "cg"]
    assert ModelRegistry(tmp_path / "registry").rounds() == [0, 1, 2]


def test_every_aggregation_rule_has_its_flower_strategy():
    from mvstylizer.cloud.strategies import FLOWER_STRATEGIES, StrategyConfig, build_strategy
    from mvstylizer.fl.aggregation import AGGREGATIONS

    assert set(FLOWER_STRATEGIES) == set(AGGREGATIONS)
    for name in AGGREGATIONS:
        assert build_strategy(StrategyConfig(name=name)) is not None
    with pytest.raises(SystemExit) as exit_:  # argparse reads its choices from the registry
        main(["cloud", "serve", "--strategy", "nope"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("flags", [["--lr", "inf"], ["--server-lr", "nan"], ["--local-epochs", "inf"],
                                   ["--reject-norm", "nan"], ["--clip-norm", "inf"], ["--finetune-lr", "nan"]],
                         ids=" ".join)
def test_fl_simulate_refuses_numbers_that_are_not_finite(capsys, flags):
    with pytest.raises(SystemExit) as exc:
        main(["fl", "simulate", *flags])
    assert exc.value.code == 2 and "expected a finite number" in capsys.readouterr().err


def test_strategy_config_refuses_nan_norms_from_python_too():
    for kwargs in ({"reject_norm": math.nan}, {"clip_norm": math.nan}, {"server_lr": math.inf}):
        with pytest.raises(UserError):
            StrategyConfig(**kwargs)


def test_fl_simulate_json_cannot_replace_its_base_weights(tmp_path, capsys):
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"weights")
    assert main(["fl", "simulate", "--base-weights", str(weights), "--json", str(weights)]) == 2
    assert "would overwrite" in capsys.readouterr().err and weights.read_bytes() == b"weights"


@pytest.mark.parametrize("flag", ["--state-dir", "--registry"])
def test_cloud_serve_with_a_file_for_a_folder_is_one_error_line(tmp_path, capsys, flag):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert main(["cloud", "serve", "--port", "19411", "--rounds", "1", flag, str(afile)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}")


def test_fl_join_passes_any_folder_name_to_flower_verbatim(tmp_path):
    from flwr.common.config import parse_config_args

    from mvstylizer.edge.fl_join import JoinConfig, supernode_command

    for name in ('st"q', "back\\slash", "tab\\tname", "with space"):
        store = tmp_path / name
        store.mkdir()
        (store / "index.sqlite").write_text("")
        cmd = supernode_command(JoinConfig(superlink="127.0.0.1:9092", data_dir=str(store)))
        node_config = cmd[cmd.index("--node-config") + 1]
        assert parse_config_args([node_config]) == {"data-dir": str(store.resolve())}
    quote = tmp_path / "it's"
    quote.mkdir()
    (quote / "index.sqlite").write_text("")
    with pytest.raises(UserError, match="cannot hold a path"):
        JoinConfig(superlink="127.0.0.1:9092", data_dir=str(quote))
