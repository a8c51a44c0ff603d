"""Sweeps: speed, fidelity and steadiness against the pipeline's knobs, on one clip.

One clip, one frame-by-frame reference (made once, ``speedup.run_framewise``), then one pipeline
run per point (``speedup.run_pipeline`` + ``speedup.evaluate``), so every point is scored against
the very same frames. Axes: fixed key-frame gap, key size, interpolation method, meta-smoothing.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..files import atomic_path, check_output_folder
from ..mobile.pipeline import SMOOTHERS, StylizeConfig
from ..models.registry import resolve_name
from .machine import machine_info
from .speedup import (
    BenchConfig,
    _rounded,
    config_figures,
    evaluate,
    framewise_figures,
    pipeline_figures,
    prepare_clip,
    run_framewise,
    run_pipeline,
    style_path,
)

AXES = ("gap", "keysize", "interp", "smoothing")
_LABELS = {"gap": "key-frame gap (every N frames)", "keysize": "key size (long side, px)",
           "interp": "interpolation", "smoothing": "meta-smoothing"}


@dataclass
class SweepConfig:
    bench: BenchConfig = field(default_factory=lambda: BenchConfig(resolution="720p"))
    axes: tuple[str, ...] = AXES
    gaps: tuple[int, ...] = (5, 10, 20, 40)
    key_sizes: tuple[int, ...] = (256, 384, 512, 768)
    plots: Path | None = None  # folder for sweep_<axis>.png; None -> no plots

    def __post_init__(self) -> None:
        bad = [a for a in self.axes if a not in AXES]
        if bad:
            raise UserError(f"unknown sweep axis {', '.join(bad)}; choose from {', '.join(AXES)}")
        if any(g < 1 for g in self.gaps) or any(k < 16 for k in self.key_sizes):
            raise UserError("gaps must be >= 1 and key sizes >= 16")
        if self.plots is not None:
            check_output_folder(self.plots, "--plots")


def variants(base: StylizeConfig, axis: str, cfg: SweepConfig) -> list[tuple[str | int, StylizeConfig | str]]:
    """(value, config) per point of ``axis``; a string instead of a config says why it cannot run."""
    out: list[tuple[str | int, StylizeConfig | str]] = []
    if axis == "gap":
        for n in cfg.gaps:
            kf = dataclasses.replace(base.keyframes, mode="every", every=n, max_gap=max(n, base.keyframes.max_gap))
            out.append((n, dataclasses.replace(base, keyframes=kf)))
    elif axis == "keysize":
        out = [(k, dataclasses.replace(base, key_size=k)) for k in cfg.key_sizes]
    elif axis == "interp":
        out = [(m, dataclasses.replace(base, interp=dataclasses.replace(base.interp, method=m)))
               for m in ("warp", "transform")]
    else:
        out = [(s, dataclasses.replace(base, smoothing=s)) for s in SMOOTHERS]
    return out


def run_sweep(cfg: SweepConfig, log: Callable[[str], None] = lambda msg: None) -> dict:
    bench = cfg.bench
    style = style_path(bench)
    resolve_name(bench.stylize.model)
    points: list[dict] = []
    floor: dict = {}  # frame-by-frame and input warping errors: the same pairs and flow at every point
    with tempfile.TemporaryDirectory(prefix="mvs-sweep-") as tmp:
        work = Path(tmp)
        clip = prepare_clip(bench, work)
        log(f"frame-by-frame reference on {clip.width}x{clip.height}, {clip.frames} frames")
        fw = run_framewise(clip, style, bench, work)
        out_path = work / "pipeline.mp4"
        for axis in cfg.axes:
            for value, config in variants(bench.stylize, axis, cfg):
                if isinstance(config, str):
                    log(f"{axis}={value}: skipped ({config})")
                    points.append({"axis": axis, "value": value, "skipped": config})
                    continue
                log(f"{axis}={value}")
                try:
                    run = run_pipeline(clip, style, config, out_path, bench.isolate)
                except UserError as exc:  # e.g. learned smoothing before its weights are trained
                    log(f"{axis}={value}: skipped ({exc})")
                    points.append({"axis": axis, "value": value, "skipped": str(exc)})
                    continue
                scores = evaluate(clip, out_path, fw, bench)
                floor = floor or scores
                figs = pipeline_figures(run, fw.frames)
                points.append({
                    "axis": axis, "value": value, **config_figures(config),
                    "speedup": fw.total_seconds / run["total_seconds"],
                    "ssim_vs_framewise": scores["ssim_vs_framewise"], "psnr_vs_framewise": scores["psnr_vs_framewise"],
                    "warp_error": scores["warp_error"],
                    # Every consecutive pair: a few sampled pairs are too few to rank key-gap settings.
                    "warp_error_all_pairs": scores.get("warp_error_all_pairs"),
                    **{k: figs[k] for k in ("pipeline_ms_per_frame", "phone_ms_per_nonkey_frame", "key_count",
                                            "key_size", "stage_seconds", "peak_rss_mb")},
                })
    result = _rounded({
        "resolution": f"{clip.width}x{clip.height}", "frames": fw.frames, "clip": clip.describe(),
        "style": style.name, "model": fw.model, "base": config_figures(bench.stylize),
        "warp_error_framewise": floor.get("warp_error_framewise"), "warp_error_input": floor.get("warp_error_input"),
        "warp_flow": floor.get("warp_flow"), "warp_error_input_all_pairs": floor.get("warp_error_input_all_pairs"),
        "quality_frames": sorted(fw.outputs),
        **framewise_figures(fw), "points": points, "machine": machine_info(),
        "notes": ["every point is scored against the same frame-by-frame frames and frame pairs",
                  "gap points use fixed key frames every N (scene cuts still force keys)"],
    })
    if cfg.plots is not None:
        result["plots"] = [str(p) for p in plot_sweep(result, cfg.plots)]
    return result


def plot_sweep(result: dict, folder: Path) -> list[Path]:
    """One PNG per axis: speedup, SSIM to frame-by-frame and warping error against the axis values."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display; must precede pyplot
    import matplotlib.pyplot as plt

    written: list[Path] = []
    title = f"{result['clip']['kind']} {result['resolution']}, {result['frames']} frames, {result['model']}"
    for axis in dict.fromkeys(p["axis"] for p in result["points"]):
        pts = [p for p in result["points"] if p["axis"] == axis and "skipped" not in p]
        if not pts:
            continue
        labels = [str(p["value"]) for p in pts]
        xs = range(len(pts))
        numeric = axis in ("gap", "keysize")
        fig, panels = plt.subplots(1, 3, figsize=(12, 3.6))
        series = [("speedup over frame-by-frame (x)", "speedup", None),
                  ("SSIM to frame-by-frame", "ssim_vs_framewise", None),
                  ("warping error", "warp_error", ("warp_error_framewise", "warp_error_input"))]
        if all(p.get("warp_error_all_pairs") is not None for p in pts):
            series[2] = ("warping error (ours, input: every pair; frame-by-frame: sampled pairs)",
                         "warp_error_all_pairs", ("warp_error_framewise", "warp_error_input_all_pairs"))
        for ax, (name, key, refs) in zip(panels, series, strict=True):
            ys = [p[key] if p[key] is not None else float("nan") for p in pts]
            if numeric:
                ax.plot(list(xs), ys, "o-", color="C0", label="pipeline")
            else:
                ax.bar(list(xs), ys, color="C0", width=0.5, label="pipeline")
            if refs:
                for ref, style, lab in zip(refs, ("--", ":"), ("frame-by-frame", "input (floor)"), strict=True):
                    if result.get(ref) is not None:
                        ax.axhline(result[ref], color="C3" if style == "--" else "gray", linestyle=style, label=lab)
                ax.legend(fontsize=8)
            ax.set_xticks(list(xs), labels)
            ax.set_xlabel(_LABELS[axis])
            ax.set_title(name, fontsize=10 if len(name) < 40 else 7)
            ax.grid(alpha=0.3)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        path = folder / f"sweep_{axis}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        written.append(path)
    return written
