"""Single-process Loom (the default `--workers local`) never imports Ray: not at start-up, not running a job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.scaleout.conftest import farm_args

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, time
from cli import build_parser
from cli.serve import build_state
from tests.scaleout.conftest import tiny_workflow

args = build_parser().parse_args(sys.argv[1:])
state = build_state(args)
after_start = "ray" in sys.modules
state.jobs.start()
job, _ = state.jobs.accept(tiny_workflow("a.safetensors", "solo", "solo"))
deadline = time.monotonic() + 60
while state.jobs.remaining() and time.monotonic() < deadline:
    time.sleep(0.05)
state.jobs.stop()
entry = state.jobs.store.history_entry(job.prompt_id)
print(json.dumps({"after_start": after_start, "after_job": "ray" in sys.modules, "status": entry["status"]}))
"""


def test_local_workers_never_import_ray(tmp_path: Path) -> None:
    args = farm_args(tmp_path)
    argv = ["serve", "--base-directory", str(args.base_directory)]
    argv += ["--extra-model-paths-config", str(args.extra_model_paths_config[0]), "--workers", "local"]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"]["status_str"] == "success"
    assert result == {"after_start": False, "after_job": False, "status": result["status"]}
