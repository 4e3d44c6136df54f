"""Which static front end `serve` offers at `/`: Loom's own canvas (web/dist, the default), a folder given with
`--front-end-root`, or ComfyUI's stock front end (`--front-end comfyui`) from the `comfyui-frontend-package` wheel
the user installed. Loom never bundles the stock front end (it is GPL-licensed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from server.state import ROOT

LOOM_CANVAS = ROOT / "web" / "dist"
STOCK_PACKAGE = "comfyui_frontend_package"
STOCK_VERSION = "1.27.10"  # the version the reference release Loom's API matches pins
INSTALL_HINT = f"pip install comfyui-frontend-package=={STOCK_VERSION}"


class FrontEndError(ValueError):
    """A front end that cannot be served; the message says what to do."""


def stock_front_end() -> Path:
    """The static folder of the installed comfyui-frontend-package."""
    spec = importlib.util.find_spec(STOCK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FrontEndError(
            "--front-end comfyui needs ComfyUI's front end, which Loom does not bundle; install it into this "
            f"environment with:\n    {INSTALL_HINT}"
        )
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    if not (static / "index.html").is_file():
        raise FrontEndError(f"the installed {STOCK_PACKAGE} has no static/index.html; reinstall it: {INSTALL_HINT}")
    return static


def front_end_root(front_end: str, root: Path | None) -> Path:
    """The folder to serve at `/` for `--front-end NAME` and `--front-end-root PATH` (the path wins)."""
    if root is not None:
        root = root.expanduser().resolve()
        if not (root / "index.html").is_file():
            raise FrontEndError(f"--front-end-root {root}: no index.html there")
        return root
    if front_end == "comfyui":
        return stock_front_end()
    return LOOM_CANVAS
