"""Phone-side frames between two stylized key frames.

Two methods:

- ``transform`` (default): every key is kept as a colour transform fit to its stylization — a global
  look (:mod:`.look`) and, for spatially varying models, a bilateral grid of affine colour maps
  indexed by position and brightness (:mod:`.grid`), plus a finer grid of what that one leaves,
  applied only where the frame still looks like the key (:attr:`InterpConfig.detail`). A frame
  between keys ``a < t < b`` gets the two keys' transforms blended by temporal distance, applied to
  the real frame t. The grids are first moved by the camera's motion since each key (one similarity
  per key, fit to a coarse optical flow: :attr:`InterpConfig.follow_motion`), never by a per-pixel
  flow: nothing can land on the wrong object, flat walls stay as steady as the input, detail is
  frame t's own, and a key frame is rendered by the very same transform, so nothing jumps at keys.
- ``warp`` (the paper's, kept for comparison): warp the full-resolution stylized key frames into
  frame t by DIS flow, with forward-backward occlusion masks and temporal weights, and blend.

Measured on real camera clips (docs/BENCHMARKS.md, ``mvstylizer bench footage``), the transform
method replaced one that warped per-pixel affine colour maps by flow: those boiled on flat walls
(ill-conditioned fits amplify noise) and bled one object's colours onto another wherever flow was
wrong.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import cv2
import numpy as np

from ..bars import Bars, find_bars
from ..video.flow import FlowEstimator, occlusion_mask, resize_flow, warp
from .grid import GridConfig, ResidualGrid, fit_grid, in_pixels
from .look import SUBLEVELS, Look, blend_gap, fit_look, levels_to_rgb8, look_scratch

# Two keys' exposure gains for a frame closer than this (in log units, 2%) count as one: the frame is
# rendered through one blended grid, and the looks' parameter blend stands where it is close enough.
_SAME_GAIN = 0.02
_MIN_MOTION_SIDE = 16  # map pixels: a smaller picture has too little for flow to follow the camera
_STILL, _EASE = 0.25, 0.75  # map pixels (see Interpolator._motion)


@dataclass
class KeyFrame:
    """What the phone keeps of a stylized key frame while it fills the frames around it."""

    index: int
    look: Look
    grid: ResidualGrid | None = None  # spatially varying models only
    gray: np.ndarray | None = None  # key-size grey uint8, for the warp method's flow
    exposure: float = 0.0  # log exposure of the key frame (mobile/exposure.py)
    styled8: np.ndarray | None = None  # full-resolution output of the key, at full strength
    full8: np.ndarray | None = None  # the key's own full-resolution frame, kept at a strength below 1
    colours: np.ndarray | None = None  # (N, 3) float32 sample of the key's colours, in [0, 1]
    bars: Bars = field(default_factory=Bars)  # letterbox or pillarbox bars of the key, key-size pixels
    detail: ResidualGrid | None = None  # fine grid of what ``grid`` leaves (InterpConfig.detail)
    # The key at the map size, blurred (uint8 RGB): what a frame is compared with, to follow the
    # camera's motion since the key and to see where the picture has not changed (spatial models).
    picture: np.ndarray | None = None


@dataclass
class InterpConfig:
    method: str = "transform"
    # The grid is sliced with the frame's brightness and colours at this fraction of the key size,
    # then its residual is upsampled to the frame. Upsampling blurs the residual across the frame's
    # own edges (a dark coat's map spills onto the bright wall beside it): against `regions` run on
    # the full-resolution first frame of nine real clips, a key rendered through a slice at 0.25 of
    # the key size (128 x 72 for a 16:9 key) scored SSIM 0.959-0.982, at 0.5 0.967-0.984, at 1.0
    # 0.975-0.985; slicing costs ~0.5, ~1.7 and ~8 ms per frame. A frame no bigger than the key
    # (small videos) is sliced whole: no upsampling, and its other per-frame work is a fraction
    # of a 1080p frame's.
    map_scale: float = 0.5
    # How much of the style to apply, 0..1, as a preset's amount slider: each output frame is
    # (1 - strength) x the frame + strength x its full-strength rendering (:func:`with_strength`).
    # Blending the keys' transforms with the identity instead (their look parameters and grid maps) is
    # no blend of the outputs where a look mixes channels: half strength came out more saturated than
    # full with a neon style's look (a blue 30 levels above both ends).
    strength: float = 1.0
    grid: GridConfig = field(default_factory=GridConfig)
    # A second, finer grid (6 px cells, a tenth of the prior, half the smoothing) fit to what the
    # first leaves of the key, applied only where the frame still looks like the key at the same place.
    # The first grid alone is smooth enough that a map never lands on another object, and too smooth to
    # follow how a region-aware model reshades within a region (stripes of wallpaper flattened, a
    # pillow's folds): a key rendered through it scored SSIM 0.948-0.953 against the model run on the
    # full-resolution frame (three real clips, a two-region style), through both 0.967-0.968. Applied
    # everywhere, the fine grid carried a walking person's maps onto the pavement they left
    # (tests/mobile/test_interp_synthetic.py: flat-area warping error 2.5x frame-by-frame's); gated by
    # the frame's likeness to the keys, its maps hold where the picture has not changed and fall back
    # to the first grid where it has. Between two keys their detail grids are blended, as the first
    # grids are, and weighted by the two likenesses blended in time: one slice per frame.
    detail: GridConfig | None = field(default_factory=lambda: GridConfig(cell=6, prior=0.005, blur=0.5))
    # Likeness: the largest channel difference between the frame and the key at the map size, both
    # blurred by detail_blur map pixels (so a sub-pixel shift of texture does not count as change);
    # the detail's weight is exp(-(difference / detail_levels)^2): ~0.8 at 4 levels, ~0.02 at 16.
    detail_levels: float = 8.0
    detail_blur: float = 1.0
    # The keys' grids follow the camera: between two keys each key's grids (and the picture the
    # detail's likeness compares with) are moved by a similarity (pan, zoom, roll) fit robustly to a
    # coarse optical flow from the frame to that key at the map size, before the two are blended. Held
    # in place, a key's maps stayed where the camera had left them: a pan of a block and a half
    # between keys put a region-aware model's shading on the wrong blocks (the synthetic pan in
    # tests/mobile/test_interp_motion.py: 5 dB further from the model mid-gap). One global motion
    # per key, never a per-pixel warp: a person who moves on their own keeps the maps the camera gives
    # the frame, and where the picture changed the detail falls back to the first grid as before.
    follow_motion: bool = True
    # Two keys' looks are blended parameter by parameter (one look per frame). Where that strays more
    # than this many 8-bit levels from blending their outputs, which is exact, on the colours the two
    # keys hold, the difference is made on the frame at the map size and added with the grid's
    # residual (:class:`_LookMix`). The gap is measured on the keys' own colours: on ped_street_1080p's
    # first keys the whole colour cube's was 1.3 levels, theirs 0.43, so that pair needs no correction.
    blend_tolerance: float = 1.0
    # A frame the camera exposed darker or brighter than its keys (auto exposure hunting mid-gap)
    # is scaled back to their exposure before the look, as a model run on the frame itself would
    # normalise it (dncm's content normalisation, mk's and reinhard's statistics); by at most this
    # factor either way. 1.0 turns it off.
    max_exposure_gain: float = 1.33
    # Two neighbouring keys whose transforms differ on a frame by more than this mean number of 8-bit
    # levels do not bracket that frame reliably: the pipeline makes it a key as well.
    refine_levels: float = 6.0
    # warp method only
    flow_preset: str = "fast"
    occluded_weight: float = 0.02  # occluded pixels keep this much weight so the blend stays smooth

    def __post_init__(self) -> None:
        if self.method not in INTERPOLATORS:
            raise ValueError(f"interpolation must be one of {sorted(INTERPOLATORS)}, got {self.method!r}")
        if not 0.0 < self.map_scale <= 1.0:
            raise ValueError(f"map_scale must be in (0, 1], got {self.map_scale}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if self.detail_levels <= 0.0 or self.detail_blur < 0.0:
            raise ValueError(f"detail_levels must be > 0 and detail_blur >= 0, got {self.detail_levels}, "
                             f"{self.detail_blur}")


class Interpolator:
    """Makes key frames from their stylizations and renders every frame from its enclosing keys."""

    def __init__(self, config: InterpConfig | None = None, spatial: bool = True) -> None:
        self.config = config or InterpConfig()
        self.method = INTERPOLATORS[self.config.method]
        self.spatial = spatial  # fit a residual grid (spatially varying models) or the look alone
        self._flow: FlowEstimator | None = None
        self._motion_flow: FlowEstimator | None = None
        self._pair: tuple[int, int, bool] | None = None  # (a, b, parameter blend is close enough)
        # Keys are made on other threads than frames, so they have their own working images: one
        # set, taken in turn (per thread, three keys in flight held three sets, 450 MB at 4K), as a
        # key's render keeps a core busy anyway.
        self._frame_scratch = _Scratch()
        self._key_scratch = _Scratch()
        self._key_lock = threading.Lock()

    def key(self, index: int, content8: np.ndarray, styled: np.ndarray, full8: np.ndarray,
            exposure: float = 0.0, gray: np.ndarray | None = None) -> KeyFrame:
        """Key frame ``index`` from its key-size original (uint8), its stylization (float, same size)
        and its full-resolution original (uint8); renders the key's own output. ``exposure``: the
        frame's log exposure (:class:`~mvstylizer.mobile.exposure.ExposureTracker`); ``gray``: the
        key-size original's grey image, if the caller has it already. Touches no state that
        :meth:`frame` uses, so worker threads can make keys while frames render."""
        content = content8.astype(np.float32) * (1.0 / 255.0)
        # The edge passed the bars through (bars.py): fit over them, the global look had to map black
        # to black for the bars and to the style's dark tones for the picture, and darkened the
        # picture's shadows; the bars are passed through here too (_keep_bars).
        bars = find_bars(content8)
        # A spatially varying model's frames bigger than the key take their colours from the grid at the
        # map size and their finer detail from the look alone: the look's gains are fit to that detail.
        alone = self.spatial and content8.shape != full8.shape
        look = fit_look(bars.picture(content), bars.picture(styled),  # the whole key where it has no bars
                        detail_scale=self.config.map_scale if alone else None)
        if gray is None:
            gray = cv2.cvtColor(content8, cv2.COLOR_RGB2GRAY)
        key = KeyFrame(index, look, None, gray, exposure=exposure, colours=_colour_sample(content), bars=bars,
                       full8=full8 if self.config.strength < 1.0 else None)
        views = _Views(content8, self.config.detail_blur)
        if self.spatial:
            # Against the look's levels before they are rounded and clipped (at black or white), as
            # frames add the grid's offsets to them (one rounding and clip for both).
            residual = styled - look.levels(content8).astype(np.float32) * (1.0 / (255.0 * SUBLEVELS))
            mask = _picture_mask(bars, gray.shape)
            key.grid = fit_grid(gray, content, residual, self.config.grid, mask=mask)
            views = _Views(self._map_image(content8, full8), self.config.detail_blur)
            key.picture = views.blurred(1.0)
            if self.config.detail is not None:
                key.detail = fit_grid(gray, content, residual, self.config.detail, mask=mask, base=key.grid)
        with self._key_lock:
            levels, offsets = self._key_scratch.like(full8)
            grids = [] if key.grid is None else [(key.grid, 1.0, 1.0)]
            detail = None if key.detail is None or key.picture is None else \
                _Detail(key.detail, 1.0, [(key.picture, 1.0, 1.0)])
            key.styled8 = self._add_grid(look.levels(full8, levels), grids, views, scratch=offsets, detail=detail)
        _keep_bars(key.styled8, full8, bars, content8.shape)
        return key

    def frame(self, t: int, low8: np.ndarray, full8: np.ndarray, a: KeyFrame, b: KeyFrame,
              exposure: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
        """Stylized frame t (full-resolution uint8 RGB) from keys ``a`` and ``b`` (a.index <= t <= b.index).

        ``low8`` is frame t at the key size (uint8 RGB), ``exposure`` its log exposure. Pass ``out`` (an
        array like ``full8``) to have the frame written there: a caller that hands each frame on
        at once (to an encoder that copies it) saves a fresh full-resolution image per frame."""
        span = max(1, b.index - a.index)
        w_b = min(1.0, max(0.0, (t - a.index) / span))
        rendered = self.method.render(self, low8, full8, a, b, w_b, exposure, out)
        # The bars both keys have (subtitles coming and going in a bottom bar make it narrower on some
        # keys; a fade's black key has bars everywhere) and this frame still has: something moving into
        # a crushed-black band between two keys is picture, as the model styles it frame by frame (a
        # ball rising into a black sky came out unstyled, with a seam where it crossed the keys' bar).
        _keep_bars(rendered, full8, _shared_bars(a, b, low8), low8.shape)
        return rendered

    def _blend_transforms(self, low8: np.ndarray, full8: np.ndarray, a: KeyFrame, b: KeyFrame, w_b: float,
                          exposure: float, out: np.ndarray | None) -> np.ndarray:
        levels, offsets = self._frame_scratch.like(full8)
        # Each key sees the frame as exposed like itself: one gain for both (from the keys' blended
        # exposure) put each key's transform ~10% off its own exposure during a camera's exposure ramp,
        # and the average of two non-linear transforms so read was biased (one-frame red pulses of 5-6
        # levels mid-gap on a wall near the red channel's clip point).
        gain_a = self._exposure_gain(a.exposure - exposure)
        gain_b = self._exposure_gain(b.exposure - exposure)
        one_gain = abs(math.log(gain_a / gain_b)) <= _SAME_GAIN
        look_a, look_b = a.look.exposed(gain_a), b.look.exposed(gain_b)
        look = look_a.blend(look_b, w_b)
        mix = None
        if not (w_b in (0.0, 1.0) or (one_gain and self._blends_by_parameters(a, b))):
            mix = _LookMix(look_a, look_b, w_b, look, clip_black=a.grid is None)
        grids: list[tuple[ResidualGrid, float, float]] = []
        views = _Views(self._map_image(low8, full8), self.config.detail_blur)
        # The keys' maps follow the camera: each key's grids are moved to where its picture has gone
        # in this frame before the two are blended (the picture to compare with for likeness too).
        move_a = move_b = None
        if self.config.follow_motion and a.picture is not None and b.picture is not None and 0.0 < w_b < 1.0:
            seen = cv2.cvtColor(views.blurred(1.0), cv2.COLOR_RGB2GRAY)
            move_a, move_b = self._motion(seen, a.picture), self._motion(seen, b.picture)
        if a.grid is not None and b.grid is not None:
            ga, gb = a.grid.warped(move_a), b.grid.warped(move_b)
            if one_gain:  # one slice of the blended grid
                grids = [(ga.blend(gb, w_b), look.exposure, 1.0)]
            else:
                grids = [(g, gain, wt) for g, gain, wt in ((ga, gain_a, 1.0 - w_b), (gb, gain_b, w_b))
                         if wt > 0.0]
        detail = None
        if a.detail is not None and b.detail is not None and a.picture is not None and b.picture is not None:
            # One slice of the blended detail, weighted by the keys' likenesses (each key's with the frame
            # seen at its exposure) blended in time. A slice per key, each gated by its own likeness,
            # scored the same on two real clips (SSIM within 0.0002) for one more slice per frame; the
            # smaller of the two likenesses lost most of the detail's gain (SSIM 0.003-0.004 lower).
            sides = [(_moved(picture, m), gain, wt) for picture, m, gain, wt in
                     ((a.picture, move_a, gain_a, 1.0 - w_b), (b.picture, move_b, gain_b, w_b)) if wt > 0.0]
            detail = _Detail(a.detail.warped(move_a).blend(b.detail.warped(move_b), w_b), look.exposure, sides)
        return self._add_grid(look.levels(full8, levels), grids, views, out, mix, offsets, detail)

    def _warp_keys(self, low8: np.ndarray, full8: np.ndarray, a: KeyFrame, b: KeyFrame, w_b: float,
                   exposure: float, out: np.ndarray | None) -> np.ndarray:
        return self._warp(cv2.cvtColor(low8, cv2.COLOR_RGB2GRAY), full8, [(a, 1.0 - w_b), (b, w_b)])

    def _exposure_gain(self, log_gain: float) -> float:
        limit = self.config.max_exposure_gain
        if limit <= 1.0:
            return 1.0
        return float(np.clip(np.exp(log_gain), 1.0 / limit, limit))

    def keys_disagree(self, a: KeyFrame, b: KeyFrame, content8: np.ndarray, exposure: float = 0.0) -> bool:
        """Whether keys a and b style ``content8`` (a frame between them at the key size, at log exposure
        ``exposure``) so differently that blending them would be a guess (mean difference over its
        picture > ``refine_levels``; bars that both keys and the frame have are passed through as the
        frame renders them, so they do not count). Each key's transform is taken as the frame would be
        rendered through it, exposure undone: a camera that only re-exposed between the keys needs no
        key between. For a spatially varying model that is the look and the first grid, at the map
        size (the detail grid is left out: it falls back to the first grid wherever the picture changed)."""
        if not self.method.refines_keys:
            return False
        gains = [self._exposure_gain(k.exposure - exposure) for k in (a, b)]
        picture = _picture_mask(_shared_bars(a, b, content8), content8.shape)
        if a.grid is None or b.grid is None or a.picture is None or b.picture is None:
            sample = content8[::4, ::4]
            looks = [k.look.exposed(g) for k, g in zip((a, b), gains, strict=True)]
            diff = cv2.absdiff(looks[0].apply(sample), looks[1].apply(sample))
            return _mean_over(diff, None if picture is None else picture[::4, ::4]) > self.config.refine_levels
        # A spatially varying model's keys are compared as each would render the frame alone: look and
        # grid, the grid moved with the camera. Their looks alone missed keys whose regions' maps differ:
        # hands and arms moving on their own between keys, new content pushed in, where the frames
        # between, blended from two stale maps, fell 0.02-0.03 SSIM below the model mid-gap.
        h, w = a.picture.shape[:2]
        if content8.shape[:2] != (h, w):
            content8 = cv2.resize(content8, (w, h), interpolation=cv2.INTER_AREA)
            if picture is not None:
                picture = cv2.resize(picture.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        views = _Views(content8, self.config.detail_blur)
        seen = cv2.cvtColor(views.blurred(1.0), cv2.COLOR_RGB2GRAY) if self.config.follow_motion else None
        rendered = []
        for key, gain in ((a, gains[0]), (b, gains[1])):
            grid = cast(ResidualGrid, key.grid).warped(
                None if seen is None else self._motion(seen, cast(np.ndarray, key.picture)))
            residual = grid.slice(*views.slice_inputs(gain)) * np.float32(255.0)
            rendered.append(np.clip(key.look.exposed(gain).float_levels(content8) + residual, 0.0, 255.0))
        return _mean_over(cv2.absdiff(*rendered), picture) > self.config.refine_levels

    def _blends_by_parameters(self, a: KeyFrame, b: KeyFrame) -> bool:
        if self._pair is None or self._pair[:2] != (a.index, b.index):
            colours = None if a.colours is None or b.colours is None else np.concatenate([a.colours, b.colours])
            self._pair = (a.index, b.index, blend_gap(a.look, b.look, colours) <= self.config.blend_tolerance)
        return self._pair[2]

    def _add_grid(self, base: np.ndarray, grids: list[tuple[ResidualGrid, float, float]], views: _Views,
                  out: np.ndarray | None = None, mix: _LookMix | None = None,
                  scratch: np.ndarray | None = None, detail: _Detail | None = None) -> np.ndarray:
        """``base`` (a look's levels, :meth:`Look.levels`, overwritten) plus the residuals of ``grids`` (each
        ``(grid, gain, weight)``: sliced with the frame's colours times ``gain``, weighted), ``detail``
        (weighted per pixel by the frame's likeness to its keys) and ``mix``'s correction, all made on
        ``views`` (of the frame at the map size, :meth:`_map_image`) and upsampled (into ``scratch``, int16
        of ``base``'s shape, if given), uint8, into ``out``."""
        if not grids and detail is None and mix is None:
            return levels_to_rgb8(base, out)
        small = views.seen(1.0)
        levels = mix.correction(small) if mix is not None else np.zeros(small.shape, np.float32)
        for grid, gain, weight in grids:
            levels += grid.slice(*views.slice_inputs(gain)) * np.float32(255.0 * weight)
        if detail is not None:
            likeness = self._likeness(views, detail.references)
            levels += detail.grid.slice(*views.slice_inputs(detail.gain)) * likeness[..., None]
        # Offsets in the look's sixteenths of a level as int16: OpenCV upsamples them and adds them to the
        # look's levels, and the sum is rounded to 8 bits once (float images cost ~4x).
        limit = np.float32(32767 // SUBLEVELS)  # int16; an offset beyond 2047 levels clips the same
        offsets = np.rint(np.clip(levels, -limit, limit) * np.float32(SUBLEVELS)).astype(np.int16)
        up = cv2.resize(offsets, base.shape[1::-1], dst=scratch, interpolation=cv2.INTER_LINEAR)
        return levels_to_rgb8(cv2.add(base, up, dst=base), out)

    def _map_image(self, low8: np.ndarray, full8: np.ndarray) -> np.ndarray:
        """``low8`` (a key-size frame) at the size its grids are sliced at for a frame like ``full8``."""
        h, w = low8.shape[:2]
        scale = 1.0 if low8.shape == full8.shape else self.config.map_scale
        size = max(2, round(w * scale)), max(2, round(h * scale))
        return cv2.resize(low8, size, interpolation=cv2.INTER_AREA) if size != (w, h) else low8

    def _motion(self, gray8: np.ndarray, picture: np.ndarray) -> np.ndarray | None:
        """How the picture moved from a key (its :attr:`KeyFrame.picture`) to the frame (``gray8``: its
        grey image at the map size, blurred as the picture is): a 2x3 similarity taking the frame's
        points to the key's, as fractions of the frame (:meth:`ResidualGrid.warped`), fit robustly to
        the optical flow between them. None (unmoved) for a picture under 16 map pixels a side, where
        no corner moves by a quarter of a map pixel, and where the fit is no camera move between two
        keys of one shot: a zoom beyond 1.5x either way or a corner moving by more than half the frame's
        width or height."""
        h, w = gray8.shape
        if min(h, w) < _MIN_MOTION_SIDE:
            return None
        if self._motion_flow is None:
            self._motion_flow = FlowEstimator("ultrafast")
        motion = fit_similarity(self._motion_flow(gray8, cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)))
        corners = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
        moved = (motion @ corners - corners[:2]) * np.array([[w], [h]])
        zoom = math.sqrt(abs(np.linalg.det(motion[:, :2])))
        if not (2.0 / 3.0 <= zoom <= 1.5) or np.abs(moved[0]).max() > w / 2 or np.abs(moved[1]).max() > h / 2:
            return None
        # The flow's own noise fits a still camera with motions of ~0.1 map pixels that come and go from
        # frame to frame; followed, they jittered the maps on a static shot's flat pavement (its warping
        # error 6% over frame-by-frame's, tests/mobile/test_interp_synthetic.py). Motions under a quarter
        # of a pixel are no motion, and the next three quarters of a pixel ease in, so nothing jumps.
        follow = min(1.0, max(0.0, (float(np.abs(moved).max()) - _STILL) / _EASE))
        if follow == 0.0:
            return None
        identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        return identity + follow * (motion - identity)

    def _likeness(self, views: _Views, references: list[tuple[np.ndarray, float, float]]) -> np.ndarray:
        """Per pixel of a frame at the map size (its ``views``) how much it still looks like every one of
        ``references`` (each ``(KeyFrame.picture, gain, weight)``: the frame seen at that key's exposure) at
        the same place, 0..1, times 255 (the detail's colour units are [0, 1], the offsets' 8-bit levels)."""
        table = np.float32(255.0) * np.exp(-np.square(np.arange(256, dtype=np.float32)
                                                      / np.float32(self.config.detail_levels)))
        out: np.ndarray = np.zeros(views.seen(1.0).shape[:2], np.float32)
        for reference, gain, weight in references:
            out += cv2.LUT(_largest_channel(cv2.absdiff(views.blurred(gain), reference)), table) * np.float32(weight)
        return out

    def _warp(self, gray: np.ndarray, full8: np.ndarray, sides: list[tuple[KeyFrame, float]]) -> np.ndarray:
        if self._flow is None:
            self._flow = FlowEstimator(self.config.flow_preset)
        h, w = full8.shape[:2]
        eps = self.config.occluded_weight
        layers, weights = [], []
        for key, weight in sides:
            if weight <= 0.0:
                continue
            if key.styled8 is None or key.gray is None:
                raise ValueError("warp interpolation needs the keys' grey and stylized frames")
            to_key = self._flow(gray, key.gray)
            seen = occlusion_mask(to_key, self._flow(key.gray, gray)).astype(np.float32)
            layers.append(warp(key.styled8, resize_flow(to_key, w, h)).astype(np.float32))
            weights.append(weight * (seen * (1.0 - eps) + eps))
        total = sum(weights)
        # sum() types its result as "array | 0" (its start); at least one side has weight > 0.
        out = cast(np.ndarray, sum(layer * cv2.resize(wt / total, (w, h))[..., None]
                                   for layer, wt in zip(layers, weights, strict=True)))
        return cv2.convertScaleAbs(out)


class _Views:
    """A frame at the map size as the keys see it, each view made once per frame: its colours times a
    key's exposure gain (:meth:`seen`), that blurred as the keys' pictures are (:meth:`blurred`, for the
    camera's motion and the likeness), and the brightness and float colours a grid is sliced with
    (:meth:`slice_inputs`). A frame's two grids, its detail, its likeness and its motion read the same
    views: made where each was used, the same blur ran three times a frame."""

    def __init__(self, small8: np.ndarray, blur: float) -> None:
        self._small, self._blur = small8, blur
        self._seen: dict[float, np.ndarray] = {}
        self._blurred: dict[float, np.ndarray] = {}
        self._inputs: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def seen(self, gain: float) -> np.ndarray:
        if gain not in self._seen:
            self._seen[gain] = cv2.convertScaleAbs(self._small, alpha=gain) if gain != 1.0 else self._small
        return self._seen[gain]

    def blurred(self, gain: float) -> np.ndarray:
        if gain not in self._blurred:
            img = self.seen(gain)
            self._blurred[gain] = cv2.GaussianBlur(img, (0, 0), self._blur) if self._blur > 0 else img
        return self._blurred[gain]

    def slice_inputs(self, gain: float) -> tuple[np.ndarray, np.ndarray]:
        if gain not in self._inputs:
            img = self.seen(gain)
            self._inputs[gain] = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), img.astype(np.float32) * np.float32(1.0 / 255.0)
        return self._inputs[gain]


class _Scratch:
    """Full-resolution working images for frames of one shape, reused: fresh ones cost their page
    faults every frame (at 4K, ~6 ms for the grid's upsampled offsets alone). Not thread-safe."""

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None
        self._levels = self._offsets = np.empty(0, np.int16)

    def like(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the look's two 16-bit images, the grid's upsampled int16 offsets) for frames like ``img``."""
        if self._shape != img.shape:
            self._shape = img.shape
            self._levels, self._offsets = look_scratch(img.shape), np.empty(img.shape, np.int16)
        return self._levels, self._offsets


@dataclass(frozen=True)
class _Detail:
    """A detail grid to slice (with the frame's colours times ``gain``) and the keys' pictures whose
    likeness to the frame gates it: ``(KeyFrame.picture, gain, weight)`` each, the frame seen at that key's
    exposure."""

    grid: ResidualGrid
    gain: float
    references: list[tuple[np.ndarray, float, float]]


@dataclass(frozen=True)
class _LookMix:
    """The exact blend of two keys' looks, ``(1 - w) a(c) + w b(c)``, for a frame rendered by their
    parameter blend ``blended`` instead: :meth:`correction` is what the exact blend adds, made on the
    frame at the map size and upsampled like the grid's residual. Blending the outputs at full
    resolution cost a second look per frame: 14 ms per such 1080p frame on a walking selfie, where 3
    of 4 in-between frames fall between keys too different to blend by parameters, 9.5 ms so. The
    correction is a smooth function of colour, so upsampling it only softens it across the frame's
    sharpest edges.

    What is blended: without a grid, each key's output, its look clipped at black (``clip_black``);
    with one, each key's look unclipped, as its grid's residual was fit against it (a key renders as
    its look plus its grid, clipped once), so a frame next to a key renders as the key does. The
    parameter blend it corrects is unclipped either way: it is added to the frame's unclipped levels."""

    a: Look
    b: Look
    w: float
    blended: Look
    clip_black: bool = True

    def correction(self, small8: np.ndarray) -> np.ndarray:
        """Exact blend minus parameter blend of ``small8`` (uint8 RGB), float32 8-bit levels."""
        exact = cv2.addWeighted(self.a.float_levels(small8, self.clip_black), 1.0 - self.w,
                                self.b.float_levels(small8, self.clip_black), self.w, 0.0)
        return exact - self.blended.float_levels(small8)


def with_strength(styled8: np.ndarray, frame8: np.ndarray, strength: float, out: np.ndarray | None = None
                  ) -> np.ndarray:
    """``(1 - strength) * frame8 + strength * styled8``, rounded (uint8 RGB of one shape; into ``out``
    if given, which may be ``styled8``): the output at a strength below 1. ``styled8`` itself at 1."""
    if strength >= 1.0:
        return styled8
    return cv2.addWeighted(frame8, 1.0 - strength, styled8, strength, 0.0, dst=out)


def _shared_bars(a: KeyFrame, b: KeyFrame, low8: np.ndarray) -> Bars:
    """The bars both keys have and the frame ``low8`` (key size) still has: a frame renders them as its
    own pixels, whatever the keys do there."""
    bars = a.bars.common(b.bars)
    return bars.common(find_bars(low8)) if bars else bars


def _picture_mask(bars: Bars, shape: tuple[int, ...]) -> np.ndarray | None:
    """Pixels of a key of ``shape`` inside its bars (None: the whole key)."""
    if not bars or bars.black:
        return None
    mask = np.zeros(shape[:2], bool)
    bars.picture(mask)[...] = True
    return mask


def _mean_over(diff: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean of an HxWx3 difference over the pixels where ``mask`` (HxW bool) is true; over all of them
    where it is None or true nowhere."""
    if mask is None or not mask.any():
        return float(np.mean(diff))
    return float(np.mean(diff[mask]))


def _keep_bars(out: np.ndarray, full8: np.ndarray, bars: Bars, key_shape: tuple[int, ...]) -> None:
    """Copy the frame's own letterbox or pillarbox bars (``bars``, in key-size pixels of a key of
    ``key_shape``) into ``out``, in place: only whole full-resolution rows and columns inside them."""
    if not bars or bars.black:
        return
    h, w = full8.shape[:2]
    sy, sx = h / key_shape[0], w / key_shape[1]
    top, bottom = math.floor(bars.top * sy), math.floor(bars.bottom * sy)
    left, right = math.floor(bars.left * sx), math.floor(bars.right * sx)
    if top:
        out[:top] = full8[:top]
    if bottom:
        out[h - bottom:] = full8[h - bottom:]
    if left:
        out[:, :left] = full8[:, :left]
    if right:
        out[:, w - right:] = full8[:, w - right:]


def _moved(img: np.ndarray, motion: np.ndarray | None) -> np.ndarray:
    """``img`` read where ``motion`` (2x3, fractions of the image) takes each point, edges repeated."""
    if motion is None:
        return img
    h, w = img.shape[:2]
    return cv2.warpAffine(img, in_pixels(motion, w, h), (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def fit_similarity(flow: np.ndarray, points: int = 400, rounds: int = 3) -> np.ndarray:
    """The similarity (scale, rotation, shift) that best explains ``flow`` (HxWx2, pixel x goes to
    x + flow(x)), as a 2x3 map of points given as fractions of the image: iteratively reweighted least
    squares (Cauchy weights) on about ``points`` evenly spread pixels, so pixels that move on their
    own (a walking person) barely count. Each round is the closed-form weighted Procrustes fit.

    The weights start from the median shift, not from a plain least-squares fit: with a still camera
    and one object moving on one side, plain least squares is a zoom-and-shift compromise that
    explains half of both, its residuals' median then calls the object an inlier, and the rounds
    stay there (a 3.7% zoom for a still camera, the background 3-5 dB further from the model; from the
    median, 0.2%). Choosing the simplest motion that explains as many pixels (none, a shift, the
    similarity) was tried and dropped: on low-texture footage (snow) the flow's noise made "none" win
    and the pan was lost (SSIM back to no motion's on four real clips).
    """
    h, w = flow.shape[:2]
    m = max(1, min(h, w) // 16)  # flow at the border sees half a neighbourhood
    if h - 2 * m < 1 or w - 2 * m < 1:
        return _unit_motion(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), w, h)
    step = max(1, round(math.sqrt((h - 2 * m) * (w - 2 * m) / points)))
    ys, xs = np.mgrid[m:h - m:step, m:w - m:step]
    f = flow[m:h - m:step, m:w - m:step].reshape(-1, 2).astype(np.float64)
    px, py = xs.ravel().astype(np.float64), ys.ravel().astype(np.float64)
    qx, qy = px + f[:, 0], py + f[:, 1]
    # From the median shift, not from a plain least-squares fit (see above).
    a, b = 1.0, 0.0
    tx, ty = (float(v) for v in np.median(f, axis=0))
    for _ in range(rounds + 1):
        dist = np.hypot(a * px - b * py + tx - qx, b * px + a * py + ty - qy)
        spread = max(0.5, 1.4826 * float(np.median(dist)))  # pixels
        weight = 1.0 / (1.0 + np.square(dist / spread))
        total = weight.sum()
        mpx, mpy, mqx, mqy = (float(weight @ v) / total for v in (px, py, qx, qy))
        cpx, cpy, cqx, cqy = px - mpx, py - mpy, qx - mqx, qy - mqy
        norm = float(weight @ (cpx * cpx + cpy * cpy)) + 1e-9
        a = float(weight @ (cpx * cqx + cpy * cqy)) / norm
        b = float(weight @ (cpx * cqy - cpy * cqx)) / norm
        tx, ty = mqx - (a * mpx - b * mpy), mqy - (b * mpx + a * mpy)
    return _unit_motion(np.array([[a, -b, tx], [b, a, ty]]), w, h)


def _unit_motion(px: np.ndarray, w: int, h: int) -> np.ndarray:
    """A 2x3 map of pixel centres of a w x h image as a map of points given as fractions of it."""
    to_px = np.array([[w, 0.0, -0.5], [0.0, h, -0.5], [0.0, 0.0, 1.0]])
    to_unit = np.array([[1.0 / w, 0.0, 0.5 / w], [0.0, 1.0 / h, 0.5 / h]])
    return to_unit @ np.vstack([px, [0.0, 0.0, 1.0]]) @ to_px


def _largest_channel(diff8: np.ndarray) -> np.ndarray:
    """Per pixel the largest of an HxWx3 uint8 image's channels (HxW uint8)."""
    return cv2.max(cv2.max(diff8[..., 0], diff8[..., 1]), diff8[..., 2])


def _colour_sample(content: np.ndarray, count: int = 4096) -> np.ndarray:
    """An evenly strided sample of at most ``count`` of an image's colours, (N, 3) float32."""
    px = content.reshape(-1, 3)
    return np.ascontiguousarray(px[:: max(1, len(px) // count)], dtype=np.float32)


@dataclass(frozen=True)
class InterpMethod:
    """One way to make the frames between two keys: an entry of :data:`INTERPOLATORS`.

    ``render(interpolator, low8, full8, a, b, w_b, exposure, out)`` returns frame t (full-resolution
    uint8 RGB) from keys ``a`` and ``b``, ``w_b`` being b's weight in time (see :meth:`Interpolator.frame`).
    """

    name: str
    help: str
    render: Callable[[Interpolator, np.ndarray, np.ndarray, KeyFrame, KeyFrame, float, float, np.ndarray | None],
                     np.ndarray]
    # Whether two neighbouring keys that style a frame very differently make it a key too: only the
    # transform blend can tell cheaply (it holds both keys' looks).
    refines_keys: bool = False


# Adding a method is one entry here; the CLI, the API and the config read their choices from it.
INTERPOLATORS: dict[str, InterpMethod] = {m.name: m for m in (
    InterpMethod("transform", "the two keys' colour transforms blended in time and applied to the frame itself",
                 Interpolator._blend_transforms, refines_keys=True),
    InterpMethod("warp", "the keys' stylized pixels warped by optical flow and blended (the paper's)",
                 Interpolator._warp_keys),
)}
