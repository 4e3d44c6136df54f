"""Start-up stays light: assembling the server imports neither torch nor diffusers; `serve` imports them in the
background once it answers, so that a first job does not wait for them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli import build_parser
from cli.runtime import runtime_settings
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
from cli import build_parser
from cli.serve import build_state
from server.app import create_app

args = build_parser().parse_args(["serve", "--base-directory", sys.argv[1], "--port", "0"])
create_app(build_state(args))
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "PIL") if m in sys.modules)
print(",".join(heavy))
"""


def test_server_assembly_imports_no_heavy_modules(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_serve_flags() -> None:
    """(`python main.py --port N` without a sub-command serving is what the crash test starts.)"""
    args = build_parser().parse_args(["serve", "--port", "8200", "--cache-lru", "5"])
    assert (args.port, args.cache_lru, args.listen, args.database) == (8200, 5, "127.0.0.1", None)


def test_cache_flags() -> None:
    assert runtime_settings(build_parser().parse_args(["serve", "--cache-lru", "5"])).cache_max_entries == 5
    assert not runtime_settings(build_parser().parse_args(["serve", "--cache-none"])).cache_outputs
    default = runtime_settings(build_parser().parse_args(["serve"]))
    assert default.cache_max_entries is None and default.cache_outputs and not default.cache_classic
    classic = runtime_settings(build_parser().parse_args(["serve", "--cache-lru", "0"]))
    assert classic.cache_classic and classic.cache_max_entries is None
    assert not runtime_settings(build_parser().parse_args(["validate", "x.json"])).cache_classic
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--cache-none", "--cache-lru", "3"])


@pytest.mark.slow
def test_serve_imports_the_model_layer_in_the_background_after_it_starts_answering(tmp_path: Path) -> None:
    """The first job would otherwise pay for importing torch, diffusers and transformers (seconds)."""
    from tests.server.test_crash import Child

    child = Child(tmp_path)  # returns once /object_info answers
    log = tmp_path / "server.log"
    try:
        wait_for(lambda: "model layer imported in the background" in log.read_text(), timeout=600, interval=0.5)
        text = log.read_text()
        assert text.index("serving on") < text.index("model layer imported in the background")
        assert "CheckpointLoaderSimple" in child.get("/object_info")
    finally:
        child.stop()
