"""bench/gpu_check.py keeps working between GPU runs: the CPU path on the tiny architectures, run as a user would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # each test starts a Python that imports torch and diffusers
STEP = re.compile(r"^(sd15|sdxl) fp32 \(float32 on cpu\) 64x64, 2 steps: Loom (\d+\.\d+) s/step, bare diffusers", re.M)


def run_check(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_tiny_cpu_run_prints_step_times_for_both_families() -> None:
    proc = run_check("--tiny", "--precisions", "fp32")
    assert proc.returncode == 0, proc.stderr
    steps = {family: float(seconds) for family, seconds in STEP.findall(proc.stdout)}
    assert set(steps) == {"sd15", "sdxl"}, proc.stdout
    assert all(seconds > 0 for seconds in steps.values())
    assert "budget run: skipped on cpu" in proc.stdout


def test_unknown_precision_is_refused_with_a_clear_error() -> None:
    proc = run_check("--tiny", "--precisions", "fp8")
    assert proc.returncode == 2
    assert "--precisions: unknown precision 'fp8'" in proc.stderr
