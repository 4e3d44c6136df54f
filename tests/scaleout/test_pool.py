"""The Ray worker pool behind a real server: jobs at once on two workers, cache-affinity placement, events and
output files streamed home, a worker killed mid-job, node errors not retried, workers in /system_stats."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.scaleout.conftest import Farm, Server, collect, of, receive_some, tiny_workflow

pytestmark = pytest.mark.slow


async def test_two_jobs_run_at_once_on_different_workers(server: Server, tmp_path: Path) -> None:
    """Each job waits at a rendezvous for the other: both can only finish if they run at the same time."""
    client = uuid.uuid4().hex
    async with server.http.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
        first = await server.post_prompt(
            tiny_workflow("a.safetensors", "one", "both_a", folder=str(tmp_path), me="a", wait_for="b"), client
        )
        second = await server.post_prompt(
            tiny_workflow("b.safetensors", "two", "both_b", folder=str(tmp_path), me="b", wait_for="a"), client
        )
        messages = await collect(ws, {first, second})
    pids = set()
    for prompt_id in (first, second):
        assert of(messages, prompt_id, "execution_success"), of(messages, prompt_id, "execution_error")
        assert of(messages, prompt_id, "progress"), "progress events stream from the worker"
        (executed,) = [d for d in of(messages, prompt_id, "executed") if d["node"] == "4"]
        pids.add(executed["output"]["pid"][0])
        image = executed["output"]["images"][0]
        assert image["type"] == "output"
        saved = server.state.folders.output / image["subfolder"] / image["filename"]
        assert saved.read_bytes().startswith(b"\x89PNG"), "the worker's file was written into the server's folder"
        entry = await server.history(prompt_id)
        assert entry["outputs"]["4"]["images"] == [image]
        assert entry["status"]["status_str"] == "success"
    assert len(pids) == 2, "the two jobs ran in two worker processes"


async def test_same_checkpoint_lands_on_the_warm_worker(server: Server, farm: Farm) -> None:
    """After a job on checkpoint a, the next job on a goes to the worker holding it (not the longer idle one) and
    is served the loaded checkpoint from its cache; /system_stats names what each worker holds."""
    client = uuid.uuid4().hex
    async with server.http.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
        first = await server.post_prompt(tiny_workflow("a.safetensors", "first", "warm1"), client)
        messages = await collect(ws, {first})
        second = await server.post_prompt(tiny_workflow("a.safetensors", "second", "warm2"), client)
        messages += await collect(ws, {second})
    (cached_first,) = of(messages, first, "execution_cached")
    (cached_second,) = of(messages, second, "execution_cached")
    assert "1" not in cached_first["nodes"]
    assert "1" in cached_second["nodes"], "the second job skipped loading the checkpoint"
    assert "1" not in [d["node"] for d in of(messages, second, "executing")]
    pid = {d["output"]["pid"][0] for p in (first, second) for d in of(messages, p, "executed") if d["node"] == "4"}
    assert len(pid) == 1, "both jobs ran on the same worker"

    stats = await server.get("/system_stats")
    workers = stats["workers"]
    assert len(workers) == 2
    assert {w["device"] for w in workers} == {"cpu"}
    (warm,) = [w for w in workers if w["pid"] in pid]
    assert any("a.safetensors" in label for label in warm["cache"]["models"])
    assert warm["cache"]["signatures"] >= 4 and warm["state"] == "idle" and warm["job"] is None
    assert all(w["memory"]["rss"] > 0 for w in workers)


async def test_killed_worker_job_runs_once_more_elsewhere(server: Server, farm: Farm, tmp_path: Path) -> None:
    import ray

    client = uuid.uuid4().hex
    workflow = tiny_workflow("c.safetensors", "kill", "killed", folder=str(tmp_path), me="started", wait_for="go")
    async with server.http.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
        prompt_id = await server.post_prompt(workflow, client)
        seen: list[dict] = []
        async with asyncio.timeout(60):  # events arrive while the job is still held on the worker
            while not any(m["type"] == "executing" and m["data"]["node"] == "3" for m in seen):
                seen += await receive_some(ws)
        (slot,) = [s for s in farm.pool.slots if s.job == prompt_id]
        async with asyncio.timeout(60):  # the node's start event comes before its body writes the file
            while not (tmp_path / "started").exists():
                await asyncio.sleep(0.05)
        killed_pid = int((tmp_path / "started").read_text())
        ray.kill(slot.actor, no_restart=False)
        async with asyncio.timeout(60):
            while slot.state == "busy":
                await asyncio.sleep(0.05)
        (tmp_path / "go").touch()
        messages = seen + await collect(ws, {prompt_id})
    assert len(of(messages, prompt_id, "execution_success")) == 1
    assert len(of(messages, prompt_id, "execution_start")) == 2, "the job started again after the worker died"
    entry = await server.history(prompt_id)
    assert entry["status"]["status_str"] == "success" and entry["retry"] is True and entry["attempts"] == 2
    assert entry["outputs"]["4"]["pid"][0] != killed_pid
    ran_on = [s for s in farm.pool.slots if s.info.get("pid") == entry["outputs"]["4"]["pid"][0]]
    assert ran_on and ran_on[0] is not slot, "the retry ran on the other worker"
    files = sorted(server.state.folders.output.glob("killed_*.png"))
    assert len(files) == 1, "exactly one output from exactly one completed run"
    assert slot.restarts == 1
    async with asyncio.timeout(60):
        while slot.state != "idle":
            await asyncio.sleep(0.1)
    assert slot.info["pid"] != killed_pid, "Ray replaced the dead worker"
    assert (await server.get("/queue"))["queue_pending"] == []


async def test_node_error_is_a_job_error_not_retried(server: Server) -> None:
    client = uuid.uuid4().hex
    async with server.http.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
        prompt_id = await server.post_prompt(tiny_workflow("missing.safetensors", "x", "err"), client)
        messages = await collect(ws, {prompt_id})
    (error,) = of(messages, prompt_id, "execution_error")
    assert error["node_id"] == "1" and error["exception_type"] == "FileNotFoundError"
    assert len(of(messages, prompt_id, "execution_start")) == 1
    entry = await server.history(prompt_id)
    assert entry["status"]["status_str"] == "error" and entry["attempts"] == 1 and entry["retry"] is False


async def test_interrupt_reaches_the_worker(server: Server, tmp_path: Path) -> None:
    client = uuid.uuid4().hex
    workflow = tiny_workflow("a.safetensors", "stop", "stopped", folder=str(tmp_path), me="held", wait_for="never")
    async with server.http.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
        prompt_id = await server.post_prompt(workflow, client)
        seen: list[dict] = []
        async with asyncio.timeout(60):
            while not any(m["type"] == "executing" and m["data"]["node"] == "3" for m in seen):
                seen += await receive_some(ws)
        async with server.http.post(server.url + "/interrupt", json={"prompt_id": prompt_id}) as r:
            assert r.status == 200
        messages = seen + await collect(ws, {prompt_id})
    (interrupted,) = of(messages, prompt_id, "execution_interrupted")
    assert interrupted["node_id"] == "3"
    entry = await server.history(prompt_id)
    assert entry["status"]["completed"] is False and entry["attempts"] == 1
    assert not list(server.state.folders.output.glob("stopped_*.png"))
