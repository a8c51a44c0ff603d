"""Classic, non-DNN photorealistic colour transfer.

These are honest baselines, not the paper's DNN: each is one global colour transform, so structure can
never distort, but they cannot make spatially varying changes (sky one way, grass another).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..imaging import model_rgb
from .tone import soft_clip

_MAX_STATS_PIXELS = 512 * 512  # colour statistics converge long before full resolution


def _stats_sample(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h * w > _MAX_STATS_PIXELS:
        s = (_MAX_STATS_PIXELS / (h * w)) ** 0.5
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return img


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 RGB in [0,1] -> CIE Lab (float32, L in [0, 100])."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    # Soft knee rather than a clip: a transfer towards a dark or bright style otherwise flattens
    # everything it pushes past black or white (18-21% of pixels on the DPST pairs).
    return soft_clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB))


# Lab units: colour spread below this is taken for sensor noise, not signal. Without it a flat or
# dark frame's noise (0.4 Lab) was stretched ~50x to a full-range colour confetti (the same floor
# as regions' statistics).
_NOISE_FLOOR = 2.0


def _mean_cov(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lab.reshape(-1, 3).astype(np.float64)
    mu = x.mean(axis=0)
    # Population covariance (defined for a single pixel too), ridged by the noise floor.
    cov = (x - mu).T @ (x - mu) / len(x) + np.eye(3) * _NOISE_FLOOR**2
    return mu, cov


def _mean_std(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (ridged by the noise floor), in float64: float32 sums
    over 150k identical pixels were off by 0.08 Lab, which a flat frame's tiny std then amplified."""
    x = lab.reshape(-1, 3).astype(np.float64)
    return x.mean(axis=0), np.sqrt(x.var(axis=0) + _NOISE_FLOOR**2)


def sqrtm_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    vals, vecs = np.linalg.eigh(m)
    return (vecs * np.sqrt(np.clip(vals, 1e-9, None))) @ vecs.T


def monge_kantorovich(cov_c: np.ndarray, cov_s: np.ndarray) -> np.ndarray:
    """The 3x3 linear optimal-transport map between Gaussians of covariance ``cov_c`` and ``cov_s``."""
    half = sqrtm_psd(cov_c)
    inv = np.linalg.inv(half)
    return inv @ sqrtm_psd(half @ cov_s @ half) @ inv


def gaussian_w2_sq(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Squared Wasserstein-2 distance between two Gaussians."""
    half = sqrtm_psd(cov_b)
    cross = sqrtm_psd(half @ cov_a @ half)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * cross))


@dataclass
class ReinhardTransfer:
    """Reinhard et al. 2001: match per-channel mean and standard deviation in CIE Lab."""

    name: str = "reinhard"
    description: str = "classic, non-DNN: Reinhard mean/std colour transfer in Lab (global)"

    def prepare_style(self, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _mean_std(rgb_to_lab(_stats_sample(model_rgb(style))))

    def stylize(self, content: np.ndarray, style_state: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mu_s, sd_s = style_state
        content = model_rgb(content)
        lab_c = rgb_to_lab(content)
        mu_c, sd_c = _mean_std(rgb_to_lab(_stats_sample(content)))
        return _lab_to_rgb(((lab_c - mu_c) * (sd_s / sd_c) + mu_s).astype(np.float32))


@dataclass
class MongeKantorovichTransfer:
    """Linear Monge-Kantorovich colour transfer (Pitie & Kokaram 2007) in CIE Lab.

    The optimal-transport map between two Gaussians: it matches the full colour covariance, so
    correlated channels (a warm cast that also darkens) transfer, unlike Reinhard's per-channel match.
    """

    name: str = "mk"
    description: str = "classic, non-DNN: linear Monge-Kantorovich colour transfer in Lab (global)"

    def prepare_style(self, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _mean_cov(rgb_to_lab(_stats_sample(model_rgb(style))))

    def stylize(self, content: np.ndarray, style_state: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mu_s, cov_s = style_state
        content = model_rgb(content)
        mu_c, cov_c = _mean_cov(rgb_to_lab(_stats_sample(content)))
        t = monge_kantorovich(cov_c, cov_s)
        lab = rgb_to_lab(content)
        out = (lab.reshape(-1, 3) - mu_c.astype(np.float32)) @ t.T.astype(np.float32) + mu_s.astype(np.float32)
        return _lab_to_rgb(out.reshape(lab.shape))
