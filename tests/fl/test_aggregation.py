"""The agreement screen: an edge whose updates point against the other edges' median is dropped."""

from __future__ import annotations

import numpy as np
import pytest

from mvstylizer.fl.aggregation import AgreementScreen, agreement


def _updates(n: int, seed: int = 0, shared: float = 1.0, own: float = 1.5) -> list[np.ndarray]:
    """Non-IID updates: a direction every edge shares plus a larger edge-specific part."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=5000)
    return [shared * common + own * rng.normal(size=5000) for _ in range(n)]


def test_honest_updates_agree_and_a_sign_flipped_one_does_not():
    honest = _updates(5)
    cos = agreement(honest)
    assert np.all(cos > 0.1)
    flipped = [-honest[0], *honest[1:]]
    cos = agreement(flipped)
    assert cos[0] < -0.1 and np.all(cos[1:] > 0.05)
    keep, _ = AgreementScreen(0.0)(list(range(5)), flipped)
    assert keep == [False, True, True, True, True]


def test_an_edge_is_judged_by_its_mean_agreement_over_rounds():
    """A sign-flipper that happens to agree in one round is still dropped once its mean is negative;
    an honest edge that disagrees in one round stays while its mean is not."""
    screen = AgreementScreen(0.0)
    screen.history = {"flipper": [-0.3, -0.2], "honest": [0.3, 0.2]}
    honest = _updates(5, seed=3)
    flipped = [-honest[0], *honest[1:]]
    keep, cos = screen(["flipper", "honest", "c", "d", "e"], [honest[0], -honest[1], *honest[2:]])
    assert cos[0] > 0 and cos[1] < 0  # this round the flipper sent an honest update, the honest edge a flipped one
    assert keep == [False, True, True, True, True]
    assert len(screen.history["flipper"]) == 3 and screen.history["c"] == [pytest.approx(cos[2])]
    keep, _ = AgreementScreen(0.0)(["flipper", "b", "c", "d", "e"], flipped)  # no history: this round decides
    assert keep[0] is False


def test_the_flipped_edge_cannot_pull_its_own_reference():
    """Its reference leaves it out: even a flipped update 100x longer is measured against the others."""
    honest = _updates(5, seed=1)
    cos = agreement([-100.0 * honest[0], *honest[1:]])
    assert cos[0] < -0.1 and np.all(cos[1:] > 0.0)


def test_screen_off_or_without_a_majority_keeps_everything():
    honest = _updates(4, seed=2)
    flipped = [-honest[0], *honest[1:]]
    off = AgreementScreen(-1.0)
    keep, cos = off(list(range(4)), flipped)
    assert keep == [True] * 4 and np.all(np.isnan(cos)) and not off.history
    screen = AgreementScreen(0.0)
    keep, cos = screen([0, 1], flipped[:2])  # two edges: no majority to agree with
    assert keep == [True, True] and np.all(np.isnan(cos)) and screen.history == {0: [], 1: []}
    keep, cos = screen([0, 1, 2], [np.zeros(10), np.ones(10), np.ones(10)])  # a zero update has no direction
    assert keep == [True, True, True] and np.isnan(cos[0]) and cos[1] == pytest.approx(1.0)


def test_a_round_never_loses_its_majority():
    """Five edges all below the threshold (a first round can look like that): only the two lowest go."""
    screen = AgreementScreen(0.5)
    honest = _updates(5, seed=4)
    first_pass = agreement(honest)
    keep, cos = screen(list("abcde"), honest)
    assert np.all(first_pass < 0.5) and keep.count(False) == 2
    assert not keep[int(np.argmin(first_pass))]  # the lowest goes first, the next is chosen without it


def test_an_honest_edge_like_the_flipper_is_judged_without_it():
    """An honest edge whose scenes resemble the flipper's own looks bad against a reference the flipper
    sits in; once the flipper is out, it is judged by the honest edges alone and kept."""
    rng = np.random.default_rng(5)
    common, street = rng.normal(size=4000), rng.normal(size=4000)
    honest = [0.1 * common + street, 0.1 * common + street + 0.3 * rng.normal(size=4000),
              *[common + rng.normal(size=4000) for _ in range(3)]]
    assert np.all(agreement(honest) > 0.2)
    flipped = [-honest[0], *honest[1:]]
    first_pass = agreement(flipped)
    assert first_pass[1] < 0  # the street-like indoor edge against a reference holding -street
    keep, cos = AgreementScreen(0.0)(list(range(5)), flipped)
    assert keep == [False, True, True, True, True] and cos[1] > 0


def test_three_edges_lose_at_most_one_and_keep_their_scores():
    honest = _updates(3, seed=6)
    screen = AgreementScreen(0.0)
    keep, cos = screen(["a", "b", "c"], [-honest[0], honest[1], honest[2]])
    assert keep == [False, True, True]
    assert not np.isnan(cos).any() and all(len(screen.history[e]) == 1 for e in "abc")
