"""``mvstylizer studio``: the local web app (docs/STUDIO.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import UserError
from .args import finite_float, path_arg, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("studio", help="restyle a video from a web page: before/after preview, render jobs, "
                                       "downloads (docs/STUDIO.md)")
    st.set_defaults(handler=_studio)
    st.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1: this machine only)")
    st.add_argument("--port", type=int, default=8500, help="port (default 8500; 0: any free port)")
    st.add_argument("--edge", metavar="URL", help="run the models on an edge server (`mvstylizer edge serve`; token "
                                                  "from $MVSTYLIZER_EDGE_TOKEN) instead of in this process")
    st.add_argument("--workdir", type=path_arg, metavar="DIR",
                    help="work folder for uploads and renders (default: a temporary folder, removed at exit)")
    st.add_argument("--max-upload-mb", type=positive_int, metavar="MB",
                    help="largest video (default 500, or --max-work-mb if that is smaller)")
    st.add_argument("--max-work-mb", type=positive_int, default=5000, metavar="MB",
                    help="work folder size limit; the oldest renders go first (default 5000)")
    st.add_argument("--keep-hours", type=finite_float, default=24.0, metavar="H",
                    help="files untouched this long are removed (default 24)")
    st.add_argument("--max-video-pixels", type=positive_int, default=3840 * 2160, metavar="N",
                    help="largest video frame, width x height (default 8294400: 4K UHD either way up)")
    st.add_argument("--max-sessions", type=positive_int, default=500, metavar="N",
                    help="browser tabs at once; a new one beyond makes the studio forget the idlest (default 500)")


def _studio(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    try:
        import uvicorn  # noqa: F401

        from ..studio import StudioConfig, serve
        from ..studio.app import create_app  # noqa: F401 - FastAPI present?
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("fastapi", "starlette", "uvicorn", "pydantic", "anyio"):
            raise
        raise UserError("the studio needs FastAPI and uvicorn, which the core install leaves out: "
                        "pip install 'mvstylizer[studio]'") from None
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    if not args.keep_hours > 0:
        raise UserError(f"--keep-hours must be > 0, got {args.keep_hours}")
    # Unless asked for, the upload limit follows a smaller work folder: --max-work-mb 100 alone was
    # refused for a default of 500 the user never gave.
    max_upload_mb = min(500, args.max_work_mb) if args.max_upload_mb is None else args.max_upload_mb
    if max_upload_mb > args.max_work_mb:
        raise UserError(f"--max-upload-mb {max_upload_mb} cannot be larger than --max-work-mb {args.max_work_mb}")
    if args.workdir is not None and args.workdir.exists() and not args.workdir.is_dir():
        raise UserError(f"--workdir {args.workdir} is a file, not a folder")
    if args.edge:  # the URL's form (scheme, port, no credentials), as stylize checks it; no request is made
        from ..mobile.http_edge import HttpEdge

        HttpEdge(args.edge).close()
    temp: Path | None = None
    try:  # made inside: a Ctrl-C just after it is made still removes it
        if args.workdir is None:
            temp = Path(tempfile.mkdtemp(prefix="mvstylizer-studio-"))
        workdir: Path = args.workdir if temp is None else temp
        serve(StudioConfig(workdir=workdir, host=args.host, port=args.port, edge=args.edge,
                           edge_token=os.environ.get("MVSTYLIZER_EDGE_TOKEN") or None,
                           max_upload_bytes=max_upload_mb * 1024**2, max_work_bytes=args.max_work_mb * 1024**2,
                           ttl_seconds=args.keep_hours * 3600, max_video_pixels=args.max_video_pixels,
                           max_sessions=args.max_sessions),
              before_run=getattr(args, "check_stop", None))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return 0
