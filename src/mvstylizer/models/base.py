"""What every style-transfer model on the edge looks like."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Stylizer(Protocol):
    """A photorealistic style-transfer model.

    ``prepare_style`` digests the style photo once (statistics, features): a video uses one style for
    all of its key frames, so the edge caches the result per style. ``stylize`` maps an HxWx3 float32
    RGB content frame in [0,1] to a stylized frame of the same size.
    """

    name: str
    description: str

    def prepare_style(self, style: np.ndarray) -> Any: ...

    def stylize(self, content: np.ndarray, style_state: Any) -> np.ndarray: ...
