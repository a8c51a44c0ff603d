"""The edge's HTTP API (``mvstylizer edge serve``): a thin FastAPI layer over one ``EdgeService``.

Endpoints, versioned under ``/v1`` (the OpenAPI spec is at ``/openapi.json``):

- ``GET|HEAD /v1/health`` -> ``{"status": "ok"}`` (never needs a token: liveness probes)
- ``GET  /v1/models``  -> ``{"models": [{"name", "description", "runtimes", "aliases"}, ...]}``
  (only the models this edge serves, ``--models``)
- ``POST /v1/styles``  body: one PNG/JPEG/WebP image -> ``{"style_id": ...}``
- ``POST /v1/stylize?style_id=&model=&encoding=&quality=&collect=`` body: ``wire.pack_frames`` of
  encoded frames (``wire.FRAMES_MEDIA_TYPE``) -> packed stylized frames in the requested encoding.
  ``collect=true`` is the phone's opt-in: the key frames are kept in the frame store (``--data-dir``);
  the ``X-Frames-Collected`` response header says how many were.
- ``GET  /v1/metrics`` -> Prometheus text exposition (requests, latency, queue depth, frames).

With a token file every route but health needs ``Authorization: Bearer <token>`` (401 otherwise;
after too many 401s from one address, 429 before any token is checked) whose scopes include the
route's (403 otherwise: ``metrics`` for /v1/metrics, ``stylize`` for the rest). A token in the URL
query is refused (400) and redacted from the access log. There is no ``/docs`` page (Swagger UI
loads its scripts from a CDN); the spec is at ``/openapi.json``.
Errors are JSON ``{"detail": "..."}``: 400 bad input, 401 no or unknown token, 404 unknown style,
408 body too slow, 413 too large, 415 wrong content type, 422 bad query parameters, 429 this client
over its rate or concurrency limit and 503 the edge over its queue or body-memory limit (both with
``Retry-After``),
500 a bug (generic message; the traceback goes to the log and the server keeps serving).

Decoding, stylization and encoding run in a bounded thread pool (``ServerConfig.workers`` threads), never
on the event loop; at most ``max_pending`` requests wait for it, the rest get 503 at once. Every request
body is read through :func:`read_limited_body`, and every image's dimensions are read from its header
before it is decoded, so neither a huge upload nor a decompression bomb can exhaust memory.

Per request, in this order: auth (401) -> per-client rate and concurrency limit (429) -> query
parameters (422) -> content type (415) -> for /v1/stylize, its model (400) and style id (404) -> body
size, read time and all bodies in flight (413/408/503) -> queue slot (503) -> header checks and
decoding in a worker. A slow uploader therefore holds no worker, and one client cannot fill the queue.
Routes get the service and limits from ``app.state`` through small dependencies (no module-level state).

Modules, each one job: :mod:`.config` (``ServerConfig``), :mod:`.schemas` (response models and
OpenAPI error declarations), :mod:`.runtime` (per-app state and the bounded worker pool),
:mod:`.guard` (auth, scopes, rate limits), :mod:`.bodies` (size- and time-limited request bodies),
:mod:`.images` (image checks before and after decoding), :mod:`.jobs` (the work a worker runs),
:mod:`.routes`, :mod:`.app` (``create_app``) and :mod:`.serve` (socket, uvicorn, graceful shutdown).
"""
