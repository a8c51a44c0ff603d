"""Meta-smoothing, first version: guided upsampling by local affine colour models (non-learned).

Takes the low-resolution stylized key frame from the edge and the full-resolution original, fits
local colour maps at low resolution and applies them at full resolution: any scale factor, integer
or not, and the ridge/box regularisation of the fit irons out blotches, halos and JPEG blocks the
style transfer and the transport left. It is the default (it keeps the most of frame-by-frame
stylization end to end); the learned module (mobile/meta_smoothing.py) is the better upsampler on
the single-frame benchmark (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .affine import AffineFit, fit_global_affine, fit_local_affine, render


@dataclass
class GuidedUpsampler:
    fit: AffineFit = field(default_factory=AffineFit)

    def maps(self, content_low: np.ndarray, styled_low: np.ndarray, scale: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray]:
        """Local (HxWx12) and global (12) colour maps taking the low-res content to the stylized frame.

        ``scale`` (full / low resolution) is unused: the classic fit is the same at every scale."""
        if content_low.shape != styled_low.shape:
            raise ValueError(f"content {content_low.shape} and stylized {styled_low.shape} sizes differ")
        global_map = fit_global_affine(content_low, styled_low)
        return fit_local_affine(content_low, styled_low, self.fit, prior=global_map), global_map

    def upscale(self, styled_low: np.ndarray, content_low: np.ndarray, content8: np.ndarray) -> np.ndarray:
        """Full-resolution stylized frame (uint8 RGB) at ``content8``'s size."""
        coeffs, global_map = self.maps(content_low, styled_low)
        return render(coeffs, global_map, content_low, content8)
