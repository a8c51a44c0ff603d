"""Colour transforms fit to a stylized image and applied to another, shared by the phone (meta-smoothing,
in-between frames), the edge's models (regions' local-affine projection, the learned smoother's
training) and the metrics (photorealism's affine fit). numpy and OpenCV only.

* :mod:`.affine`: per-pixel local affine colour maps (guided-filter fit), a global 3x4 fit, rendering
  them at any resolution;
* :mod:`.tone_curve`: per-channel monotone tone curves, the guide the affine maps are fit against.
"""
