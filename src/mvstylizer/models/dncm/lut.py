"""dncm's colour transform as a ``.cube`` 3D LUT (DaVinci Resolve, Premiere, FFmpeg's ``lut3d``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...bars import find_bars
from ...errors import UserError
from ...files import atomic_path
from ...video.image import read_image, read_style
from .runtime import DNCMOnnxStylizer, DNCMStylizer

log = logging.getLogger(__name__)


def cube_grid(size: int) -> np.ndarray:
    """The size^3 x 3 lattice colours in .cube order: red varies fastest, then green, then blue."""
    idx = np.arange(size, dtype=np.float32) / (size - 1)
    b, g, r = np.meshgrid(idx, idx, idx, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(-1, 3)


_STYLE_SIDE = 1024  # the edge's default max_style_side


def export_cube(style: np.ndarray | str | os.PathLike[str], path: str | os.PathLike[str],
                content: np.ndarray | str | os.PathLike[str] | None = None, size: int = 33,
                model: DNCMStylizer | DNCMOnnxStylizer | None = None, title: str | None = None,
                strength: float = 1.0) -> Path:
    """Write the style's colour transform as a ``size``^3 Adobe/Resolve ``.cube`` 3D LUT (atomic).

    A LUT is one fixed colour function, while the model adapts its normalisation (nDNCM) to every
    content frame. So:

    * ``content`` given: the LUT is exactly the model's map for that content (normalise with the
      content's own code d, stylise with the style's code r): applying it to that content reproduces
      the model up to LUT interpolation. Use a representative frame of the footage. As ``stylize``
      does, d is the code of the picture inside the frame's letterbox or pillarbox bars
      (:mod:`mvstylizer.bars`): with the bars in, a letterboxed frame was normalised as a darker
      picture than it is, 30-38 levels off on average inside the picture. A frame black to the last
      pixel (a fade's end) has no picture to go by: the LUT then takes the neutral code, as without
      ``content``, and says so in a warning and in its header.
    * ``content`` None: the normalisation is the *neutral code* stored with the weights: the mean of d
      over the unfiltered training photos. Because nDNCM is linear in d, that is the average of the
      normalisations the model applies to ordinary, ungraded photos: the honest "typical footage"
      choice. It cannot remove a cast specific to your footage (the per-frame model can), and it is
      far from the per-frame look: mean abs difference to the per-frame model over 24 pairs (8
      photos x 3 mate-backgrounds styles) median 28.9/255, 11.3 to 40.0; 10-13/255 on
      stereo_motorcycle, 15-34 on chelsea and coffee, 67-91 on an astronomy image
      (hubble_deep_field); 24-32/255 against ``stylize``'s output on 4 pairs. Averaging the output
      maps instead of the codes was only ~8% closer. So pass a representative frame whenever there
      is one.

    Through FFmpeg's ``lut3d`` (tetrahedral) on 8-bit input, a content-referenced LUT matches the
    model run on the whole frame to 0.45-0.51/255 mean, 1/255 at the 99th percentile, 4 at most (4
    pairs). ``stylize`` itself is 0.3-1.3/255 (mean) off that (it runs the model on a 512 px key and
    carries the look to full size), so the LUT against ``stylize``'s output: 0.6-1.4/255 mean, 2-6
    at the 99th percentile, 7-17 at most (the same 4 photos; docs/MODELS.md names them).

    ``strength`` below 1 writes ``(1 - strength) x colour + strength x the look``, what ``stylize
    --strength`` renders: a blend of two colour functions is itself one, so the LUT holds it exactly.
    """
    if size < 2 or size > 256:
        raise UserError(f"LUT size must be in 2..256, got {size}")
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"strength must be in [0, 1], got {strength}")

    def _img(v: Any) -> np.ndarray:
        return read_image(v) if isinstance(v, (str, os.PathLike)) else np.asarray(v, np.float32)

    # A style file is read as stylize reads one (its transparent pixels left out, shrunk to the
    # edge's 1024 px as decoded), so the LUT is that run's colour function.
    style_img = read_style(style, _STYLE_SIDE) if isinstance(style, (str, os.PathLike)) else _img(style)
    model = model or DNCMOnnxStylizer()
    style_state = model.prepare_style(style_img)
    picture = None if content is None else _picture(_img(content))
    m_n = model.content_matrix(picture)
    grid = cube_grid(size)
    lut = model.map_colours(grid, m_n, style_state)
    if strength < 1.0:
        lut = (1.0 - strength) * grid + strength * lut
    norm = "content code of the given reference frame (inside its black bars)" if picture is not None else \
        "neutral code (mean content code over unfiltered training photos)"
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write(f'TITLE "{(title or "mvstylizer dncm").replace(chr(34), "")}"\n')
            f.write(f"# mvstylizer dncm colour transfer; normalisation: {norm}; strength {strength:g}\n")
            f.write(f"LUT_3D_SIZE {size}\n")
            f.write("DOMAIN_MIN 0.0 0.0 0.0\nDOMAIN_MAX 1.0 1.0 1.0\n")
            np.savetxt(f, lut, fmt="%.6f")
    return path


def _picture(frame: np.ndarray) -> np.ndarray | None:
    """The part of a reference frame the model styles: what lies inside its black bars; None for a frame
    black to the last pixel (stylize passes it through black)."""
    bars = find_bars(frame)
    if bars.black:
        log.warning("the content frame is black to the last pixel, so it has no picture to normalise the colours "
                    "by; the LUT uses the neutral normalisation, as without a content frame (give another frame "
                    "of the footage for one made for it)")
        return None
    return np.ascontiguousarray(bars.picture(frame))


def parse_cube(path: str | os.PathLike[str]) -> tuple[int, np.ndarray]:
    """(size, size^3 x 3 table in file order) from a .cube file; for tests and tools."""
    size, rows = None, []
    for line in Path(path).read_text(encoding="ascii").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith(("TITLE", "DOMAIN_")):
            continue
        if line.startswith("LUT_3D_SIZE"):
            size = int(line.split()[1])
            continue
        rows.append([float(v) for v in line.split()])
    if size is None:
        raise UserError(f"{path} has no LUT_3D_SIZE line")
    table = np.asarray(rows, np.float32)
    if table.shape != (size**3, 3):
        raise UserError(f"{path}: expected {size**3} rows of 3 values, found {table.shape}")
    return size, table
