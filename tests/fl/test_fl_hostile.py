"""The cloud and its commands against edges, files and arguments that are wrong or hostile: each is
refused on its own, without ending a federation run or a command with a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("flwr")
torch = pytest.importorskip("torch")

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict  # noqa: E402

from mvstylizer.cli import main  # noqa: E402
from mvstylizer.cloud.registry import ModelRegistry  # noqa: E402
from mvstylizer.cloud.serve import control_address  # noqa: E402
from mvstylizer.cloud.strategies import MAX_EXAMPLES, StrategyConfig, build_strategy  # noqa: E402
from mvstylizer.errors import UserError  # noqa: E402
from mvstylizer.fl.anchor import AnchorConfig  # noqa: E402
from mvstylizer.fl.flower import check_port_free  # noqa: E402
from mvstylizer.fl.tasks import starting_model  # noqa: E402

GLOB = {"w": np.ones((4, 4), np.float32), "b": np.ones(4, np.float32)}


pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py


class _Grid:
    def get_node_ids(self) -> list[int]:
        return [1, 2, 3]


def _reply(node: int, move: float, n: float = 5, extra: dict | None = None, arrays_name: str = "arrays",
           kind: str = "train") -> Message:
    ask = Message(content=RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type=kind)
    records: dict = {"metrics": MetricRecord({"num-examples": n, "train-loss": 0.1, **(extra or {})})}
    if kind == "train":
        records[arrays_name] = ArrayRecord({k: Array(v + np.float32(move)) for k, v in GLOB.items()})
    return Message(content=RecordDict(records), reply_to=ask)


def _guard(name: str = "fedavg"):
    guard = build_strategy(StrategyConfig(name=name, min_train_nodes=1, min_available_nodes=1))
    list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOB.items()}), ConfigRecord(), _Grid()))
    return guard


def test_frame_counts_past_any_edge_are_rejected_not_a_zeroed_model():
    # Two edges claiming 1e308 frames made the weights' sum infinite, every share 0 and the model all zeros.
    guard = _guard()
    arrays, _ = guard.aggregate_train(1, [_reply(1, 0.1, n=1e308), _reply(2, 0.1, n=1e308), _reply(3, 0.2)])
    np.testing.assert_allclose(arrays["w"].numpy(), 1.2, rtol=1e-6)
    reasons = [u["reason"] for u in guard.last_round["updates"]]
    assert reasons[0].startswith("bad num-examples") and reasons[2] == "ok"
    arrays, _ = _guard().aggregate_train(1, [_reply(1, 0.1), _reply(2, 0.3, n=MAX_EXAMPLES + 1)])
    np.testing.assert_allclose(arrays["w"].numpy(), 1.1, rtol=1e-6)  # one edge claiming 1e7+ decides nothing


@pytest.mark.parametrize("odd", ["extra_metric", "renamed_record", "text_array"])
def test_one_odd_reply_does_not_end_the_round(odd):
    # Flower refuses to aggregate replies whose record names or metric keys differ (the run ended);
    # an array of text raised a ValueError outside the guard's checks.
    def replies() -> list[Message]:
        out = [_reply(1, 0.1), _reply(2, 0.3)]
        if odd == "extra_metric":
            out.append(_reply(3, 0.5, extra={"gpu-temp": 50.0}))
        elif odd == "renamed_record":
            out.append(_reply(3, 0.5, arrays_name="weights"))
        else:
            bad = _reply(3, 0.5)
            bad.content["arrays"]["b"] = Array(np.array(["x"] * 4))
            out.append(bad)
        return out

    arrays, _ = _guard().aggregate_train(1, replies())
    # an odd but sound update counts (mean move 0.3); the text array's edge is rejected (mean 0.2)
    np.testing.assert_allclose(arrays["w"].numpy(), 1.2 if odd == "text_array" else 1.3, rtol=1e-6)
    arrays, _ = _guard("trimmed").aggregate_train(1, replies())
    assert arrays is not None and np.all(np.isfinite(arrays["w"].numpy()))


def test_an_evaluation_with_a_negative_count_is_left_out():
    guard = _guard()
    out = guard.aggregate_evaluate(1, [_reply(1, 0, n=1, kind="evaluate", extra={"loss": 0.07}),
                                       _reply(2, 0, n=-1, kind="evaluate", extra={"loss": 9.0, "psnr": 1.0})])
    assert out is not None and out["train-loss"] == pytest.approx(0.1) and "psnr" not in out


def test_a_damaged_registry_round_is_named_before_anything_starts(tmp_path):
    reg = ModelRegistry(tmp_path / "reg")
    net, meta = starting_model("dncm", None)
    reg.save(0, net.state_dict(), meta, {})
    folder = tmp_path / "reg" / "rounds" / "000000"
    reg.verify(0)
    (folder / "model.pt").write_bytes((folder / "model.pt").read_bytes()[:1000])
    with pytest.raises(UserError, match="round 0 of the model registry is damaged: model.pt"):
        reg.verify(0)
    (folder / "round.json").write_text('{"round": 0, "metr')
    with pytest.raises(UserError, match="round.json does not read"):
        reg.latest()


def test_a_torch_file_of_another_kind_is_not_a_starting_model(tmp_path):
    for i, blob in enumerate(([1, 2, 3], {"state_dict": [1, 2], "meta": {}})):
        path = tmp_path / f"{i}.pt"
        torch.save(blob, path)
        with pytest.raises(UserError, match="is not a dncm weights file"):
            starting_model("dncm", path)


def test_hosts_and_ports_flower_cannot_use_are_refused_first():
    assert control_address("::1", 9092) == ("::1", "[::1]:9092")
    assert control_address("0.0.0.0", 9092) == ("127.0.0.1", "127.0.0.1:9092")
    with pytest.raises(UserError, match="--host is empty"):
        check_port_free("", 18599)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UserError, match="in use"):
            check_port_free("127.0.0.1", busy.getsockname()[1])


def test_an_anchor_without_a_weight_is_refused():
    with pytest.raises(UserError, match="needs an anchor weight"):
        AnchorConfig("generic", 0.0)
    AnchorConfig("none", 0.0)


def test_local_epochs_past_any_round_are_refused(tmp_path, capsys):
    assert main(["fl", "simulate", "--local-epochs", "1e308", "--json", str(tmp_path / "r.json")]) == 2
    assert "--local-epochs in (0, 1000]" in capsys.readouterr().err


def test_the_tuning_command_says_what_is_wrong_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mvstylizer.fl.tune", "--footage", str(tmp_path / "none"),
                          "--json", str(tmp_path / "t.json"), "--stages", "1", "--variants", "trimmed"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip() == f"error: --footage {tmp_path / 'none'} is not a folder"
    out = subprocess.run([sys.executable, "-m", "mvstylizer.fl.tune", "--footage", str(tmp_path),
                          "--json", str(tmp_path / "missing" / "t.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "report folder does not exist" in out.stderr
    assert not (tmp_path / "t.json").exists()
