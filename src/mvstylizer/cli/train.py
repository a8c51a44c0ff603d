"""``mvstylizer train MODEL``: train a model with its shipped recipe (needs the [train] extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import finite_float, non_empty, path_arg, positive_int

# Trainable models and the recipe each ships with (the committed weights were made with these).
TRAINABLE: dict[str, dict] = {
    "wct2": {"steps": 900, "batch": 4, "size": 112, "lr": 1e-3, "threads": 2},
    "dncm": {"steps": 8000, "batch": 8, "size": 128, "lr": 1e-3, "threads": 1},
    # Learned meta-smoothing; trains on pairs it makes itself (models/smoothing_data.py), crops vary.
    "smoothing": {"steps": 4000, "batch": 12, "lr": 1e-3, "threads": 1, "module": "meta_smoother_train"},
}


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model from plain photos and video frames (self-supervised)")
    t.set_defaults(handler=_train)
    t.add_argument("model", choices=sorted(TRAINABLE), help="which model")
    t.add_argument("--data", nargs="+", type=non_empty, default=["package"], metavar="DIR",
                   help="folders or files of photos/videos, or 'package' for media from installed packages")
    t.add_argument("--steps", type=positive_int, help="optimiser steps (default: the model's recipe)")
    t.add_argument("--batch", type=positive_int)
    t.add_argument("--size", type=positive_int,
                   help="training crop side in pixels (wct2: a multiple of 8, at least 16; smoothing takes none: "
                        "its pairs come at their own sizes)")
    t.add_argument("--lr", type=finite_float, help="learning rate, > 0 and <= 1 (default: the model's recipe)")
    t.add_argument("--seed", type=int, default=0, help="random seed, 0 to 2**32-1 (default 0)")
    t.add_argument("--checkpoint", type=path_arg,
                   help="checkpoint file, in a folder that exists (default: in the cache folder); an existing file "
                        "is replaced only if it is a checkpoint of this model written by mvstylizer train")
    t.add_argument("--checkpoint-every", type=positive_int, default=100)
    t.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint, with the settings it was made with")
    t.add_argument("--out", type=path_arg,
                   help="weights file, in a folder that exists (default: the shipped weights of the model); an "
                        "existing file is replaced only if it is a weights file of this model written by mvstylizer "
                        "train. smoothing also writes its ONNX export, to --onnx")
    t.add_argument("--onnx", type=path_arg, metavar="FILE",
                   help="smoothing only, and only with --out: where its ONNX export goes (default: --out with the "
                        "suffix .onnx; without --out the shipped weights and the shipped graph are replaced "
                        "together); an existing file there is replaced only if it is such an export")
    t.add_argument("--threads", type=int, default=0,
                   help="torch threads, at most the machine's CPUs (0: the model's recipe, else torch's default)")
    t.add_argument("-q", "--quiet", action="store_true")


def _train(args: argparse.Namespace) -> int:
    import importlib

    from ..errors import UserError
    from ..models.training import TrainConfig, max_threads

    recipe = TRAINABLE[args.model]
    if args.model == "smoothing" and args.size is not None:
        raise UserError("train smoothing takes no --size: its pairs come at their own sizes "
                        "(a low-resolution side of 32-64 pixels)")
    if args.model != "smoothing" and args.onnx is not None:
        raise UserError(f"--onnx is for train smoothing only; {args.model} writes no ONNX file of its own")
    if args.onnx is not None and args.out is None:
        # The shipped weights and the phone's shipped graph are one pair: new weights beside the old
        # graph would have the phone run another module than the one the weights describe.
        raise UserError("--onnx needs --out: training into the shipped weights also replaces the shipped graph")
    # The model's recipe, then the flags given (TrainConfig's defaults for what neither sets).
    keys = ("steps", "batch", "size", "lr")
    chosen = {key: recipe[key] for key in keys if key in recipe}
    chosen.update({key: getattr(args, key) for key in keys if getattr(args, key) is not None})
    config = TrainConfig(data=args.data, seed=args.seed, checkpoint=args.checkpoint,
                         checkpoint_every=args.checkpoint_every, resume=args.resume, out=args.out,
                         threads=args.threads or min(recipe.get("threads", 0), max_threads()), progress=not args.quiet,
                         **chosen)
    module = importlib.import_module(f"mvstylizer.models.{recipe.get('module', f'{args.model}_train')}")
    if args.model == "smoothing":
        path = module.train(config, onnx=args.onnx)
        print(f"wrote {path}")
        print(f"wrote {args.onnx or module.onnx_for(config.out)}")
    else:
        path = module.train(config)
        print(f"wrote {path}")
    if args.model == "dncm":
        from ..models.dncm import weights as dncm_files
        from ..models.dncm.export import export_onnx

        if Path(path).resolve() == dncm_files.default_weights().resolve():  # keep the core install's graph in step
            print(f"wrote {export_onnx(dncm_files.shipped_onnx())}")
    return 0
