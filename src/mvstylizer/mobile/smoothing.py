"""Guided upsampling by per-pixel local affine colour models (non-learned): a single-frame upsampler.

Takes the low-resolution stylized key frame from the edge and the full-resolution original, fits
local colour maps at low resolution and applies them at full resolution: any scale factor, integer
or not. The quality and smoothing benchmarks use it as the classic guided-filter baseline. The video
pipeline no longer does: per-pixel maps fit to one frame amplify noise on flat areas, which made
the frames between keys boil; its keys are a global look plus a bilateral grid (mobile/look.py,
mobile/grid.py, mobile/interpolate.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..colour.affine import AffineFit, fit_global_affine, fit_local_affine, render


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
