"""`bench edge` options it cannot run with are refused before the video is read or a server started."""

from __future__ import annotations

import pytest

from mvstylizer.bench import edge
from mvstylizer.bench.edge import EdgeBenchConfig
from mvstylizer.cli import main
from mvstylizer.errors import UserError


@pytest.fixture
def nothing_runs(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the benchmark started work")

    monkeypatch.setattr(edge, "key_frames", fail)
    monkeypatch.setattr(edge, "_start_server", fail)


@pytest.mark.parametrize("argv, message", [
    (["--batch", "25", "--phones", "1", "--requests", "1"], "--batch 25 is more than the 24 key frames"),
    (["--batch", "25", "--scenario", "abusive"], "--batch 25 is more than the 24 key frames"),
    (["--key-size", "1"], "--key-size must be at least 16 pixels, got 1"),
    (["--key-size", "15", "--scenario", "abusive"], "--key-size must be at least 16 pixels"),
])
def test_cli_refuses_what_the_benchmark_cannot_run(capsys, nothing_runs, argv, message):
    assert main(["bench", "edge", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bench edge ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("kwargs", [
    {"phones": ()}, {"phones": (0,)}, {"requests": 0}, {"workers": 0}, {"batch": 0}, {"flood_batch": 0},
    {"scenario": "nope"}, {"key_size": 16.5}, {"transport_frames": 0}, {"frames": 4, "batch": 5},
])
def test_config_refuses_values_it_cannot_run(kwargs):
    with pytest.raises(UserError, match="bench edge"):
        EdgeBenchConfig(**kwargs)


def test_the_largest_batch_and_smallest_key_are_accepted():
    cfg = EdgeBenchConfig(batch=24, key_size=16)
    assert (cfg.batch, cfg.key_size) == (24, 16)
    EdgeBenchConfig(scenario="abusive", frames=4, batch=2)  # transport frames (8) cut to the 4 sampled
