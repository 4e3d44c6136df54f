"""The background import warm-up: held while the server is busy, never while a job waits for it, and the job
gets the very modules the warm-up imported (run in a fresh interpreter, where nothing is imported yet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, threading, time
from diffusion import offline

calls, release = [], threading.Event()

def wait_quiet(timeout):
    calls.append(timeout)
    if not release.is_set():
        release.wait()  # a request that lasts until the test ends it
    else:
        time.sleep(timeout)  # from now on the server is always busy

thread = offline.warm_up_in_background(wait_quiet)
while not calls:
    time.sleep(0.01)
held = "torch" not in sys.modules and thread.is_alive()
release.set()
module = offline.diffusers()  # a job needs it now: the warm-up stops waiting for quiet moments
after = len(calls)
time.sleep(0.5)
print(held)
print(not thread.is_alive(), offline.warm_up_in_background() is thread)
print(module is sys.modules["diffusers"], "diffusers.models.unets.unet_2d_condition" in sys.modules)
print("transformers.models.clip.modeling_clip" in sys.modules)
print(set(calls) == {offline.WARM_UP_MAX_WAIT_S}, len(calls) == after)
print(any(type(f).__name__ == "_WaitBeforeEachImport" for f in sys.meta_path))
"""


@pytest.mark.slow
def test_warm_up_waits_for_quiet_until_a_job_needs_the_imports() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    held, finished, same, clip, waits, finder_left = result.stdout.split("\n")[:6]
    assert held == "True"  # nothing imported while the (simulated) request ran
    assert finished == "True True"  # the job's accessor returned after the warm-up ended; one warm-up per process
    assert same == "True True"  # the job got the module the warm-up imported, with the UNet class's module
    assert clip == "True"
    assert waits == "True True"  # waits of the set length, and none after the job asked
    assert finder_left == "False"  # the import hook is gone once the warm-up is done
