"""The edge's core: models, a per-style cache, and key-frame stylization.

Transport-agnostic: the in-process (embedded) edge and the HTTP server both wrap one ``EdgeService``,
so a video stylized through either path gives the same frames.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import NotFoundError, UserError
from ..imaging import shrink_to
from ..models.base import Stylizer
from ..models.registry import aliases_of, available_models, build_model, resolve_name
from ..wire import decode_frame


@dataclass
class EdgeConfig:
    max_styles: int = 64  # cached style states; least recently used is dropped first
    max_style_side: int = 1024  # style statistics need no more; bounds memory and time per style


@dataclass
class _Style:
    image: np.ndarray
    states: dict[str, Any] = field(default_factory=dict)  # model name -> prepared style state


class EdgeService:
    """Thread-safe: the HTTP server calls it from worker threads."""

    def __init__(self, config: EdgeConfig | None = None) -> None:
        self.config = config or EdgeConfig()
        self._models: dict[str, Stylizer] = {}
        self._styles: OrderedDict[str, _Style] = OrderedDict()
        self._lock = threading.Lock()

    def models(self) -> list[dict]:
        return [{"name": s.name, "description": s.description, "runtimes": list(s.runtimes),
                 "aliases": aliases_of(s.name), "spatial": s.spatial} for s in available_models()]

    def register_style(self, encoded: bytes) -> str:
        """Store a style photo (encoded image bytes); its id is the content hash, so re-sending is free."""
        style_id = hashlib.sha256(encoded).hexdigest()[:32]
        with self._lock:
            if style_id in self._styles:
                self._styles.move_to_end(style_id)
                return style_id
        try:
            image = decode_frame(encoded)
        except ValueError:
            raise UserError("style is not a decodable image") from None
        image = shrink_to(image, self.config.max_style_side)
        with self._lock:
            self._styles[style_id] = _Style(image)
            while len(self._styles) > self.config.max_styles:
                self._styles.popitem(last=False)
        return style_id

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        name = resolve_name(model)
        stylizer = self._model(name)
        state = self._style_state(style_id, name, stylizer)
        return [np.clip(stylizer.stylize(f, state), 0.0, 1.0).astype(np.float32) for f in frames]

    def _model(self, name: str) -> Stylizer:
        with self._lock:
            if name not in self._models:
                self._models[name] = build_model(name)
            return self._models[name]

    def _style_state(self, style_id: str, name: str, stylizer: Stylizer) -> Any:
        with self._lock:
            style = self._styles.get(style_id)
            if style is None:
                raise NotFoundError(f"unknown style id {style_id!r}; register the style first")
            self._styles.move_to_end(style_id)
            if self._models.get(name) is not stylizer:
                # The model was swapped since this request took it: prepare for the old one, uncached.
                return stylizer.prepare_style(style.image)
            if name not in style.states:
                style.states[name] = stylizer.prepare_style(style.image)
            return style.states[name]

    def swap_model(self, name: str, stylizer: Stylizer) -> None:
        """Serve ``stylizer`` for model ``name`` from the next request on (federated model updates).

        Requests already running keep the object they took; the style states prepared with the old
        model are dropped, since a style's state depends on the model's weights.
        """
        name = resolve_name(name)
        with self._lock:
            self._models[name] = stylizer
            for style in self._styles.values():
                style.states.pop(name, None)

