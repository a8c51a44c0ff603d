"""Fixtures shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import texture

from mvstylizer.video.image import write_image


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of two small photos (``tmp_path/photos``)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        write_image(folder / f"p{i}.png", texture(40, 48, seed=i))
    return folder
