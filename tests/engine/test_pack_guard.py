"""Pack imports run under limits: a time limit, a notice while slow, prints off stdout, os._exit reported."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from engine.pack_guard import PackImportTimeout, guarded
from engine.packs import format_summary, load_packs
from engine.registry import NodeRegistry

ROOT = Path(__file__).resolve().parents[2]
FINE = "class Fine:\n    RETURN_TYPES = ()\n    FUNCTION = 'run'\n    INPUT_TYPES = classmethod(lambda cls: {})\n"


def write_packs(root: Path, packs: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, source in packs.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    return root


@pytest.mark.parametrize(
    "loop",
    [
        "while True:\n    try:\n        pass\n    except Exception:\n        pass\n",
        "import time\ntime.sleep(3600)\n",
    ],
    ids=["busy-loop-swallowing-exceptions", "blocking-sleep"],
)
def test_a_pack_that_never_finishes_importing_fails_and_the_next_loads(tmp_path: Path, loop: str) -> None:
    root = write_packs(
        tmp_path / "custom_nodes", {"a_stuck": loop, "b_fine": FINE + "NODE_CLASS_MAPPINGS = {'Fine': Fine}\n"}
    )
    registry = NodeRegistry()
    stuck, fine = load_packs(registry, [root], timeout=0.5)
    assert stuck.status == "failed" and stuck.error.startswith("PackImportTimeout")
    assert "'a_stuck' was still importing after 0.5 s" in stuck.error and "--pack-import-timeout" in stuck.error
    assert "custom_nodes.a_stuck" not in sys.modules
    assert fine.status == "ok" and "Fine" in registry
    assert "FAILED" in format_summary([stuck, fine])


def test_the_time_limit_also_holds_off_the_main_thread(tmp_path: Path) -> None:
    root = write_packs(tmp_path / "custom_nodes", {"spinner": "while True:\n    pass\n"})
    results: list = []
    worker = threading.Thread(target=lambda: results.extend(load_packs(NodeRegistry(), [root], timeout=0.5)))
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    [spinner] = results
    assert spinner.status == "failed" and "still importing after 0.5 s" in spinner.error


def test_no_limit_and_a_quick_pack_leave_no_alarm_behind(tmp_path: Path) -> None:
    root = write_packs(tmp_path / "custom_nodes", {"quick": "VALUE = 1\n"})
    [quick] = load_packs(NodeRegistry(), [root], timeout=0.2)
    [unlimited] = load_packs(NodeRegistry(), [root], timeout=None)
    assert quick.status == unlimited.status == "ok"
    threading.Event().wait(0.4)  # past the first pack's limit: a stray alarm would raise here


def test_slow_import_is_announced_by_name_and_prints_go_to_the_log_stream() -> None:
    stream = io.StringIO()
    started = threading.Event()
    with guarded("sleepy", timeout=None, slow_seconds=0.05, stream=stream):
        print("pack chatter")
        started.wait(0.5)
    assert "pack chatter" in stream.getvalue()
    assert "still importing node pack 'sleepy'..." in stream.getvalue()


def test_timeout_is_a_base_exception_a_pack_cannot_swallow() -> None:
    assert not issubclass(PackImportTimeout, Exception)
    with (
        pytest.raises(PackImportTimeout, match=r"'looping' was still importing after 0\.2 s"),
        guarded("looping", timeout=0.2, slow_seconds=10),
    ):
        while True:
            try:
                threading.Event().wait(0.01)
            except Exception:
                continue


def test_os_exit_at_import_is_reported_by_name_before_the_process_ends(tmp_path: Path) -> None:
    root = write_packs(tmp_path / "custom_nodes", {"quitter": "import os\nos._exit(7)\n"})
    code = (
        "import sys\nfrom engine.packs import load_packs\nfrom engine.registry import NodeRegistry\n"
        f"load_packs(NodeRegistry(), [{str(root)!r}])\nprint('not reached')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 7
    assert "node pack 'quitter' called os._exit(7) while importing; Loom exits now" in result.stderr
    assert "not reached" not in result.stdout
