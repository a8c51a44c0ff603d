"""``mvstylizer cloud serve`` and ``mvstylizer fl simulate``: federated learning (docs/FL.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..files import check_report_folder
from .args import choices_help, finite_float, path_arg, positive_int

# A round's local steps are min(--local-steps, epochs x frames / batch); epochs past this only overflowed.
MAX_LOCAL_EPOCHS = 1000.0

def register(sub: argparse._SubParsersAction) -> None:
    """``cloud serve`` (the Flower SuperLink and ServerApp) and ``fl simulate`` (the experiment)."""
    c = sub.add_parser("cloud", help="cloud commands (federated learning)")
    csub = c.add_subparsers(dest="cloud_command", required=True)
    cs = csub.add_parser("serve", help="run the Flower SuperLink and the ServerApp (global model, FedAvg)")
    cs.set_defaults(handler=_cloud)
    cs.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0 for edges on other machines)")
    cs.add_argument("--port", type=int, default=9092, help="SuperLink port for edges and flwr (default 9092)")
    cs.add_argument("--state-dir", type=path_arg, default=Path("fl-cloud"), metavar="DIR",
                    help="Flower app, config and logs (default ./fl-cloud)")
    cs.add_argument("--registry", type=path_arg, metavar="DIR", help="global model registry (default STATE/registry)")
    cs.add_argument("--rounds", type=positive_int, default=10, help="total rounds to reach (resumes; default 10)")
    cs.add_argument("--min-edges", type=positive_int, default=2, help="edges needed to start a round (default 2)")
    cs.add_argument("--round-timeout", type=finite_float, default=600.0, help="seconds to wait for edges per round")
    add_fl_options(cs)

    f = sub.add_parser("fl", help="federated learning experiments")
    fsub = f.add_subparsers(dest="fl_command", required=True)
    sim = fsub.add_parser("simulate", help="non-IID edges: pretrained, local-only, federated, personalised, "
                          "centralised, on the population and an unseen edge (docs/FL.md)")
    sim.set_defaults(handler=_fl)
    sim.add_argument("--footage", type=path_arg, metavar="DIR", help="folder of real clips (default: package media)")
    sim.add_argument("--edges", type=positive_int, default=5, help="training edges (scene kinds; default 5)")
    sim.add_argument("--rounds", type=positive_int, default=5)
    sim.add_argument("--seeds", type=positive_int, default=3)
    sim.add_argument("--frames-per-clip", type=positive_int, default=4, help="training frames per clip")
    sim.add_argument("--held-out", type=positive_int, default=2, help="held-out frames per clip")
    sim.add_argument("--finetune-steps", type=int, default=5, help="personalised: local steps after federation")
    sim.add_argument("--eval-crops", type=positive_int, default=32, help="held-out crop pairs per edge")
    sim.add_argument("--workers", type=positive_int, default=1, help="processes running seeds side by side")
    sim.add_argument("--poison", default="none", choices=["none", "nan", "scale", "signflip"],
                     help="the first edge sends poisoned updates (NaN, x1e6, sign-flipped); federated only")
    sim.add_argument("--json", type=path_arg, metavar="FILE", help="write the report as JSON")
    sim.add_argument("--model", default="dncm", choices=["dncm", "meta_smoother"], help="the federated model")
    sim.add_argument("--server-opt", default="sgd", choices=["sgd", "adam", "yogi"],
                     help="server step on the averaged update: sgd (FedAvg/FedAvgM), adam (FedAdam), yogi (FedYogi)")
    sim.add_argument("--weighting", default="frames", choices=["frames", "uniform"], help="aggregation weights")
    sim.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"], help="local lr over rounds")
    sim.add_argument("--finetune-lr", type=finite_float, default=0.0, help="personalised fine-tune lr (default: --lr)")
    sim.add_argument("--finetune-part", default="all", choices=["all", "head"], help="personalised: what fine-tunes")
    add_fl_options(sim)


def add_fl_options(p: argparse.ArgumentParser) -> None:
    from ..fl.aggregation import AGGREGATIONS
    from ..fl.anchor import ANCHORS

    p.add_argument("--strategy", default="fedavg", choices=sorted(AGGREGATIONS),
                   help="how the edges' models become one (default fedavg): " + choices_help(AGGREGATIONS))
    p.add_argument("--proximal-mu", type=finite_float, default=0.01, help="FedProx mu (default 0.01)")
    p.add_argument("--trim-beta", type=finite_float, default=0.2,
                   help="trimmed mean: cut fraction per end (default 0.2)")
    p.add_argument("--server-lr", type=finite_float, default=1.0,
                   help="server step on the aggregate's move (default 1; for fedavg != 1 runs Flower's FedAvgM)")
    p.add_argument("--server-momentum", type=finite_float, default=0.0,
                   help="FedAvgM's server momentum, on any aggregate (default 0)")
    p.add_argument("--anchor", default="none", choices=["none", *ANCHORS],
                   help="after each round, pull the global model toward generic content (default none): "
                        + choices_help(ANCHORS))
    p.add_argument("--anchor-weight", type=finite_float, default=0.0,
                   help="share of the anchor in the new model, in (0, 1) with --anchor (the experiment's: 0.4)")
    p.add_argument("--anchor-steps", type=positive_int, default=6,
                   help="anchor generic: the server's own steps per round (default 6)")
    p.add_argument("--clip-norm", type=finite_float, default=0.0, help="clip each update to this L2 norm (0: off)")
    p.add_argument("--reject-norm", type=finite_float, default=100.0,
                   help="reject updates longer than this (default 100)")
    p.add_argument("--min-agreement", type=finite_float, default=-1.0, metavar="COS",
                   help="drop an edge whose updates' cosine with the other edges' median update, averaged over "
                        "its rounds, is below COS, e.g. 0 (a sign-flipping edge); needs 3 or more edges a round "
                        "(default -1: off)")
    p.add_argument("--local-epochs", type=finite_float, default=1.0,
                   help="local passes over an edge's frames per round")
    p.add_argument("--local-steps", type=positive_int, default=50, help="most local steps per round (default 50)")
    p.add_argument("--lr", type=finite_float, default=1e-4, help="local learning rate (default 1e-4)")
    p.add_argument("--batch", type=positive_int, default=8, help="crops per local step (default 8, at most 128)")
    p.add_argument("--size", type=positive_int, default=96, help="training crop side (default 96, 16..384)")
    p.add_argument("--base-weights", type=path_arg, help="starting model (default: the shipped dncm weights)")


def cloud_config(args: argparse.Namespace, rounds: int, min_edges: int, timeout: float = 600.0):
    from ..cloud.server_app import CloudConfig
    from ..cloud.strategies import StrategyConfig
    from ..fl.local import BANK_SIDE, MAX_BATCH, LocalConfig

    if not (args.lr > 0 and 0 < args.local_epochs <= MAX_LOCAL_EPOCHS and args.size >= 16 and args.proximal_mu >= 0):
        raise UserError(f"--lr must be > 0, --local-epochs in (0, {MAX_LOCAL_EPOCHS:g}], --size >= 16, "
                        "--proximal-mu >= 0")
    if args.size > BANK_SIDE or args.batch > MAX_BATCH:
        # Crops come from frames held at BANK_SIDE px: a larger crop is an upscaled one, and a huge
        # batch ran out of memory instead of training.
        raise UserError(f"--size must be at most {BANK_SIDE} (the frames' long side in memory) and --batch at most "
                        f"{MAX_BATCH}, got --size {args.size} --batch {args.batch}")
    if args.base_weights is not None and not args.base_weights.is_file():
        raise UserError(f"--base-weights {args.base_weights} does not exist")
    strategy = StrategyConfig(name=args.strategy, proximal_mu=args.proximal_mu, trim_beta=args.trim_beta,
                              server_lr=args.server_lr, server_momentum=args.server_momentum,
                              clip_norm=args.clip_norm, reject_norm=args.reject_norm, anchor=args.anchor,
                              min_agreement=args.min_agreement,
                              anchor_weight=args.anchor_weight, anchor_steps=args.anchor_steps,
                              min_train_nodes=min_edges, min_evaluate_nodes=min_edges, min_available_nodes=min_edges)
    local = LocalConfig(epochs=args.local_epochs, batch=args.batch, size=args.size, lr=args.lr,
                        max_steps=args.local_steps)
    return CloudConfig(num_rounds=rounds, round_timeout=timeout, strategy=strategy, local=local,
                       base_weights=str(args.base_weights.resolve()) if args.base_weights else "")


def stop_on_sigterm() -> None:
    """Make SIGTERM (a service manager, a test) unwind like Ctrl-C, so the `finally` blocks stop the
    Flower processes this command started instead of leaving them orphaned."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _cloud(args: argparse.Namespace) -> int:
    from ..cloud.serve import ServeConfig, serve

    stop_on_sigterm()

    if not args.round_timeout > 0:
        raise UserError(f"--round-timeout must be > 0, got {args.round_timeout}")
    cloud = cloud_config(args, args.rounds, args.min_edges, args.round_timeout)
    if cloud.base_weights:  # else the run fails inside Flower, its reason only in the SuperLink's log
        from ..fl.tasks import starting_model

        starting_model("dncm", args.base_weights)
    serve(ServeConfig(state_dir=args.state_dir, host=args.host, port=args.port, cloud=cloud, registry=args.registry))
    return 0


def _fl(args: argparse.Namespace) -> int:
    from ..fl.population import run_cli

    check_report_folder(args.json, args.base_weights)
    return run_cli(args, cloud_config(args, args.rounds, args.edges))
