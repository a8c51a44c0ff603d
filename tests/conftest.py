"""Shared fixtures and markers of the test tree, which mirrors ``src/mvstylizer``.

Markers (registered in pyproject.toml; ``make test-fast`` deselects slow, network and browser):

* ``slow``: trains models or starts Flower/Ray;
* ``media``: needs the real media of an installed package (``package_media``); skipped, not failed,
  when that package is missing. Given to every test that asks for the ``package_media`` fixture;
* ``network``: starts a server and talks to it over loopback sockets (edge, cloud, studio);
* ``browser``: drives Debian's Chromium through Playwright (the studio's page).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import texture, to8

from mvstylizer.bench.synthetic import write_test_clip
from mvstylizer.errors import UserError


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "package_media" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.media)


@pytest.fixture(scope="session")
def package_media() -> Callable[[str], Path]:
    """``package_media("coffee.png")``: the path of media that ships in an installed package; the test
    is skipped (with the pip command to install it) when the package is not there."""
    from mvstylizer.video.media import package_media as find

    def get(name: str) -> Path:
        try:
            return find(name)
        except UserError as exc:
            pytest.skip(str(exc))

    return get


@pytest.fixture(scope="module")
def style(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small warm, textured style photo (PNG)."""
    path = tmp_path_factory.mktemp("style") / "style.png"
    warm = np.clip(texture(60, 80, seed=11) * [1.2, 0.8, 0.5] + [0.1, 0.05, 0.0], 0, 1)
    cv2.imwrite(str(path), cv2.cvtColor(to8(warm), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96x64, 16-frame synthetic clip with camera motion (H.264 MP4)."""
    path = tmp_path_factory.mktemp("clip") / "in.mp4"
    write_test_clip(path, width=96, height=64, frames=16, fps=12.0)
    return path
