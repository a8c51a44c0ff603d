"""mvstylizer: edge-assisted photorealistic video style transfer for phones."""

__version__ = "0.1.0"
