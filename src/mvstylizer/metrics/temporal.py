"""Temporal consistency: the warping error (the previous output warped by flow vs this one, occlusions
masked), batch and streaming.

Definition (colours in [0, 1]):

    E_warp = mean over t of  sum_x M_t(x) * ||O_t(x) - warp(O_{t-1}, F_t)(x)||^2  /  sum_x M_t(x)

where ``||.||^2`` is the squared Euclidean norm over the 3 colour channels.

Flow direction: ``F_t`` is the flow of the *input* frames with reference = frame t and
other = frame t-1, i.e. ``F_t[y, x] = (dx, dy)`` says that the pixel at (x, y) of frame t was at
(x + dx, y + dy) in frame t-1. Hence ``warp(O_{t-1}, F_t)`` (a backward warp, see
``mvstylizer.video.flow.warp``) lands in frame t's geometry and can be compared with ``O_t``
pixel-by-pixel. Example: content moving 3 px to the *right* from t-1 to t gives ``dx = -3``.
``M_t`` is True (or a weight > 0) where the pixel of frame t is visible in frame t-1.

Pairs whose mask is empty (sum M_t == 0) carry no information and are skipped, not counted as 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mvstylizer.imaging import as_float01
from mvstylizer.video.flow import FlowEstimator, occlusion_mask, to_gray8, warp


def flow_and_mask(
    prev_in: np.ndarray,
    cur_in: np.ndarray,
    preset: str = "medium",
    estimator: FlowEstimator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """DIS flow on the *input* frames, frame t -> t-1, and its forward-backward occlusion mask.

    Returns ``(flow, mask)``: ``flow`` HxWx2 float32 with reference = ``cur_in`` (frame t) and
    other = ``prev_in`` (frame t-1), so ``warp(prev, flow)`` is aligned with ``cur``; ``mask`` HxW bool,
    True where the pixel of frame t is visible in frame t-1 (round trip consistent and not leaving
    the frame). Pass ``estimator`` to reuse one DIS object over a video (``preset`` is then ignored).
    """
    if estimator is None:
        estimator = FlowEstimator(preset)
    g_prev = to_gray8(np.ascontiguousarray(prev_in))
    g_cur = to_gray8(np.ascontiguousarray(cur_in))
    flow_t_to_prev = estimator(g_cur, g_prev)
    flow_prev_to_t = estimator(g_prev, g_cur)
    mask = occlusion_mask(flow_t_to_prev, flow_prev_to_t)
    return flow_t_to_prev, mask


def _pair_terms(
    prev_out: np.ndarray, out: np.ndarray, flow: np.ndarray, mask: np.ndarray | None
) -> tuple[float, float]:
    """(sum M * ||O_t - warp(O_{t-1}, F)||^2, sum M) for one frame pair."""
    prev_out = as_float01(prev_out, "prev_out")
    out = as_float01(out, "out")
    if prev_out.shape != out.shape or out.ndim != 3:
        raise ValueError(f"frames must be HxWxC and equal, got {prev_out.shape} and {out.shape}")
    flow = np.asarray(flow, dtype=np.float32)
    if flow.shape != out.shape[:2] + (2,):
        raise ValueError(f"flow shape {flow.shape} does not match frames {out.shape[:2]} + (2,)")
    if mask is None:
        m = np.ones(out.shape[:2], dtype=np.float64)
    else:
        m = np.asarray(mask, dtype=np.float64)
        if m.shape != out.shape[:2]:
            raise ValueError(f"mask shape {m.shape} does not match frames {out.shape[:2]}")
    warped = warp(np.ascontiguousarray(prev_out), flow)
    if warped.ndim == 2:  # remap drops a singleton channel axis
        warped = warped[..., None]
    sq = ((out.astype(np.float64) - warped.astype(np.float64)) ** 2).sum(axis=2)
    return float((m * sq).sum()), float(m.sum())


class WarpErrorMeter:
    """Streaming warping error: feed one frame pair at a time, read ``value`` at the end.

    Keeps only running sums, so a whole video never has to be in memory. For the input-video floor,
    use a second meter fed with the input frames and the same flows and masks.
    """

    def __init__(self) -> None:
        self._total = 0.0
        self.pairs = 0  # pairs that contributed (non-empty mask)
        self.skipped = 0  # pairs with an empty mask

    def update(
        self, prev_out: np.ndarray, out: np.ndarray, flow: np.ndarray, mask: np.ndarray | None = None
    ) -> float:
        """Add the pair (O_{t-1}, O_t) with flow t -> t-1 and mask; returns this pair's error (nan if skipped)."""
        num, den = _pair_terms(prev_out, out, flow, mask)
        if den <= 0.0:
            self.skipped += 1
            return float("nan")
        err = num / den
        self._total += err
        self.pairs += 1
        return err

    @property
    def value(self) -> float:
        """Mean per-pair warping error so far; nan before any usable pair."""
        return self._total / self.pairs if self.pairs else float("nan")


def warp_error(
    frames_out: Sequence[np.ndarray] | np.ndarray,
    flows: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray | None] | np.ndarray | None = None,
) -> float:
    """Warping error of a clip held in memory (see the module docstring for the definition).

    ``frames_out`` has T frames; ``flows[i]`` and ``masks[i]`` belong to the pair
    (frames_out[i], frames_out[i+1]), i.e. ``flows[i]`` maps frame i+1 to frame i. ``masks=None``
    means every pixel counts. Returns nan if no pair has a non-empty mask.
    """
    n = len(frames_out)
    if n < 2:
        raise ValueError(f"warping error needs at least 2 frames, got {n}")
    if len(flows) != n - 1:
        raise ValueError(f"need {n - 1} flows for {n} frames, got {len(flows)}")
    if masks is not None and len(masks) != n - 1:
        raise ValueError(f"need {n - 1} masks for {n} frames, got {len(masks)}")
    meter = WarpErrorMeter()
    for i in range(n - 1):
        meter.update(frames_out[i], frames_out[i + 1], flows[i], None if masks is None else masks[i])
    return meter.value


def flat_mask(rgb: np.ndarray, threshold: float = 0.015, window: int = 7) -> np.ndarray:
    """True where the frame is flat: luminance standard deviation over a ``window`` x ``window``
    neighbourhood below ``threshold`` (luminance in [0, 1]).

    Walls, sky and table tops: where a video pipeline's temporal defects ("boiling" colour patches)
    are most visible, so the warping error is also reported restricted to these pixels.
    Luminance is Rec. 709 luma of the (gamma-encoded) RGB, the eye's brightness axis.

    Args:
        rgb: HxWx3 RGB, float in [0, 1] or uint8.
        threshold: largest local standard deviation that still counts as flat.
        window: side of the square neighbourhood, odd.

    Shape:
        rgb (H, W, 3) -> (H, W) bool.
    """
    import cv2

    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd size, got {window}")
    x = as_float01(rgb, "rgb")
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB frame, got shape {x.shape}")
    y = np.ascontiguousarray(x[..., 0] * 0.2126 + x[..., 1] * 0.7152 + x[..., 2] * 0.0722, dtype=np.float32)
    k = (window, window)
    mean = cv2.boxFilter(y, -1, k, borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.boxFilter(y * y, -1, k, borderType=cv2.BORDER_REFLECT)
    return (mean_sq - mean * mean) < threshold * threshold
