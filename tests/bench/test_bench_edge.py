"""`bench edge --scenario abusive` (issue 14): a victim phone alone and with a flooding client, against
a real `edge serve` subprocess. Tiny sizes (mk, 64 px key frames, a few requests); structure only, no
timing assertions (the CPU is shared)."""

from __future__ import annotations

import json

import pytest

from mvstylizer.bench.edge import EdgeBenchConfig, run_edge_bench
from mvstylizer.cli import main

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.network


LATENCY_KEYS = {"requests", "ok", "errors", "statuses", "wall_s", "latency_p50_ms", "latency_p99_ms",
                "latency_max_ms"}


def _check_abusive(result: dict, victim_requests: int, connections: int) -> None:
    assert result["command"] == "mvstylizer bench edge --scenario abusive"
    assert result["config"]["scenario"] == "abusive"
    assert result["machine"]["cpu_count"] >= 1
    ab = result["abusive"]
    for phase in ("victim_alone", "victim_flooded"):
        v = ab[phase]
        assert set(v) == LATENCY_KEYS, phase
        assert v["requests"] == victim_requests
        # Both figures are there: the victim was answered in both phases (a flooder must not lock it out).
        assert v["ok"] == victim_requests and v["errors"] == 0, (phase, v)
        assert v["latency_p50_ms"] > 0 and v["latency_p99_ms"] >= v["latency_p50_ms"], (phase, v)
    assert ab["slowdown_p50"] is not None and ab["slowdown_p99"] is not None
    flood = ab["flood"]
    assert flood["connections"] == connections
    # The flooder really flooded: answered requests, and nothing but 200/429/503 (no 5xx errors, no resets).
    assert flood["answers_total"].get("200", 0) >= 1, flood
    assert set(flood["answers_total"]) <= {"200", "429", "503"}, flood
    assert isinstance(ab["server_rejected_total"], dict)


def test_bench_edge_abusive_scenario_reports_victim_alone_and_flooded():
    cfg = EdgeBenchConfig(scenario="abusive", model="mk", key_size=64, frames=4, batch=2, victim_requests=3,
                          flood_connections=3, flood_batch=2, flood_settle_s=0.3)
    logged: list[str] = []
    _check_abusive(run_edge_bench(cfg, log=logged.append), 3, 3)
    assert any("victim alone" in m for m in logged) and any("flooder" in m for m in logged)


def test_bench_edge_cli_abusive_writes_json(tmp_path, capsys):
    out = tmp_path / "abusive.json"
    assert main(["bench", "edge", "--scenario", "abusive", "--model", "mk", "--key-size", "64", "--batch", "2",
                 "--victim-requests", "2", "--flood-connections", "2", "--flood-batch", "2",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    _check_abusive(result, 2, 2)
    assert result["config"]["flood_batch"] == 2
    assert "load" not in result and "transport" not in result  # the abusive scenario runs alone


def test_bench_edge_load_scenario_still_reports_transport_and_load():
    cfg = EdgeBenchConfig(phones=(1, 2), requests=2, batch=2, model="mk", key_size=64, frames=4, transport_frames=2)
    result = run_edge_bench(cfg)
    assert result["command"] == "mvstylizer bench edge" and "abusive" not in result
    assert [r["phones"] for r in result["load"]] == [1, 2]
    assert all(r["errors"] == 0 and r["latency_p50_ms"] is not None for r in result["load"]), result["load"]
    assert len(result["transport"]) == 5
    assert result["server_frames_counted"] >= 2 * 2 + 2 * 2 * 2  # warm-up + both loads
