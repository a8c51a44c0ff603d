"""The studio's web app: a page (``static/``) and a small JSON API under ``/api`` (FastAPI).

Sessions: the page asks ``POST /api/session`` for an id once per browser tab (kept in the tab's
``sessionStorage``) and sends it as the ``X-Studio-Session`` header, or as ``?session=`` where a
browser cannot set headers (``<img>``, ``<video>``, downloads, ``EventSource``). Every file is looked
up through its session's records, so another tab's ids answer 404.

Errors are JSON ``{"error": message}`` with a message for a person; the page shows it in its
``error`` element. Nothing answers with a traceback: an unexpected exception is one line in the
server log and "internal error" on the page.

Uploads are the raw request body (``fetch(url, {body: file})``), streamed to disk and cut off at the
size limit, so an oversized file never fills the disk first.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable
from starlette.types import Receive, Scope, Send

from ..errors import NotFoundError, UserError
from ..files import atomic_write_bytes
from ..video.image import read_image, write_image
from . import media
from .config import StudioConfig, binds_loopback
from .jobs import ACTIVE, FINISHED, Job, JobQueue, Renderer, StyleRef
from .workspace import Hold, Session, Style, Upload, WorkFolderFull, Workspace, tree_size

log = logging.getLogger("mvstylizer.studio")

STATIC = Path(__file__).with_name("static")
SESSION_HEADER = "X-Studio-Session"
CHUNK = 1 << 20
PRIVATE_CACHE = {"Cache-Control": "private, max-age=3600"}
T = TypeVar("T")
Subscriber = tuple[asyncio.AbstractEventLoop, "asyncio.Queue[dict | None]"]


class TooLarge(UserError):
    http_status = 413


class Superseded(UserError):
    http_status = 409


class Busy(UserError):
    http_status = 503


class UploadStalled(UserError):
    http_status = 408


class TooManyUploads(UserError):
    http_status = 429


class _BodyLimit:
    """Caps request bodies outside the upload routes (JSON of a few hundred bytes): a 300 MB JSON
    body was read whole, 2.4 GB of memory, before its session was even checked."""

    def __init__(self, app: Callable, limit: int, uploads: frozenset[str]) -> None:
        self.app, self.limit, self.uploads = app, limit, uploads

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] in self.uploads:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"error": f"request body over {self.limit} bytes"}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # an HTTPException: FastAPI turns anything else raised here into a 400
                raise StarletteHTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class StudioFile(FileResponse):
    """A file; a Range header it cannot serve is answered in JSON like every other refusal (Starlette
    answers a malformed one in text/plain and one past the end with an empty 416)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The file's validators first: If-Range is compared with them (a resumed download sent it and
        # got a 500, KeyError 'last-modified'), and a file gone meanwhile is a 404, not Starlette's 500.
        if self.stat_result is None:
            try:
                self.stat_result = await anyio.to_thread.run_sync(os.stat, self.path)
            except FileNotFoundError:
                gone = JSONResponse({"error": "this file is no longer on the server"}, status_code=404)
                return await gone(scope, receive, send)
            self.set_stat_headers(self.stat_result)
        headers = Headers(scope=scope)
        wanted, if_range = headers.get("range"), headers.get("if-range")
        if wanted is not None and (if_range is None or self._should_use_range(if_range)):
            refusal = self._refuse_range(wanted, self.stat_result.st_size)
            if refusal is not None:
                return await refusal(scope, receive, send)
        await super().__call__(scope, receive, send)

    def _refuse_range(self, wanted: str, size: int) -> JSONResponse | None:
        try:
            self._parse_range_header(wanted, size)
        except MalformedRangeHeader as exc:
            return JSONResponse({"error": f"bad Range header {wanted[:40]!r}: {exc.content}"}, status_code=400)
        except RangeNotSatisfiable:
            return JSONResponse({"error": f"Range {wanted[:40]!r} is past the end of the file ({size} bytes)"},
                                status_code=416, headers={"Content-Range": f"bytes */{size}"})
        return None


class LookRequest(BaseModel):
    video: str = Field(max_length=64)
    style: str = Field(max_length=80)  # "upload:<id>" or "gallery:<name>"
    model: str = Field("default", max_length=40)
    strength: float = Field(1.0, ge=0.0, le=1.0)
    # Previews: the tab's request counter. A preview still waiting when one with a higher number has
    # arrived is skipped (requests may reach the server in another order than the page sent them).
    seq: int = Field(0, ge=0)


# ------------------------------------------------------------------------------------ live updates


class Broadcaster:
    """Job updates to the event streams of one session; publish from any thread."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscriber]] = {}
        self._lock = threading.Lock()
        self.closed = False

    def subscribe(self, session: str) -> Subscriber:
        queue: asyncio.Queue[dict | None] = asyncio.Queue(maxsize=1000)
        sub = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._subs.setdefault(session, set()).add(sub)
        return sub

    def unsubscribe(self, session: str, sub: Subscriber) -> None:
        with self._lock:
            self._subs.get(session, set()).discard(sub)

    def publish(self, session: str, item: dict | None) -> None:
        with self._lock:
            subs = list(self._subs.get(session, ()))
        for loop, q in subs:
            try:
                loop.call_soon_threadsafe(_offer, q, item)
            except RuntimeError:  # its loop is closed: the server is going away
                pass

    def close(self) -> None:
        """End every event stream (server shutdown)."""
        self.closed = True
        with self._lock:
            sessions = list(self._subs)
        for s in sessions:
            self.publish(s, None)


def _offer(q: asyncio.Queue[dict | None], item: dict | None) -> None:
    try:
        q.put_nowait(item)
    except asyncio.QueueFull:  # a stalled reader: it gets a fresh snapshot when it reconnects
        pass


# ------------------------------------------------------------------------------------ previews


class PreviewLine:
    """Previews run one at a time, in the order asked; waiting costs a coroutine, not a server thread
    (90 previews waiting on a lock in threads made another tab's job list take 17 s).

    A session has at most one preview waiting: a newer one takes its place and the older answers
    409 at once (the page has dropped it). At most ``limit`` sessions wait at once; beyond, 503.
    Used from the event loop only, so it needs no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy = False
        self._waiting: OrderedDict[str, asyncio.Future[None]] = OrderedDict()  # session -> its turn

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def turn(self, session: str) -> AsyncIterator[None]:
        if self._busy or self._waiting:
            await self._wait(session)
        else:
            self._busy = True
        try:
            yield
        finally:
            self._next()

    async def _wait(self, session: str) -> None:
        older = self._waiting.pop(session, None)
        if older is not None and not older.done():  # done: cancelled, its request gone
            older.set_exception(Superseded("a newer preview was asked for"))
        elif len(self._waiting) >= self.limit:
            raise Busy("the studio is busy making previews for other tabs; try again in a moment")
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[session] = mine
        try:
            await mine
        except BaseException:
            if self._waiting.get(session) is mine:
                del self._waiting[session]
            if mine.done() and not mine.cancelled() and mine.exception() is None:
                self._next()  # the turn came as the request was dropped: hand it on
            raise

    def _next(self) -> None:
        """Hand the turn to the session waiting longest, or end the line's turn if none waits."""
        while self._waiting:
            _session, turn = self._waiting.popitem(last=False)
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False


# ------------------------------------------------------------------------------------ the app


class Studio:
    """What the routes share: config, work folder, job queue, models, gallery."""

    def __init__(self, config: StudioConfig, frame_hook: Callable[[Job, int], None] | None = None) -> None:
        self.config = config
        self.workspace = Workspace(config.workdir, config.max_work_bytes, config.ttl_seconds,
                                   max_sessions=config.max_sessions, preview_bytes=config.preview_cache_bytes)
        self.broadcaster = Broadcaster()
        self.renderer = Renderer(edge=config.edge, token=config.edge_token, crf=config.crf, preset=config.preset,
                                 frame_hook=frame_hook, check_room=self.check_room)
        self.rooms: dict[str, Hold] = {}  # job id -> the room held for its output, until it ends
        self.queue = JobQueue(self.renderer, self._job_changed)
        self.previews = PreviewLine(config.max_waiting_previews)
        # Decoding an upload can take hundreds of MB; requests beyond these slots wait their turn
        # without a thread (four 7000x7000 PNGs at once peaked at 5.7 GB).
        self.decoding = anyio.CapacityLimiter(config.decode_slots)
        self.gallery = media.gallery()
        self._models: list[dict] | None = None
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> None:
        self.queue.start()
        if self._janitor is None:
            self._janitor = threading.Thread(target=self._sweep_loop, name="mvstylizer-studio-janitor", daemon=True)
            self._janitor.start()

    def stop(self) -> None:
        self._stop.set()
        self.broadcaster.close()
        self.queue.stop()
        self.workspace.close()

    def _sweep_loop(self) -> None:
        period = max(1.0, min(60.0, self.config.ttl_seconds / 4))
        while not self._stop.wait(period):
            try:
                for job in self.workspace.sweep():
                    self._job_changed(job)  # expired: the page drops its player and downloads
            except Exception as exc:  # noqa: BLE001 - the janitor must never die
                log.error("work-folder clean-up failed: %s", exc)

    def check_room(self, job: Job) -> None:
        """A render's output against the room held for it; past it, more is asked for, by the rules
        of a new render (its tab's files, or tabs over their fair share). WorkFolderFull when there is
        none: the job fails, its unfinished file goes."""
        ws, hold = self.workspace, self.rooms[job.id]
        size = tree_size(job.dir)
        ws.written(hold, size - hold.written)
        if size <= hold.granted:
            return
        owner = ws.find(job.session)
        if owner is None or not self._more_room(owner, hold, size):
            raise WorkFolderFull(f"work folder full: the render outgrew the room the studio's work folder "
                                 f"({media.human_bytes(ws.max_bytes)} limit) could give it and was stopped; "
                                 "remove finished renders, or start the studio with a larger --max-work-mb")

    def _more_room(self, owner: Session, hold: Hold, size: int) -> bool:
        """Room for ``size`` bytes of output and some ahead (fewer asks); near the limit, for what is
        written only, so a render that fits is not stopped for the room it might have needed."""
        need = size - hold.granted
        for ask in (need + max(size // 8, 1 << 20), need):
            try:
                self.publish_removed(self.workspace.reserve(ask, owner, hold, others=True))
                return True
            except WorkFolderFull:
                pass
        return False

    def _job_changed(self, job: Job) -> None:
        if job.state in FINISHED:  # its output may be larger than the room it was given: its tab pays first
            if (hold := self.rooms.pop(job.id, None)) is not None:
                self.workspace.release(hold)
            owner = self.workspace.find(job.session)
            if owner is not None:  # a result to collect: its idle time starts now, not when the render began
                owner.last_seen = time.time()
            self.publish_removed([j for j in self.workspace.make_room(session=owner) if j is not job])
            if owner is not None:
                pruned = self.workspace.prune_jobs(owner, self.config.max_finished_jobs)
                for old in pruned:  # the page shows its card as removed
                    old.expired = True
                self.publish_removed(pruned)
        # An event and a response may cross (a job that starts while its POST is answered): the page
        # keeps the higher revision.
        job.rev += 1
        self.broadcaster.publish(job.session, job.as_dict())

    def publish_removed(self, jobs: list[Job]) -> None:
        """Tell the pages of jobs whose files were removed to make room (they drop player and downloads)."""
        for job in jobs:
            job.rev += 1
            self.broadcaster.publish(job.session, job.as_dict())

    # -- models
    def models(self) -> list[dict]:
        if self._models is None:
            self._models = self._load_models()
        return self._models

    def _load_models(self) -> list[dict]:
        from ..api import list_models

        local = {m.name: m for m in list_models()}
        if self.config.edge:
            from ..mobile.http_edge import HttpEdge

            # Short and tried once: the model list is read while a person waits for a preview, and an
            # edge that accepts connections but never answers held each request for up to 4 x 60 s.
            edge = HttpEdge(self.config.edge, token=self.config.edge_token, timeout=_MODELS_TIMEOUT, retries=0,
                            load_wait=0.0)
            try:
                remote = edge.models()
            finally:
                edge.close()
            entries = [(m["name"], m.get("description", ""), bool(m.get("spatial", True)),
                        local[m["name"]].experimental if m["name"] in local else False) for m in remote]
            default = next((m.name for m in local.values() if m.default), entries[0][0] if entries else "")
            if default not in {e[0] for e in entries} and entries:
                default = entries[0][0]
        else:
            entries = [(m.name, m.description, m.spatial, m.experimental) for m in local.values()]
            default = next(m.name for m in local.values() if m.default)
        out = []
        for name, description, spatial, experimental in entries:
            lut = name == "dncm"  # api.export_lut: the one model with a LUT export
            reason = None if lut else (
                "its look varies over the picture (sky one way, buildings another); a LUT maps a colour the same "
                "way everywhere" if spatial else "no LUT export for this model yet; dncm has one")
            out.append({"name": name, "label": _short(description), "description": description,
                        "spatial": spatial, "experimental": experimental, "default": name == default,
                        "lut": lut, "lut_reason": reason})
        return sorted(out, key=lambda m: (not m["default"], m["experimental"], m["name"]))

    def check_model(self, name: str) -> str:
        names = {m["name"] for m in self.models()}
        if name == "default":
            return next(m["name"] for m in self.models() if m["default"])
        if name not in names:
            raise UserError(f"unknown model {name!r}; the studio has {', '.join(sorted(names))}")
        return name

    # -- styles
    def style_ref(self, session: Session, key: str) -> StyleRef:
        kind, _, ident = key.partition(":")
        if kind == "gallery":
            if ident not in self.gallery:
                raise NotFoundError(f"no gallery style {ident!r}")
            path, title = self.gallery[ident]
            return StyleRef(key, title, path)
        if kind == "upload":
            st = session.style(ident)
            return StyleRef(key, st.name, st.image)
        raise UserError("pick a style photo first")


def _short(description: str) -> str:
    """A model's description cut to a few words for the model menu ("region-aware colour transfer")."""
    head, _, rest = description.partition(":")
    text = rest if rest and head.lower() in ("dnn", "classic, non-dnn") else head
    for sep in (" (", ";", ","):
        text = text.split(sep, 1)[0]
    return text.strip()


_MODELS_TIMEOUT = 10.0  # seconds a remote edge has to list its models
_RESERVE_BLOCK = 4 << 20  # an upload asks for room 4 MB at a time, as it arrives,
_RESERVE_SHARE = 64  # and at most 1/64 of the work folder: the uploads a tab may have arriving hold a few percent
_JSON_BODY_LIMIT = 64 << 10  # every route but the two uploads takes a small JSON body or none


async def _arriving(request: Request, idle: float, name: str) -> AsyncIterator[bytes]:
    """The request body as it arrives; UploadStalled (408) once nothing has come for ``idle`` seconds
    (a stalled upload kept its file, its room in the work folder and a connection, for good)."""
    body = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(body), idle)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadStalled(f"the upload of {name} stalled: nothing arrived for {idle:g} s") from None
        yield chunk


def _names_loopback(host: str) -> bool:
    """Whether a request's Host names this machine without asking DNS (a name that resolves to a
    loopback address is just what DNS rebinding uses): localhost, or a loopback address in any
    spelling a browser or curl may send (127.0.0.2, [::1], 127.1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # the short IPv4 forms (127.1), read as the C library reads them, without a look-up
        return ipaddress.IPv4Address(socket.inet_aton(host)).is_loopback
    except OSError:
        return False


def _clean_name(name: str | None, fallback: str, limit: int = 120) -> str:
    """A file name fit to show and to judge by its extension: no folders, no control characters,
    at most ``limit`` characters with the extension kept."""
    base = Path((name or "").replace("\\", "/")).name.strip()
    base = "".join(c for c in base if c.isprintable())
    if len(base) > limit:
        stem, suffix = Path(base).stem, Path(base).suffix[:16]
        base = stem[:limit - len(suffix)] + suffix
    return base or fallback


def create_app(config: StudioConfig, *, frame_hook: Callable[[Job, int], None] | None = None) -> FastAPI:
    """The studio app. ``frame_hook(job, index)`` (tests) runs after each frame of a render is written."""
    studio = Studio(config, frame_hook)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        studio.start()
        try:
            yield
        finally:
            studio.stop()

    app = FastAPI(title="mvstylizer studio", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = studio
    app.add_middleware(_BodyLimit, limit=_JSON_BODY_LIMIT, uploads=frozenset({"/api/videos", "/api/styles"}))
    loopback_only = binds_loopback(config.host)
    # Files answer HEAD as well (curl -I, download managers); FastAPI routes a GET to GET alone (405).
    get_file = functools.partial(app.api_route, methods=["GET", "HEAD"])

    # -- errors: always {"error": message}, never a traceback -------------------------------------
    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        status = getattr(exc, "http_status", 400)
        # One line per refused request (bad input, limits); the routine ones only at info level.
        log.log(logging.INFO if status in (401, 404, 409) else logging.WARNING, "%s %s -> %d: %s", request.method,
                request.url.path, status, exc)
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse({"error": text}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"bad request: {where}: {first.get('msg', 'invalid')}"}, status_code=422)

    def internal_error(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not bad input: one line in the log (the traceback at debug level), JSON for the page."""
        from ..extras import missing_extra

        if isinstance(exc, ImportError) and (err := missing_extra(exc, "the studio")) is not None:
            return JSONResponse({"error": str(err)}, status_code=500)
        log.error("%s %s: internal error: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        log.debug("traceback", exc_info=exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the details"},
                            status_code=500)

    @app.middleware("http")
    async def guard(request: Request, call_next):  # noqa: ANN001, ANN202
        host = request.url.hostname or ""
        if loopback_only and not _names_loopback(host):  # DNS rebinding: a web page must not reach a local app
            return JSONResponse({"error": f"unexpected host {host!r}"}, status_code=403)
        try:  # caught here, not by an exception handler, so no server prints a traceback either
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001
            response = internal_error(request, exc)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        # Everything comes from this server: no CDN script, style sheet or font can load.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
            "style-src 'self'; script-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'")
        return response

    def session_of(request: Request) -> Session:
        sid = request.headers.get(SESSION_HEADER) or request.query_params.get("session")
        return studio.workspace.session(sid)

    # -- page -------------------------------------------------------------------------------------
    @get_file("/", include_in_schema=False)
    async def index() -> StudioFile:
        return StudioFile(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @get_file("/favicon.ico", include_in_schema=False)
    async def favicon() -> StudioFile:
        return StudioFile(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- session, info, gallery -------------------------------------------------------------------
    @app.post("/api/session")
    async def new_session() -> dict:
        return {"session": studio.workspace.new_session().id}

    @app.get("/api/info")
    async def info() -> dict:
        try:
            models = await run_in_threadpool(studio.models)
            model_error = None
        except UserError as exc:
            models, model_error = [], f"cannot reach the edge {config.edge}: {exc}"
        return {
            "models": models, "model_error": model_error, "edge": config.edge or "in this process",
            "gallery": [{"key": f"gallery:{k}", "name": title, "thumb": f"/api/gallery/{k}.jpg"}
                        for k, (_p, title) in studio.gallery.items()],
            "limits": {"upload_bytes": config.max_upload_bytes, "upload": media.human_bytes(config.max_upload_bytes),
                       "video_pixels": config.max_video_pixels,
                       "style_bytes": config.max_style_bytes, "work": media.human_bytes(config.max_work_bytes),
                       "ttl_hours": round(config.ttl_seconds / 3600, 2)},
            "preview_frames": config.preview_frames,
        }

    @get_file("/api/gallery/{key}.jpg")
    async def gallery_thumb(key: str) -> Response:
        if key not in studio.gallery:
            raise NotFoundError(f"no gallery style {key!r}")
        path = studio.workspace.gallery_dir / f"{key}.jpg"
        if not path.is_file():
            def make() -> None:
                thumb = media.thumbnail(media.to_rgb8(read_image(studio.gallery[key][0])), 240)
                atomic_write_bytes(path, media.jpeg_bytes(thumb, 85))

            await run_in_threadpool(make)
        return StudioFile(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})

    # -- uploads ----------------------------------------------------------------------------------
    async def decode(fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a thread once one of the studio's decoding slots is free."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=studio.decoding)

    async def receive(request: Request, s: Session, target: Path, limit: int, what: str, name: str) -> int:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            size_text, limit_text = media.told_apart(int(declared), limit)
            raise TooLarge(f"{name} is {size_text}; the studio takes {what} of at most {limit_text}")
        # Room is asked for as the data arrives, a block at a time, and held until written (a declared
        # size or the route's limit, reserved up front, made files go for bytes that an aborted or
        # small chunked upload never sent). Only the tab's own files may make room for it.
        ws = studio.workspace
        size = reserved = 0
        wanted = min(limit, int(declared)) if declared and declared.isdigit() else limit  # no 4 MB for a small one
        with ws.lock:  # each upload arriving holds room: a tab dripping many at once held the whole folder
            if s.uploading >= config.max_uploads:
                raise TooManyUploads(f"{s.uploading} uploads are already arriving from this tab; wait for one to "
                                     f"finish before sending {name}")
            s.uploading += 1
        hold = ws.hold(s)
        try:
            with open(target, "wb") as f:
                async for chunk in _arriving(request, config.upload_idle_seconds, name):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"{name} is larger than {media.human_bytes(limit)}, the studio's limit "
                                       f"for {what}")
                    while size > reserved:
                        block = min(_RESERVE_BLOCK, max(ws.max_bytes // _RESERVE_SHARE, 64 << 10),
                                    max(wanted, size) - reserved, ws.max_bytes)
                        studio.publish_removed(await run_in_threadpool(ws.reserve, block, s, hold))
                        reserved += block
                    f.write(chunk)
                    ws.written(hold, len(chunk))
        except ClientDisconnect:
            log.info("%s %s: the page hung up during the upload of %s", request.method, request.url.path, name)
            raise UserError(f"the upload of {name} was interrupted") from None
        finally:
            ws.release(hold)
            with ws.lock:
                s.uploading -= 1
        if size == 0:
            raise UserError(f"{name} is empty (0 bytes)")
        return size

    @app.post("/api/videos")
    async def upload_video(request: Request, name: str | None = None, s: Session = Depends(session_of)) -> dict:
        name = _clean_name(name or request.headers.get("X-File-Name"), "video.mp4")
        suffix = media.check_video_name(name)
        vid, folder = studio.workspace.new_dir(s, "videos")
        source = folder / f"source{suffix}"
        try:
            size = await receive(request, s, source, config.max_upload_bytes, "videos", name)
            up = await decode(_ingest_video, vid, name, folder, source, config)
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, UserError):
                raise type(exc)(media.as_user_message(exc, source, name)) from None
            raise
        with studio.workspace.lock:
            s.uploads[vid] = up
        log.info("session %s: video %s (%s, %dx%d, %d frames)", s.id[:6], name, media.human_bytes(size),
                 up.facts.width, up.facts.height, up.facts.frames)
        return up.as_dict()

    @get_file("/api/videos/{vid}/frames/{k}.jpg")
    async def video_frame(vid: str, k: int, s: Session = Depends(session_of)) -> StudioFile:
        up = s.upload(vid)
        if not 0 <= k < len(up.frames):
            raise NotFoundError("no such frame")
        return StudioFile(up.frame_path(k), media_type="image/jpeg", headers=PRIVATE_CACHE)

    @app.post("/api/styles")
    async def upload_style(request: Request, name: str | None = None, s: Session = Depends(session_of)) -> dict:
        name = _clean_name(name or request.headers.get("X-File-Name"), "style.jpg")
        sid, folder = studio.workspace.new_dir(s, "styles")
        original = folder / f"original{Path(name).suffix.lower()[:8] or '.img'}"
        try:
            await receive(request, s, original, config.max_style_bytes, "style photos", name)
            st = await decode(_ingest_style, sid, name, folder, original, config.max_style_pixels)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        with studio.workspace.lock:
            s.styles[sid] = st
        return st.as_dict()

    @get_file("/api/styles/{sid}/thumb.jpg")
    async def style_thumb(sid: str, s: Session = Depends(session_of)) -> StudioFile:
        return StudioFile(s.style(sid).thumb, media_type="image/jpeg", headers=PRIVATE_CACHE)

    # -- preview ----------------------------------------------------------------------------------
    @app.post("/api/preview")
    async def preview(req: LookRequest, s: Session = Depends(session_of)) -> dict:
        up = s.upload(req.video)
        style = studio.style_ref(s, req.style)
        model = await run_in_threadpool(studio.check_model, req.model)  # may ask a remote edge
        strength = round(req.strength, 2)
        key = f"{up.id}|{style.key}|{model}|{strength:.2f}"
        if req.seq and s.preview_seq > req.seq:  # it reached the server after a newer one
            raise Superseded("a newer preview was asked for")
        s.preview_seq = max(s.preview_seq, req.seq)
        cached = studio.workspace.previews.get(s.id, key)
        if cached is None:
            async with studio.previews.turn(s.id):
                cached = await run_in_threadpool(_make_preview, studio, s, req.seq, up, style, model, strength)
            studio.workspace.previews.put(s.id, key, cached)
        return _preview_json(cached, up)

    @get_file("/api/previews/{pid}/{k}.jpg")
    async def preview_image(pid: str, k: int, s: Session = Depends(session_of)) -> Response:
        found = studio.workspace.previews.find(s.id, pid)
        if found is None or not 0 <= k < len(found["images"]):
            raise NotFoundError("that preview is gone; it is made again when the look changes")
        return Response(found["images"][k], media_type="image/jpeg", headers=PRIVATE_CACHE)

    # -- jobs -------------------------------------------------------------------------------------
    @app.post("/api/jobs")
    async def new_job(req: LookRequest, s: Session = Depends(session_of)) -> dict:
        up = s.upload(req.video)
        style = studio.style_ref(s, req.style)
        model = await run_in_threadpool(studio.check_model, req.model)  # may ask a remote edge
        jid = Job.new_id()
        job = Job(jid, s.id, s.dir / "jobs" / jid, up.id, up.name, up.source,
                  up.frame_path(len(up.frames) // 2) if up.frames else None, style, model, round(req.strength, 2),
                  up.facts.frames)

        def admit() -> list[Job]:
            """Room for the output (first guess: the size of the input, at the default quality; the
            render asks for more as it goes) and the job's entry, in one step: until the job is listed,
            freeing space could remove its own video."""
            with studio.workspace.lock:
                check_queue(s)
                if not up.source.exists():
                    raise NotFoundError(f"{up.name} is gone (the work folder was full); upload it again")
                if not style.path.exists():
                    raise NotFoundError(f"the style {style.name} is gone (the work folder was full); add it again")
                keep = {up.id, style.key.partition(":")[2]}
                hold = studio.workspace.hold(s)
                try:
                    removed = studio.workspace.reserve(up.source.stat().st_size, s, hold, keep=keep, others=True)
                except WorkFolderFull:
                    studio.workspace.release(hold)
                    raise
                studio.rooms[jid] = hold
                s.jobs[jid] = job
                return removed

        studio.publish_removed(await run_in_threadpool(admit))
        studio.queue.submit(job)
        log.info("session %s: job %s queued (%s, %s, %s, strength %.2f)", s.id[:6], jid, up.name, style.name,
                 model, job.strength)
        return job.as_dict()

    def check_queue(s: Session) -> None:
        """Refuse a render beyond the tab's or the whole studio's queue (under the workspace lock)."""
        active = sum(j.state in ACTIVE for j in s.jobs.values())
        if active >= config.max_queued:
            raise UserError(f"{active} renders are already waiting or running in this tab; cancel one or wait")
        everyone = sum(j.state in ACTIVE for other in studio.workspace.sessions() for j in other.jobs.values())
        if everyone >= config.max_queued_total:
            raise Busy(f"the studio is busy: {everyone} renders are waiting or running; try again when some are "
                       "done")

    @app.get("/api/jobs")
    async def list_jobs(s: Session = Depends(session_of)) -> dict:
        return {"jobs": [j.as_dict() for j in sorted(s.jobs.values(), key=lambda j: j.created)]}

    @app.get("/api/jobs/{jid}")
    async def get_job(jid: str, s: Session = Depends(session_of)) -> dict:
        return s.job(jid).as_dict()

    @app.post("/api/jobs/{jid}/cancel")
    async def cancel_job(jid: str, s: Session = Depends(session_of)) -> dict:
        job = s.job(jid)
        if job.state in ACTIVE:
            studio.queue.cancel(job)
        return job.as_dict()

    @app.delete("/api/jobs/{jid}")
    async def delete_job(jid: str, s: Session = Depends(session_of)) -> dict:
        job = s.job(jid)
        if job.state in ACTIVE:
            raise UserError("cancel the job before removing it")
        studio.workspace.forget_job(s, job)
        return {"removed": jid}

    def job_file(s: Session, jid: str, kind: str) -> tuple[Job, Path]:
        job = s.job(jid)
        if job.expired:
            raise NotFoundError("this job's files were removed (work-folder limit or age); render it again")
        if job.state != "done":
            raise NotFoundError(f"the job is {job.state}, so it has no {kind} to download")
        path = {"video": job.video_file, "lut": job.lut_file, "report": job.report_file}[kind]
        if not path.is_file():
            if kind == "lut":
                raise NotFoundError(f"no LUT for this job: {job.lut_reason or 'none was made'}")
            raise NotFoundError(f"this job has no {kind}")
        return job, path

    @get_file("/api/jobs/{jid}/video")
    async def job_video(jid: str, download: bool = False, s: Session = Depends(session_of)) -> StudioFile:
        job, path = job_file(s, jid, "video")
        return StudioFile(path, media_type="video/mp4", filename=f"{job.download_stem}.mp4" if download else None)

    @get_file("/api/jobs/{jid}/lut")
    async def job_lut(jid: str, s: Session = Depends(session_of)) -> StudioFile:
        job, path = job_file(s, jid, "lut")
        return StudioFile(path, media_type="text/plain", filename=f"{job.download_stem}.cube")

    @get_file("/api/jobs/{jid}/report")
    async def job_report(jid: str, download: bool = True, s: Session = Depends(session_of)) -> StudioFile:
        job, path = job_file(s, jid, "report")
        return StudioFile(path, media_type="application/json",
                            filename=f"{job.download_stem}_report.json" if download else None)

    @app.get("/api/events")
    async def events(request: Request, s: Session = Depends(session_of)) -> StreamingResponse:
        sub = studio.broadcaster.subscribe(s.id)
        snapshot = [j.as_dict() for j in sorted(s.jobs.values(), key=lambda j: j.created)]

        async def stream() -> AsyncIterator[str]:
            s.streams += 1  # a tab watching a long render is not idle: clean-up keeps its session
            try:
                yield "retry: 1500\n\n"
                yield f"event: snapshot\ndata: {json.dumps({'jobs': snapshot})}\n\n"
                while not studio.broadcaster.closed:
                    try:
                        item = await asyncio.wait_for(sub[1].get(), timeout=15.0)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        s.last_seen = time.time()
                        yield ": keep-alive\n\n"
                        continue
                    if item is None:
                        return
                    s.last_seen = time.time()
                    yield f"event: job\ndata: {json.dumps(item)}\n\n"
            finally:
                s.streams -= 1
                studio.broadcaster.unsubscribe(s.id, sub)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


# ------------------------------------------------------------------------------------ blocking work


def _ingest_video(vid: str, name: str, folder: Path, source: Path, config: StudioConfig) -> Upload:
    with media.read_warnings(source, name) as warnings:
        facts = media.probe_video(source)
        media.check_video_size(facts, name, config.max_video_pixels)
        if facts.frames == 0:
            raise UserError(f"{name} has no video frames")
        picked = media.preview_frames(source, facts, config.preview_frames, config.preview_side)
    if not picked:
        raise UserError(f"{name} has no video frames")
    up = Upload(vid, name, folder, source, facts, warnings=warnings)
    for k, (index, t, rgb8) in enumerate(picked):
        up.frame_path(k).write_bytes(media.jpeg_bytes(rgb8, 92))
        up.frames.append((index, t))
    return up


def _ingest_style(sid: str, name: str, folder: Path, original: Path, max_pixels: int) -> Style:
    rgb8 = media.load_style(original, name, max_pixels)
    st = Style(sid, name, folder, width=rgb8.shape[1], height=rgb8.shape[0],
               warnings=media.style_warnings(original, name))
    write_image(st.image, rgb8)
    st.thumb.write_bytes(media.jpeg_bytes(media.thumbnail(rgb8, 240), 85))
    original.unlink(missing_ok=True)
    return st


def _make_preview(studio: Studio, session: Session, seq: int, up: Upload, style: StyleRef, model: str,
                  strength: float) -> dict:
    """The upload's preview frames, each stylized as a key frame (the model runs on every one), in
    the caller's turn of :class:`PreviewLine`.

    One whose tab asked for a newer look while it waited is skipped (the page has dropped it already:
    moving a slider must not queue a preview per step)."""
    from ..api import VideoStylizer
    from .workspace import new_id

    if seq and session.preview_seq > seq:
        raise Superseded("a newer preview was asked for")
    frames = [media.read_jpeg(up.frame_path(k)) for k in range(len(up.frames))]
    t0 = time.perf_counter()
    try:
        with VideoStylizer(model, strength=strength, keyframes="every:1", max_gap=1, edge=studio.config.edge,
                           token=studio.config.edge_token) as vs:
            outs = list(vs.stylize_frames(frames, style.path))
    except UserError as exc:  # about the style photo, by its server path: the page gets its name
        raise UserError(media.as_user_message(exc, style.path, style.name)) from None
    seconds = time.perf_counter() - t0
    digest = hashlib.sha1(f"{up.id}{style.key}{model}{strength}".encode()).hexdigest()[:6]
    return {"id": f"{new_id()}{digest}", "images": [media.jpeg_bytes(o, 90) for o in outs], "model": model,
            "strength": strength, "style": style.key, "style_name": style.name, "seconds": round(seconds, 2)}


def _preview_json(p: dict, up: Upload) -> dict:
    return {"id": p["id"], "model": p["model"], "strength": p["strength"], "style": p["style"],
            "style_name": p["style_name"], "seconds": p["seconds"], "video": up.id,
            "frames": [{"index": index, "time": round(t, 3), "before": f"/api/videos/{up.id}/frames/{k}.jpg",
                        "after": f"/api/previews/{p['id']}/{k}.jpg"} for k, (index, t) in enumerate(up.frames)]}

