"""``mvstylizer edge ...``: run an edge server, or join a federation as an edge."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .args import finite_float, path_arg, positive_int
from .fl import stop_on_sigterm

MIN_RATE, MAX_RATE = 0.001, 1e6  # one request per 17 minutes; no limit in practice


def register(sub: argparse._SubParsersAction) -> None:
    """``edge serve`` (the HTTP API) and ``edge fl-join`` (this edge's part in federated learning)."""
    e = sub.add_parser("edge", help="edge server commands")
    esub = e.add_subparsers(dest="edge_command", required=True)
    serve = esub.add_parser("serve", help="run the edge server (HTTP API under /v1)")
    serve.set_defaults(handler=_serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    serve.add_argument("--token-file", type=path_arg, metavar="FILE",
                       help="bearer tokens, one 'NAME TOKEN [SCOPES]' per line, mode 600 (see docs/EDGE.md); "
                            "without it the API is open (loopback only!)")
    serve.add_argument("--models", nargs="+", metavar="NAME", help="serve only these models (default: all)")
    serve.add_argument("--data-dir", type=path_arg, metavar="DIR",
                       help="keep opted-in key frames here (federated learning); without it nothing is kept")
    serve.add_argument("--quota-mb", type=positive_int, default=2048, help="frame store size limit (default 2048)")
    serve.add_argument("--client-quota-mb", type=positive_int,
                       help="frame store limit per client (default: a quarter of --quota-mb)")
    serve.add_argument("--workers", type=positive_int, default=2, help="DNN worker threads (default 2)")
    serve.add_argument("--max-pending", type=positive_int, default=64,
                       help="requests queued or running before 503 (default 64)")
    serve.add_argument("--rate", type=finite_float, default=50.0, help="requests per second per client (default 50)")
    serve.add_argument("--max-connections", type=positive_int, default=1000,
                       help="open connections before new requests get 503 (default 1000)")
    serve.add_argument("--max-connections-per-ip", type=positive_int, default=64,
                       help="open connections per client address; more are closed at once (default 64)")
    serve.add_argument("--header-timeout", type=finite_float, default=10.0,
                       help="seconds a connection has to send a complete request header (default 10)")
    serve.add_argument("--memory-budget", metavar="SIZE",
                       help="working memory for all workers, e.g. 8G or 512M (default: half the machine's RAM); "
                            "per-model pixel limits follow from it (docs/EDGE.md)")
    serve.add_argument("--ssl-keyfile", type=path_arg, metavar="FILE",
                       help="TLS private key (PEM); with --ssl-certfile")
    serve.add_argument("--ssl-certfile", type=path_arg, metavar="FILE", help="TLS certificate chain (PEM)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    join = esub.add_parser("fl-join", help="join the cloud's federation: a Flower SuperNode training on DIR's frames")
    join.set_defaults(handler=_fl_join)
    join.add_argument("--superlink", required=True, metavar="HOST:PORT", help="the cloud's SuperLink")
    join.add_argument("--data-dir", type=path_arg, required=True, metavar="DIR",
                      help="the edge's data folder (its opt-in frame store; new global models are written here)")
    join.add_argument("--port", type=int, default=9094, help="the SuperNode's local runtime API port (default 9094)")
    join.add_argument("--max-wait", type=finite_float, default=600.0, metavar="S",
                      help="give up when the SuperLink has not answered for S seconds (default 600)")


def _serve(args: argparse.Namespace) -> int:
    from ..edge.auth import TokenSet
    from ..edge.ratelimit import RateLimitConfig
    from ..edge.server.config import ServerConfig, served_models
    from ..edge.server.serve import serve

    if (args.ssl_keyfile is None) != (args.ssl_certfile is None):
        raise UserError("TLS needs both --ssl-keyfile and --ssl-certfile")
    if not MIN_RATE <= args.rate <= MAX_RATE:  # nan and inf never get here (finite_float)
        # 1e308 overflowed the burst's int; 5e-324 made every refusal's Retry-After infinite (a 500).
        raise UserError(f"--rate must be from {MIN_RATE:g} to {MAX_RATE:g} requests per second, got {args.rate:g}")
    if not args.header_timeout > 0:
        raise UserError(f"--header-timeout must be > 0, got {args.header_timeout}")
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        raise UserError(f"--data-dir {args.data_dir} is not a folder")
    from ..edge.memory import parse_size

    if not 0 <= args.port <= 65535:  # the config's own check names its field, not the option
        raise UserError(f"--port must be 0..65535, got {args.port}")
    try:
        budget = parse_size(args.memory_budget) if args.memory_budget else None
    except ValueError as e:
        raise UserError(f"--memory-budget: {e}") from None
    try:
        config = ServerConfig(
            host=args.host, port=args.port, log_level=args.log_level,
            tokens=TokenSet.from_file(args.token_file) if args.token_file else TokenSet(),
            models=served_models(args.models), data_dir=args.data_dir, store_quota_bytes=args.quota_mb * 1024**2,
            store_client_quota_bytes=args.client_quota_mb * 1024**2 if args.client_quota_mb else None,
            workers=args.workers, max_pending=args.max_pending,
            rate_limit=RateLimitConfig(rate=args.rate, burst=max(1, int(2 * args.rate))),
            ssl_keyfile=args.ssl_keyfile, ssl_certfile=args.ssl_certfile, memory_budget=budget,
            max_connections=args.max_connections, max_connections_per_ip=args.max_connections_per_ip,
            header_timeout_s=args.header_timeout,
        )
    except ValueError as e:  # the config's own checks (a port out of range, ...) are the user's input
        raise UserError(str(e)) from None
    serve(config)
    return 0


def _fl_join(args: argparse.Namespace) -> int:
    from ..edge.fl_join import JoinConfig, join

    stop_on_sigterm()
    return join(JoinConfig(superlink=args.superlink, data_dir=args.data_dir, port=args.port, max_wait=args.max_wait))
