"""The edge's core: models, a per-style cache, and key-frame stylization.

Transport-agnostic: the in-process (embedded) edge and the HTTP server both wrap one ``EdgeService``,
so a video stylized through either path gives the same frames.

The style cache is bounded by count *and* bytes: each style's decoded photo plus the
states models prepared from it are counted, and the least recently used styles are dropped until the
total fits ``EdgeConfig.max_style_bytes`` (a client whose style was dropped gets 404 and re-sends it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..bars import within_bars
from ..errors import NotFoundError, UserError
from ..imaging import shrink_to
from ..models.base import Stylizer
from ..models.registry import aliases_of, available_models, create_model, resolve_name
from ..models.vgg_onnx import MIN_SIDE
from ..wire import decode_frame


@dataclass
class EdgeConfig:
    max_styles: int = 64  # cached style states; least recently used is dropped first
    max_style_side: int = 1024  # style statistics need no more; bounds memory and time per style
    # Bytes of all cached styles together (decoded photos + prepared states); LRU beyond it. The
    # newest style is always kept, so a style larger than this still works (uncached after the next).
    max_style_bytes: int = 256 * 1024**2

    def __post_init__(self) -> None:
        if self.max_styles < 1 or self.max_style_side < 1 or self.max_style_bytes < 1:
            raise ValueError("EdgeConfig needs max_styles, max_style_side and max_style_bytes >= 1")


@dataclass
class _Style:
    image: np.ndarray
    states: dict[str, Any] = field(default_factory=dict)  # model name -> prepared style state
    state_bytes: dict[str, int] = field(default_factory=dict)  # model name -> its state's size

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes) + sum(self.state_bytes.values())


def size_of(obj: Any, _seen: set[int] | None = None, _depth: int = 0) -> int:
    """Bytes held by arrays and tensors in ``obj`` (a model's prepared style state): numpy arrays,
    torch tensors, and containers, dataclasses or objects holding them. Small Python scalars count 0."""
    seen = _seen if _seen is not None else set()
    if id(obj) in seen or _depth > 8 or obj is None or isinstance(obj, (int, float, str, bool)):
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if obj.base is None or id(obj.base) not in seen else 0
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):  # torch.Tensor, without importing torch
        try:
            return int(obj.element_size() * obj.nelement())
        except Exception:  # noqa: BLE001 - a size estimate must never fail a request
            return 0
    if isinstance(obj, dict):
        return sum(size_of(v, seen, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(size_of(v, seen, _depth + 1) for v in obj)
    if dataclasses.is_dataclass(obj):
        return sum(size_of(getattr(obj, f.name, None), seen, _depth + 1) for f in dataclasses.fields(obj))
    if hasattr(obj, "__dict__"):
        return sum(size_of(v, seen, _depth + 1) for v in vars(obj).values())
    return 0


class EdgeService:
    """Thread-safe: the HTTP server calls it from worker threads."""

    def __init__(self, config: EdgeConfig | None = None) -> None:
        self.config = config or EdgeConfig()
        self._models: dict[str, Stylizer] = {}
        self._styles: OrderedDict[str, _Style] = OrderedDict()
        self._style_bytes = 0  # sum of the cached styles' nbytes
        self._lock = threading.Lock()  # held for lookups only, never while a model works
        self._making: dict[tuple[str, str], threading.Lock] = {}  # a model or style state being made

    @property
    def style_cache_bytes(self) -> int:
        """Bytes held by the style cache (decoded photos + prepared states)."""
        with self._lock:
            return self._style_bytes

    def models(self) -> list[dict]:
        return [{"name": s.name, "description": s.description, "runtimes": list(s.runtimes),
                 "aliases": aliases_of(s.name), "spatial": s.spatial} for s in available_models()]

    def register_style(self, encoded: bytes,
                       decode: Callable[[bytes], np.ndarray] = decode_frame) -> str:
        """Store a style photo (encoded image bytes); its id is the content hash, so re-sending is free.
        ``decode`` turns the bytes to an RGB image (the server checks its limits as it decodes); it is
        called once, and not at all for a style already registered."""
        style_id = hashlib.sha256(encoded).hexdigest()[:32]
        with self._lock:
            if style_id in self._styles:
                self._styles.move_to_end(style_id)
                return style_id
        try:
            image = decode(encoded)
        except ValueError:
            raise UserError("style is not a decodable image") from None
        image = _style_sized(image, self.config.max_style_side)
        with self._lock:
            if style_id not in self._styles:  # another thread may have registered it meanwhile
                self._styles[style_id] = style = _Style(image)
                self._style_bytes += style.nbytes
            self._styles.move_to_end(style_id)
            self._evict()
        return style_id

    def _evict(self) -> None:
        """Drop least recently used styles (never the newest) beyond the count or byte limit. Lock held."""
        while len(self._styles) > 1 and (len(self._styles) > self.config.max_styles
                                         or self._style_bytes > self.config.max_style_bytes):
            _, old = self._styles.popitem(last=False)
            self._style_bytes -= old.nbytes

    def has_style(self, style_id: str) -> bool:
        """Whether ``style_id`` is registered now (it may still be evicted before it is used)."""
        with self._lock:
            return style_id in self._styles

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        name = resolve_name(model)
        stylizer = self._model(name)
        state = self._style_state(style_id, name, stylizer)
        # Letterbox and pillarbox bars are not the scene: the model styles the picture inside them.
        return [np.clip(within_bars(lambda x: stylizer.stylize(x, state), f), 0.0, 1.0).astype(np.float32)
                for f in frames]

    def _model(self, name: str) -> Stylizer:
        with self._lock:
            if name in self._models:
                return self._models[name]
            making = self._making.setdefault(("model", name), threading.Lock())
        # Built outside the service's lock (seconds for some models), once: every request, the
        # server's event loop included, takes that lock for a moment, and held while a model loaded
        # or a style was prepared it froze the whole server, health checks and all.
        with making:
            with self._lock:
                if name in self._models:
                    return self._models[name]
            stylizer = create_model(name)
            with self._lock:
                self._making.pop(("model", name), None)
                return self._models.setdefault(name, stylizer)  # unless swapped in meanwhile

    def _style_state(self, style_id: str, name: str, stylizer: Stylizer) -> Any:
        with self._lock:
            style = self._styles.get(style_id)
            if style is None:
                raise unknown_style(style_id)
            self._styles.move_to_end(style_id)
            current = self._models.get(name) is stylizer
            if current and name in style.states:
                return style.states[name]
            making = self._making.setdefault((style_id, name), threading.Lock())
        if not current:  # the model was swapped since this request took it: prepared for the old one, uncached
            return stylizer.prepare_style(style.image)
        with making:  # one preparation per style and model; others wait for it, not for the service
            with self._lock:
                if name in style.states and self._models.get(name) is stylizer:
                    return style.states[name]
            state = stylizer.prepare_style(style.image)
            with self._lock:
                self._making.pop((style_id, name), None)
                if self._styles.get(style_id) is style and self._models.get(name) is stylizer:
                    style.states[name] = state
                    style.state_bytes[name] = size_of(state)
                    self._style_bytes += style.state_bytes[name]
                    self._evict()  # this style is the most recently used: it stays
            return state

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
                self._style_bytes -= style.state_bytes.pop(name, 0)


def unknown_style(style_id: str) -> NotFoundError:
    return NotFoundError(f"unknown style id {style_id!r}; register the style first")


def _style_sized(image: np.ndarray, max_side: int) -> np.ndarray:
    """A style photo at most ``max_side`` long and at least the feature trunk's ``MIN_SIDE`` across
    (it pools three times): a tiny or long thin style is enlarged (nearest neighbour: its colours
    are what counts), not refused."""
    image = shrink_to(image, max_side, min_side=MIN_SIDE)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        scale = MIN_SIDE / min(h, w)
        size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    return image
