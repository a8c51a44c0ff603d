"""Photorealism benchmark on segmented content/style pairs (Deep Photo Style Transfer's layout).

``DIR`` holds one folder per pair, ``DIR/NN/``, with ``content.jpg``, ``style.jpg``,
``content_mask.png`` and ``style_mask.png`` (colour-coded segmentations: the same colour is the same
semantic class in both masks) and, optionally, ``dpst.jpg`` (a reference result, e.g. the published
output of Luan et al., Deep Photo Style Transfer, CVPR 2017). Nothing of it is copied anywhere: the
bench writes numbers, one montage PNG and a markdown section.

Methods: ``input`` (the content unchanged: the distances a method starts from), ``dpst`` (the pair's
``dpst.jpg``, resized to the content's size where it differs), and any model name of the registry
(``create_model``; ``prepare_style`` once per pair, untimed; ``stylize`` timed; a warm-up call first).

Per pair and method (``metrics.photoreal``): region palette distance (Lab SW2 per shared mask label,
area-weighted), global palette distance (``lab_swd`` to the style), photorealism dB (PSNR to the best
local affine colour fit from the content), luma SSIM to the content, seconds, and the clipped share
of the output (and of the content and the style, per pair). Sliced W1 variants of both palette
distances are recorded too (``*_sw1``).

Sizes: the content is processed at its own size, capped at ``max_side`` (long side, area
downscale; DPST's contents are ~700 px, so the default 700 keeps them as they are); the style is
capped at 1024 px (as the video pipeline sends it); masks are decoded at their own size and resized
(nearest neighbour) to the image they label. Every output is compared at the (capped) content size
and rounded to 8 bits first, as a saved photo is.

Entry point: :func:`run_photoreal`; writers: :func:`write_markdown`, :func:`write_grid`.
"""

from __future__ import annotations

import json
import re
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
from ..imaging import shrink_to
from ..metrics import lab_swd, ssim_luma
from ..metrics.photoreal import clipped_share, mask_labels, photorealism_db, region_palette_distance
from ..mobile.pipeline import StylizeConfig
from ..models.registry import available_models, create_model, resolve_name
from ..video.image import read_image
from .machine import machine_info
from .quality import _f, _label, _letterbox

FIXED_METHODS = ("input", "dpst")
METRICS = ("region_palette", "global_palette", "photoreal_db", "ssim_luma", "clipped",
           "region_palette_sw1", "global_palette_sw1")
SECTION = "photoreal"
DEFAULT_COMMAND = "mvstylizer bench photoreal DIR"
PNG_LIMIT = 1_500_000  # bytes; the montage is re-encoded with fewer colours above this

_DEFINITIONS = {
    "region_palette": "for each mask label with >= 400 pixels in both the content and the style mask: Lab sliced "
                      "Wasserstein-2 distance (64 directions) between the output's pixels in the content region and "
                      "the style's pixels in the region of that label; mean weighted by content-region area "
                      "(metrics.photoreal.region_palette_distance); pairs without a shared label are left out",
    "global_palette": "Lab sliced Wasserstein-2 distance between all of the output's and all of the style's "
                      "pixels (metrics.lab_swd)",
    "photoreal_db": "PSNR between the output and its best local affine colour function of the content: a "
                    "colour-guided filter fit (He et al.), radius 4, eps 1e-4, colours in [0,1], unclipped "
                    "(metrics.photoreal.photorealism_db); a recoloured photo scores high, halos, blotches and "
                    "painted texture low",
    "ssim_luma": "SSIM of Rec.709 luminance, output vs content (metrics.ssim_luma)",
    "clipped": "share of pixels with some channel at 0 or 255 (8-bit)",
    "seconds": "wall seconds of one stylize call (style preparation excluded, a warm-up call first)",
    "*_sw1": "the same with the sliced Wasserstein-1 distance (mean over directions of the 1-D W1) instead of SW2",
}


@dataclass
class Pair:
    """One benchmark pair, loaded and sized for the run (uint8 RGB images, int label maps)."""

    name: str
    content: np.ndarray
    style: np.ndarray
    content_labels: np.ndarray | None
    style_labels: np.ndarray | None
    dpst: np.ndarray | None
    notes: list[str]


def _to8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _read_mask(path: Path) -> np.ndarray:
    """The mask file as uint8 RGB, without read_image's compositing or scaling."""
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise UserError(f"{path} is not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def pair_folders(folder: Path, pairs: list[str] | None = None) -> list[Path]:
    """The pair folders of ``folder`` (sub-folders holding content.jpg and style.jpg), sorted by name.

    ``pairs``: only these folder names (UserError for one that is not a pair).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"benchmark folder {folder} does not exist or is not a folder")
    found = {p.name: p for p in sorted(folder.iterdir())
             if p.is_dir() and (p / "content.jpg").is_file() and (p / "style.jpg").is_file()}
    if pairs:
        missing = [n for n in pairs if n not in found]
        if missing:
            raise UserError(f"no pair {', '.join(missing)} in {folder}; it has: {', '.join(found) or 'none'}")
        found = {n: found[n] for n in dict.fromkeys(pairs)}
    if not found:
        raise UserError(f"no pairs in {folder}: expected sub-folders NN/ with content.jpg, style.jpg, "
                        "content_mask.png, style_mask.png (and dpst.jpg for the dpst method)")
    return list(found.values())


def load_pair(path: Path, max_side: int = 700, max_style_side: int = 1024) -> Pair:
    """Read a pair folder: content capped at ``max_side``, style at ``max_style_side`` (area), masks decoded."""
    notes: list[str] = []
    content = _to8(read_image(path / "content.jpg"))
    h0, w0 = content.shape[:2]
    content = shrink_to(content, max_side)
    if content.shape[:2] != (h0, w0):
        notes.append(f"{path.name}: content {w0}x{h0} downscaled to {content.shape[1]}x{content.shape[0]}")
    style = shrink_to(_to8(read_image(path / "style.jpg")), max_style_side)
    labels = []
    for kind in ("content", "style"):
        p = path / f"{kind}_mask.png"
        labels.append(mask_labels(_read_mask(p)) if p.is_file() else None)
        if labels[-1] is None:
            notes.append(f"{path.name}: no {p.name}, no region palette distance")
    dpst = None
    if (path / "dpst.jpg").is_file():
        dpst = _to8(read_image(path / "dpst.jpg"))
        if dpst.shape != content.shape:
            h, w = content.shape[:2]
            shrink = dpst.shape[0] * dpst.shape[1] > h * w
            notes.append(f"{path.name}: dpst.jpg {dpst.shape[1]}x{dpst.shape[0]} resized to the content's {w}x{h}")
            dpst = cv2.resize(dpst, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return Pair(path.name, content, style, labels[0], labels[1], dpst, notes)


def _method_names(methods: list[str] | None) -> list[str]:
    if methods is None:
        methods = list(FIXED_METHODS) + [s.name for s in available_models()]
    out: list[str] = []
    for m in methods:
        label = m if m in FIXED_METHODS else _model_label(m)
        if label not in out:
            out.append(label)
    return out


def _model_label(name: str) -> str:
    """Registry name as reported: ``mk``; ``wct2:torch`` only where a runtime other than the default is asked."""
    canon = resolve_name(name)  # UserError lists the choices
    base, _, runtime = canon.partition(":")
    spec = next((s for s in available_models() if s.name == base), None)
    default = spec.default_runtime if spec is not None else runtime
    return base if not runtime or runtime == default else canon


def measure(out8: np.ndarray, pair: Pair) -> dict[str, float | None]:
    """The metrics of one output (uint8 RGB at the content's size) for one pair."""
    region = region1 = None
    if pair.content_labels is not None and pair.style_labels is not None:
        region = region_palette_distance(out8, pair.style, pair.content_labels, pair.style_labels)
        region1 = region_palette_distance(out8, pair.style, pair.content_labels, pair.style_labels, p=1)
    return {
        "region_palette": region,
        "global_palette": lab_swd(out8, pair.style),
        "photoreal_db": photorealism_db(out8, pair.content),
        "ssim_luma": ssim_luma(out8, pair.content),
        "clipped": clipped_share(out8),
        "region_palette_sw1": region1,
        "global_palette_sw1": lab_swd(out8, pair.style, p=1),
    }


def _grid_names(names: list[str], rows: int) -> list[str]:
    """``rows`` pair names spread evenly over the list (all of them when there are fewer)."""
    if len(names) <= rows:
        return list(names)
    return list(dict.fromkeys(names[round(i * (len(names) - 1) / (rows - 1))] for i in range(rows)))


def run_photoreal(
    folder: Path,
    methods: list[str] | None = None,
    *,
    pairs: list[str] | None = None,
    max_side: int = 700,
    json_path: Path | None = None,
    out_dir: Path | None = None,
    grid_rows: int = 6,
    cell_height: int = 160,
    command: str = DEFAULT_COMMAND,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run every method on every pair of ``folder``; return the result dict (and write the outputs).

    ``methods``: ``input``, ``dpst`` and registry model names (None: all of them); a model that fails
    to build or to run is skipped with a note. ``pairs``: folder names to run (default: all).
    ``json_path``: per-pair rows and summary as JSON. ``out_dir``: the markdown section goes into
    ``out_dir/QUALITY.md`` (between marker comments, the rest of the file kept) and the montage to
    ``out_dir/photoreal_grid.png``. ``command``: how the run is described in the markdown.
    """
    log = log or (lambda _msg: None)
    if max_side < 16:
        raise UserError(f"--max-side must be >= 16, got {max_side}")
    t_start = time.perf_counter()
    names = _method_names(methods)
    folders = pair_folders(Path(folder), pairs)
    max_style_side = StylizeConfig().max_style_side
    loaded: list[Pair] = [load_pair(f, max_side, max_style_side) for f in folders]
    notes = [n for p in loaded for n in p.notes]
    log(f"{len(loaded)} pairs loaded from {Path(folder).name} ({time.perf_counter() - t_start:.1f} s)")
    grid_pairs = _grid_names([p.name for p in loaded], grid_rows)
    thumbs: dict[tuple[str, str], np.ndarray] = {}
    for p in loaded:
        if p.name in grid_pairs:
            thumbs[("content", p.name)] = p.content
            thumbs[("style", p.name)] = p.style

    rows: list[dict] = []
    skipped: dict[str, str] = {}
    pair_info = {p.name: {"content_size": list(p.content.shape[1::-1]), "style_size": list(p.style.shape[1::-1]),
                          "clipped_content": clipped_share(p.content), "clipped_style": clipped_share(p.style)}
                 for p in loaded}
    for name in names:
        t = time.perf_counter()
        try:
            method_rows = _run_method(name, loaded, grid_pairs, thumbs, notes, log)
        except Exception as exc:  # a DNN without weights (or torch) is skipped, not fatal
            skipped[name] = f"{type(exc).__name__}: {exc}"
            notes.append(f"{name}: skipped ({skipped[name]})")
            log(f"{name}: skipped ({skipped[name]})")
            continue
        if not method_rows:
            skipped[name] = "no pair has what it needs"
            continue
        rows += method_rows
        log(f"{name}: {len(method_rows)} pairs in {time.perf_counter() - t:.1f} s")

    done = [n for n in names if n not in skipped]
    if not done:  # nothing to report: the section and grid already written stay as they are
        raise UserError("no method could be scored: " + "; ".join(f"{n}: {why}" for n, why in skipped.items()))
    result = {
        "config": {
            "folder": Path(folder).name, "pairs": [p.name for p in loaded], "methods": done, "skipped": skipped,
            "max_side": max_side, "max_style_side": max_style_side, "grid_pairs": grid_pairs,
            "machine": machine_info(), "command": command,
        },
        "definitions": _DEFINITIONS,
        "pair_info": pair_info,
        "rows": rows,
        "summary": summarise(rows, done),
        "notes": notes,
        "seconds": time.perf_counter() - t_start,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_grid(result, thumbs, out_dir / "photoreal_grid.png", cell_height)
        write_markdown(result, out_dir / "QUALITY.md", grid_name="photoreal_grid.png")
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _run_method(name: str, pairs: list[Pair], grid_pairs: list[str], thumbs: dict, notes: list[str],
                log: Callable[[str], None]) -> list[dict]:
    model = create_model(name) if name not in FIXED_METHODS else None
    warm = False
    rows = []
    for p in pairs:
        seconds = None
        if name == "input":
            out8 = p.content
        elif name == "dpst":
            if p.dpst is None:
                notes.append(f"dpst: {p.name} has no dpst.jpg")
                continue
            out8 = p.dpst
        else:
            assert model is not None  # built above for every method but the fixed ones
            content = p.content.astype(np.float32) / 255.0
            state = model.prepare_style(p.style.astype(np.float32) / 255.0)  # untimed, once per style
            if not warm:
                model.stylize(content, state)  # warm-up (lazy init, allocator), untimed
                warm = True
            t = time.perf_counter()
            out = model.stylize(content, state)
            seconds = time.perf_counter() - t
            out = np.asarray(out)
            if out.shape != content.shape:
                raise ValueError(f"output {out.shape} for content {content.shape} (pair {p.name})")
            out8 = _to8(out)
        row: dict[str, Any] = {"method": name, "pair": p.name, **measure(out8, p), "seconds": seconds}
        rows.append(row)
        if p.name in grid_pairs:
            thumbs[(name, p.name)] = out8
        log(f"{name} {p.name}: region {_f(row['region_palette'])}, global {_f(row['global_palette'])}, "
            f"{_f(row['photoreal_db'])} dB" + (f", {seconds:.2f} s" if seconds is not None else ""))
    return rows


def summarise(rows: list[dict], methods: list[str]) -> dict[str, dict]:
    """Means over pairs per method (a metric left None for a pair is averaged over the others), the
    number of pairs and of pairs with a region distance, and the median seconds."""
    out: dict[str, dict] = {}
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        if not sel:
            continue
        s: dict = {"n": len(sel)}
        for k in METRICS:
            vals = [r[k] for r in sel if r[k] is not None]
            s[k] = float(np.mean(vals)) if vals else None
        s["n_region"] = sum(r["region_palette"] is not None for r in sel)
        secs = [r["seconds"] for r in sel if r["seconds"] is not None]
        s["seconds_median"] = float(statistics.median(secs)) if secs else None
        out[m] = s
    return out


# --- the montage -----------------------------------------------------------------------------------
def write_grid(result: dict, thumbs: dict[tuple[str, str], np.ndarray], path: Path, cell_height: int = 160) -> None:
    """PNG: rows = the grid pairs; columns = content, style, then every method but ``input`` (uint8 RGB).

    Written losslessly when under :data:`PNG_LIMIT` bytes, else with fewer colours (:func:`encode_png`);
    ``result["config"]["grid_encoding"]`` says how.
    """
    methods = [m for m in result["config"]["methods"] if m != "input"]
    columns = ["content", "style"] + methods
    cell_w = round(cell_height * 3 / 2)  # DPST's photos are mostly 3:2
    header = np.full((22, cell_w * len(columns), 3), 255, np.uint8)
    for j, title in enumerate(columns):
        cv2.putText(header, title, (j * cell_w + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    lines = [header]
    for name in result["config"]["grid_pairs"]:
        cells = []
        for col in columns:
            img = thumbs.get((col, name))
            cell = (_letterbox(img, cell_w, cell_height) if img is not None
                    else np.full((cell_height, cell_w, 3), 40, np.uint8))
            if col == "content":
                _label(cell, f"pair {name}")
            cells.append(cell)
        lines.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(lines, axis=0)
    data, how = encode_png(grid)
    result["config"]["grid_encoding"] = how
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)


def encode_png(rgb8: np.ndarray, limit: int = PNG_LIMIT) -> tuple[bytes, str]:
    """PNG bytes of an RGB image under ``limit`` if it can be: lossless, else with the channels rounded
    to 6 then 5 bits (photos compress far better; no visible banding at 6), else a 256-colour palette.
    Returns the bytes and how they were made."""
    bgr = cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR)
    data = b""
    for bits in (8, 6, 5):
        step = 1 << (8 - bits)
        img = bgr if bits == 8 else np.minimum(np.round(bgr / step) * step, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError("cannot encode the montage as PNG")
        data = buf.tobytes()
        if len(data) <= limit:
            return data, "lossless" if bits == 8 else f"channels rounded to {bits} bits"
    return _palette_png(rgb8), "256-colour palette"


def _palette_png(grid: np.ndarray) -> bytes:
    """The montage as an 8-bit palette PNG (median-cut palette of its own colours, no dithering)."""
    import io

    from PIL import Image

    img = Image.fromarray(grid).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --- the markdown -------------------------------------------------------------------------------
def _row_label(method: str) -> str:
    return {"input": "*input, unchanged*", "dpst": "DPST (published)"}.get(method, method)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def markdown_section(result: dict, grid_name: str | None = "photoreal_grid.png") -> str:
    """The section (without its marker comments): command, setup, table per method, definitions."""
    cfg, summ = result["config"], result["summary"]
    info = result["pair_info"]
    n_pairs = len(cfg["pairs"])
    lines = [
        f"## Photorealism on segmented pairs ({cfg['folder']}, {n_pairs} pairs)",
        "",
        f"Written by `{cfg['command']}` (`mvstylizer.bench.photoreal.run_photoreal`) on "
        f"{cfg['machine']['cpu_count']} cores ({cfg['machine']['cpu']}), Python {cfg['machine']['python']}; "
        f"DIR = a folder of pair folders `NN/` (content.jpg, style.jpg, content_mask.png, style_mask.png, dpst.jpg), "
        f"here `{cfg['folder']}`: pairs {', '.join(cfg['pairs'])}.",
        "",
        "- Pairs: photos, colour-coded segmentation masks (same colour = same semantic class in both masks) and "
        "the published result of Luan et al., Deep Photo Style Transfer (CVPR 2017), used for measurement only; "
        "none of it is in this repository (only these numbers and the montage below).",
        f"- Content at its own size, capped at {cfg['max_side']} px long side (area downscale; DPST's contents are "
        f"~700 px, so they run as they are); style capped at {cfg['max_style_side']} px. `dpst` is the pair's "
        "published result, resized to the content's size where it differs. Outputs are rounded to 8 bits and "
        "compared at the content's size; masks are decoded at their own size and resized (nearest) to their image.",
        "",
        "| method | pairs | region palette dist | global palette dist | photorealism dB | luma SSIM to content "
        "| clipped % | s / image (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, s in summ.items():
        n = f"{s['n']}" + (f" ({s['n_region']} with regions)" if s["n_region"] != s["n"] else "")
        secs = "-" if s["seconds_median"] is None else _f(s["seconds_median"])
        lines.append(f"| {_row_label(m)} | {n} | {_f(s['region_palette'])} | {_f(s['global_palette'])} | "
                     f"{_f(s['photoreal_db'], 3)} | {_f(s['ssim_luma'])} | {_pct(s['clipped'])} | {secs} |")
    if info:
        c = float(np.mean([v["clipped_content"] for v in info.values()]))
        st = float(np.mean([v["clipped_style"] for v in info.values()]))
        lines += ["", f"Clipped pixels, mean over pairs: content {_pct(c)} %, style {_pct(st)} %."]
    lines += ["", "The same palette distances with the sliced Wasserstein-1 distance (mean over directions of the "
              "1-D W1) instead of SW2, for comparison with measurements that use SW1 (SW1 <= SW2):", "",
              "| method | region palette SW1 | global palette SW1 |", "|---|---|---|"]
    for m, s in summ.items():
        lines.append(f"| {_row_label(m)} | {_f(s['region_palette_sw1'])} | {_f(s['global_palette_sw1'])} |")
    d = result["definitions"]
    lines += ["", "Columns (means over the pairs; time is the median over pairs):", "",
              f"- **region palette dist** (Lab units, lower = each region closer to the matching style region): "
              f"{d['region_palette']}.",
              f"- **global palette dist** (Lab units): {d['global_palette']}.",
              f"- **photorealism dB** (higher = more photo-like): {d['photoreal_db']}.",
              f"- **luma SSIM to content** (higher = structure kept): {d['ssim_luma']}.",
              f"- **clipped %**: {d['clipped']}, of the output.",
              f"- **s / image**: {d['seconds']}; machine shared, so rough."]
    if cfg["skipped"]:
        lines += ["", "Skipped methods:", ""] + [f"- `{k}`: {v}" for k, v in cfg["skipped"].items()]
    if result["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result["notes"]]
    if grid_name:
        # The montage shows the benchmark's own photos (academic, non-commercial), so it is written
        # beside this file for whoever runs the command but never committed (.gitignore).
        lines += ["", f"The montage `{grid_name}` (content, style, DPST's result and each model's output, per "
                  "pair) is written beside this file by the command above; it is not kept in the repository, "
                  "because its thumbnails show the benchmark's non-commercial photos.", "",
                  f"Montage rows: pairs {', '.join(cfg['grid_pairs'])}"
                  + (f" (PNG {cfg['grid_encoding']}, to stay under 1.5 MB)." if cfg.get("grid_encoding", "lossless")
                     != "lossless" else ".")]
    return "\n".join(lines)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the block between ``<!-- name:begin -->`` and ``<!-- name:end -->`` replaced by
    ``body`` (markers kept); appended at the end, after a blank line, when there is none."""
    begin, end = _markers(name)
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"


def write_markdown(result: dict, path: Path, grid_name: str | None = "photoreal_grid.png") -> None:
    """Put :func:`markdown_section` into ``path`` (created if missing) between its markers."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    new = replace_section(text, SECTION, markdown_section(result, grid_name))
    with atomic_path(path) as tmp:
        tmp.write_text(new, encoding="utf-8")
