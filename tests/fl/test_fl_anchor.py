"""The server's anchor toward generic content (``fl.anchor``): the same pull in the experiment and the cloud."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")
torch = pytest.importorskip("torch")

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

import mvstylizer.fl.anchor as anchor_mod  # noqa: E402
from mvstylizer.cloud.server_app import CloudConfig, anchor_pull  # noqa: E402
from mvstylizer.cloud.strategies import StrategyConfig, build_strategy  # noqa: E402
from mvstylizer.errors import UserError  # noqa: E402
from mvstylizer.fl.anchor import ANCHORS, AnchorConfig, build_anchor, params_of  # noqa: E402
from mvstylizer.fl.local import LocalConfig  # noqa: E402
from mvstylizer.fl.population import PopConfig, federate, prepare  # noqa: E402

TINY = LocalConfig(epochs=1.0, batch=2, size=32, lr=1e-4, max_steps=1)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def _shift_fit(net, bank, config, steps, *, round_seed=0, **kw):  # a stand-in local fit: +1 per step
    with torch.no_grad():
        for p in net.parameters():
            p.add_(float(steps))
    return {}


def test_anchor_config_refuses_unknown_kinds_and_weights():
    assert set(ANCHORS) == {"generic", "start"}
    for bad in ({"kind": "nope", "weight": 0.1}, {"kind": "start", "weight": 1.0}, {"kind": "start", "weight": -0.1},
                {"kind": "generic", "weight": 0.1, "steps": 0}, {"kind": "start", "weight": 0.0}):
        with pytest.raises(UserError):
            AnchorConfig(**bad)
    assert build_anchor(AnchorConfig(), _net(), _shift_fit, list) is None


def test_start_anchor_pulls_toward_the_starting_model():
    net = _net()
    start = params_of(net)
    anchor = build_anchor(AnchorConfig("start", 0.25), net, _shift_fit, list)
    glob = [p + 1.0 for p in start]
    stepped = [p + 2.0 for p in start]
    out = anchor.apply(glob, stepped, 1, TINY)
    for o, s in zip(out, start, strict=True):
        np.testing.assert_allclose(o, s + 0.75 * 2.0)


def test_generic_anchor_is_a_trusted_update_from_the_rounds_model(monkeypatch):
    frames = [np.zeros((8, 8, 3), np.uint8)]
    monkeypatch.setattr(anchor_mod, "generic_split", lambda max_side=0: (frames, []))
    seen: list[object] = []
    anchor = build_anchor(AnchorConfig("generic", 0.5, steps=3), _net(), _shift_fit,
                          lambda f: seen.append(f) or "bank")
    assert seen == [frames]  # the bank is built once, from the generic training part
    glob = [np.zeros((2, 3)), np.zeros(2)]
    stepped = [np.full((2, 3), 2.0), np.full(2, 2.0)]
    out = anchor.apply(glob, stepped, 4, TINY)
    # target = the round's model after 3 generic steps (+3), half of it: 0.5 * 2 + 0.5 * 3
    for o in out:
        np.testing.assert_allclose(o, 2.5)


def test_generic_split_keeps_train_and_validation_apart():
    train, val = anchor_mod.generic_split(max_side=64)
    assert len(train) > len(val) > 0
    assert all(max(f.shape[:2]) <= 64 and f.dtype == np.uint8 for f in train + val)


def test_cloud_guard_applies_the_anchor_after_the_server_step(tmp_path):
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    try:
        glob = {"w": np.full(3, 1.0, np.float32)}
        start = {"w": np.zeros(3)}

        def pull(current, stepped, server_round):
            return {k: 0.8 * stepped[k] + 0.2 * start[k] for k in stepped}

        guard = build_strategy(StrategyConfig(name="trimmed", server_lr=1.5, min_train_nodes=1,
                                              min_available_nodes=1), pull)

        class _Grid:
            def get_node_ids(self) -> list[int]:
                return [1, 2, 3, 4, 5]

        list(guard.configure_train(1, ArrayRecord({k: Array(v) for k, v in glob.items()}), ConfigRecord(), _Grid()))
        ask = Message(content=RecordDict({"config": ConfigRecord({})}), dst_node_id=1, message_type="train")
        replies = [Message(content=RecordDict({"arrays": ArrayRecord({"w": Array(np.full(3, v, np.float32))}),
                                               "metrics": MetricRecord({"num-examples": 4.0})}), reply_to=ask)
                   for v in (1.1, 1.2, 1.3, 1.4, 10.0)]
        arrays, _ = guard.aggregate_train(1, replies)
        # trimmed 1.3, server lr 1.5: 1.45; pulled a fifth of the way to 0
        assert float(arrays["w"].numpy()[0]) == pytest.approx(0.8 * 1.45, rel=1e-5)
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def test_cloud_anchor_comes_from_the_run_config_and_pulls_named_arrays():
    from mvstylizer.fl.local import load_base, parameter_arrays

    cfg = CloudConfig(strategy=StrategyConfig(name="trimmed", anchor="start", anchor_weight=0.5, anchor_steps=2))
    back = CloudConfig.from_run_config(cfg.to_run_config())
    assert back.strategy.anchor_config() == AnchorConfig("start", 0.5, 2)
    with pytest.raises(UserError):
        StrategyConfig(anchor="nope", anchor_weight=0.1)
    assert anchor_pull(CloudConfig(), load_base()[0], 0) is None
    net, _ = load_base()
    start = parameter_arrays(net)
    pull = anchor_pull(back, net, 3)
    stepped = {k: v + 1.0 for k, v in start.items()}
    out = pull(start, stepped, 1)
    assert set(out) == set(start)
    for k in start:
        np.testing.assert_allclose(out[k], start[k] + 0.5, atol=1e-6)


@pytest.mark.slow
def test_federate_with_the_generic_anchor_on_package_media():
    cfg = PopConfig(rounds=1, seeds=1, frames_per_clip=1, held_out_per_clip=1, eval_crops=2, strategy="trimmed",
                    local=TINY, anchor=AnchorConfig("generic", 0.3, steps=1))
    ctx = prepare(cfg)
    plain = federate(PopConfig(**{**cfg.__dict__, "anchor": AnchorConfig()}), ctx, 0)
    anchored = federate(cfg, ctx, 0)
    assert all(np.all(np.isfinite(p)) for p in anchored["params"])
    assert any(not np.allclose(a, b) for a, b in zip(anchored["params"], plain["params"], strict=True))


def test_tune_variants_override_the_server_the_rounds_and_the_local_recipe():
    from mvstylizer.fl.tune import SERVER_VARIANTS, variant

    cfg = PopConfig(rounds=10, local=TINY)
    r5 = variant(cfg, "trimmed_r5x2")
    assert (r5.strategy, r5.rounds, r5.local.epochs, r5.local.max_steps) == ("trimmed", 5, 4.0, 16)
    assert r5.local.lr == TINY.lr
    assert variant(cfg, "fedprox_mu1").local.proximal_mu == 1.0 and cfg.local.proximal_mu == 0.0
    assert variant(cfg, "trimmed_lr1.5_generic0.2").anchor == AnchorConfig("generic", 0.2)
    assert all(v.get("anchor", AnchorConfig()).kind in ("none", *ANCHORS) for v in SERVER_VARIANTS.values())


@pytest.mark.slow
def test_tune_checks_leave_each_edge_out_and_poison_on_validation_data():
    from mvstylizer.fl import tune

    cfg = PopConfig(rounds=1, seeds=1, frames_per_clip=1, held_out_per_clip=1, eval_crops=2, local=TINY)
    r = tune.tune(cfg, 1, 1, "1", variants=("trimmed", "trimmed_generic0.2"), checks=True)
    n = len(r["edges"])
    for row in r["stage1_server"].values():
        assert len(row["leave_one_out"]) == len(row["leave_one_out_minus_pretrained"]) == n
        assert np.isfinite(row["signflip_gain_kept"]) and np.isfinite(row["generic_validation"]["mean"])
    assert set(r["stage1_choice"]["constraints_failed"]) == {"trimmed", "trimmed_generic0.2"}
    assert r["stage1_choice"]["variant"] in ("trimmed", "trimmed_generic0.2")
