"""Choosing the front end served at `/`: Loom's canvas, a folder, or the installed ComfyUI front end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cli import build_parser
from cli.frontend import INSTALL_HINT, LOOM_CANVAS, FrontEndError, front_end_root
from cli.serve import build_state, run


def test_default_is_loom_canvas() -> None:
    assert front_end_root("loom", None) == LOOM_CANVAS


def test_root_needs_an_index(tmp_path: Path) -> None:
    with pytest.raises(FrontEndError, match=r"no index\.html there"):
        front_end_root("loom", tmp_path)
    (tmp_path / "index.html").write_text("<html></html>")
    assert front_end_root("comfyui", tmp_path) == tmp_path.resolve()  # the folder wins over the name


def test_stock_front_end_found_when_installed() -> None:
    if importlib.util.find_spec("comfyui_frontend_package") is None:
        pytest.skip("comfyui-frontend-package is not installed (pip install -r requirements-dev.txt)")
    root = front_end_root("comfyui", None)
    assert (root / "index.html").is_file() and root.name == "static"


def test_stock_front_end_absent_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "comfyui_frontend_package" else real(name, *a)
    )
    with pytest.raises(FrontEndError) as caught:
        front_end_root("comfyui", None)
    assert INSTALL_HINT in str(caught.value) and "1.27.10" in INSTALL_HINT
    args = build_parser().parse_args(["serve", "--front-end", "comfyui", "--base-directory", str(tmp_path)])
    assert run(args) == 2
    assert INSTALL_HINT in capsys.readouterr().err


def test_serve_flags_reach_the_config(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>mine</html>")
    args = build_parser().parse_args(
        ["serve", "--front-end-root", str(site), "--multi-user", "--base-directory", str(tmp_path / "base"),
         "--disable-custom-nodes", "--preview-method", "latent2rgb"]
    )  # fmt: skip
    config = build_state(args).config
    assert (config.web_root, config.multi_user, config.preview_method) == (site.resolve(), True, "latent2rgb")
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.front_end, defaults.front_end_root, defaults.preview_method) == ("loom", None, None)
