"""Execution semantics as ComfyUI clients and packs expect them, each through the real HTTP + WebSocket API with a
test pack shaped like the ones packs ship (tests/server/packs/semantics_pack)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import pytest
from PIL import Image

from engine.cache import OutputCache
from tests.server.conftest import Running, connect, receive_until_done
from tests.server.semantics_server import make_sem_server, run_prompt, sem

__all__ = ["make_sem_server", "sem"]


def num(value: int) -> dict[str, Any]:
    return {"class_type": "TestNumber", "inputs": {"value": value}}


def show(link: list[Any]) -> dict[str, Any]:
    return {"class_type": "SemShow", "inputs": {"value": link}}


# ---- seams -----------------------------------------------------------------------------------------------------


async def test_literals_arrive_converted_as_validation_made_them(sem: Running) -> None:
    prompt = {"1": {"class_type": "SemTyped", "inputs": {"i": "5", "f": 2, "s": 7, "b": "true"}}}
    done = await run_prompt(sem, prompt)
    assert done.ui("1") == {"types": ["int", "float", "str", "bool"], "values": [5, 2.0, "7", True]}
    async with sem.http.get(sem.url + "/queue") as r:
        assert (await r.json()) == {"queue_running": [], "queue_pending": []}
    assert done.entry["prompt"][2]["1"]["inputs"] == {"i": 5, "f": 2.0, "s": "7", "b": True}


async def test_node_warning_reaches_the_client_and_the_history(sem: Running) -> None:
    prompt = {
        "1": num(1),
        "2": {"class_type": "SemBlock", "inputs": {"x": ["1", 0]}},
        "3": show(["2", 0]),
    }
    done = await run_prompt(sem, prompt)
    warnings = done.of("node_warning")
    assert [(w["node"], w["message"]) for w in warnings] == [("3", "Execution blocked: held back on purpose")]
    recorded = [m for m in done.entry["status"]["messages"] if m[0] == "node_warning"]
    assert [m[1]["message"] for m in recorded] == ["Execution blocked: held back on purpose"]
    assert [m[0] for m in done.entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "node_warning",
        "execution_success",
    ]


# ---- history and events ----------------------------------------------------------------------------------------


async def test_history_is_written_before_the_job_closes(sem: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients fetch /history/{id} the moment they see execution_success or `executing {node: null}`, even when
    the disk is slow to take the entry."""
    store = sem.state.jobs.store
    write = store.finish_encoded

    def slow_write(prompt_id: str, text: str) -> None:
        time.sleep(0.2)
        write(prompt_id, text)

    monkeypatch.setattr(store, "finish_encoded", slow_write)
    async with connect(sem, "eager") as ws:
        await ws.recv()
        open_jobs = set()
        for value in range(6):
            status, body = await sem.post_prompt({"1": num(value), "2": show(["1", 0])}, client_id="eager")
            assert status == 200
            open_jobs.add(body["prompt_id"])
        checked = 0
        async with asyncio.timeout(30):
            while open_jobs:
                raw = await ws.recv()
                if isinstance(raw, bytes):
                    continue
                msg = json.loads(raw)
                pid = msg["data"].get("prompt_id")
                closing = msg["type"] == "executing" and msg["data"]["node"] is None
                if pid in open_jobs and (closing or msg["type"] == "execution_success"):
                    assert pid in await sem.history(pid)
                    checked += 1
                    if closing:
                        open_jobs.discard(pid)
        assert checked == 12


async def test_history_paging_counts_offset_from_the_oldest(sem: Running) -> None:
    ids = [(await run_prompt(sem, {"1": num(v), "2": show(["1", 0])})).prompt_id for v in range(4)]

    async def page(**params: Any) -> list[str]:
        async with sem.http.get(sem.url + "/history", params={k: str(v) for k, v in params.items()}) as r:
            return list(await r.json())

    assert await page(max_items=2) == ids[2:]
    assert await page(max_items=2, offset=1) == ids[1:3]
    assert await page(offset=3) == ids[3:]
    assert await page() == ids


async def test_execution_cached_lists_lazy_and_expansion_reached_nodes_once_up_front(sem: Running) -> None:
    prompt = {
        "1": num(3),
        "2": num(4),
        "3": {"class_type": "SemLazySwitch", "inputs": {"pick": True, "on": ["1", 0], "off": ["2", 0]}},
        "4": show(["3", 0]),
        "7": num(9),
        "8": {"class_type": "SemLinkExpand", "inputs": {"target": "7"}},
        "9": show(["8", 0]),
    }
    first = await run_prompt(sem, prompt)
    assert first.ui("9") == {"type": ["int"], "repr": ["10"]} and first.ui("4") == {"type": ["int"], "repr": ["3"]}
    again = await run_prompt(sem, prompt)
    cached = again.of("execution_cached")
    assert len(cached) == 1
    assert set(cached[0]["nodes"]) >= {"1", "7"} and "3" not in cached[0]["nodes"]
    kinds = [m["type"] for m in again.messages if isinstance(m, dict)]
    assert kinds.index("execution_cached") < kinds.index("executing")
    assert "1" not in again.executing() and "7" not in again.executing() and "2" not in again.executing()


async def test_execution_error_current_outputs_is_a_list_of_node_ids(sem: Running) -> None:
    done = await run_prompt(sem, {"1": num(2), "2": {"class_type": "SemBoom", "inputs": {"x": ["1", 0]}}})
    error = done.of("execution_error")[0]
    assert error["current_outputs"] == ["1"] and error["node_id"] == "2"
    assert error["exception_message"] == "boom 2" and error["current_inputs"] == {"x": 2}
    recorded = next(m[1] for m in done.entry["status"]["messages"] if m[0] == "execution_error")
    assert recorded["current_outputs"] == ["1"]


# ---- validation ------------------------------------------------------------------------------------------------

LINK_TYPES = {
    "1": {"class_type": "SemSource", "inputs": {}},
    "2": {"class_type": "SemSinkBC", "inputs": {"x": ["1", 0]}},
    "3": {"class_type": "SemSinkStar", "inputs": {"x": ["1", 0]}},
    "4": {"class_type": "SemSinkDTypes", "inputs": {"x": ["1", 0]}},
    "5": {"class_type": "SemSinkD", "inputs": {"x": ["1", 0]}},
}


async def test_link_types_overlap_or_any_and_input_types_alone_skips_the_check(sem: Running) -> None:
    status, body = await sem.post_prompt(LINK_TYPES)
    assert status == 200, body
    assert set(body["node_errors"]) == {"5"}  # names x in VALIDATE_INPUTS, but takes no input_types: checked
    error = body["node_errors"]["5"]["errors"][0]
    assert error["type"] == "return_type_mismatch" and error["extra_info"]["input_name"] == "x"


async def test_validate_inputs_gets_converted_literals_none_links_hidden_values_and_types(sem: Running) -> None:
    prompt = {
        "1": num(1),
        "2": {"class_type": "SemValidated", "inputs": {"n": "40", "linked": ["1", 0], "choice": "a"}},
    }
    done = await run_prompt(sem, prompt)
    assert done.ui("2") == {"n": [40], "linked": [1], "choice": ["a"]}  # 40 > max 10: n is the validator's
    prompt["2"]["inputs"]["choice"] = "zzz"  # not named by the validator: its choices still apply
    status, body = await sem.post_prompt(prompt)
    assert status == 400 and body["node_errors"]["2"]["errors"][0]["type"] == "value_not_in_list"


async def test_kwargs_validator_skips_every_range_and_choice_but_values_are_converted(sem: Running) -> None:
    done = await run_prompt(sem, {"1": {"class_type": "SemKwargs", "inputs": {"f": 5, "c": "nope"}}})
    assert done.ui("1") == {"f": [5.0], "f_type": ["float"], "c": ["nope"]}


async def test_invalid_outputs_are_dropped_and_the_valid_ones_run(sem: Running) -> None:
    prompt = {
        "1": num(4),
        "2": show(["1", 0]),
        "3": {"class_type": "SemRefuse", "inputs": {"x": 1}},
        "4": {"class_type": "SemTyped", "inputs": {"i": 500, "f": 0, "s": "", "b": False}},
    }
    async with connect(sem, "partial") as ws:
        await ws.recv()
        status, body = await sem.post_prompt(prompt, client_id="partial")
        assert status == 200 and set(body) == {"prompt_id", "number", "node_errors"}
        await receive_until_done(ws, body["prompt_id"])
    assert set(body["node_errors"]) == {"3", "4"}
    refused = body["node_errors"]["3"]["errors"][0]
    assert refused["type"] == "custom_validation_failed" and refused["extra_info"]["input_name"] == "x"
    assert body["node_errors"]["4"]["errors"][0]["type"] == "value_bigger_than_max"
    entry = (await sem.history(body["prompt_id"]))[body["prompt_id"]]
    assert set(entry["outputs"]) == {"2"} and entry["prompt"][4] == ["2"]
    status, body = await sem.post_prompt({"3": prompt["3"], "4": prompt["4"]})
    assert status == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
    assert set(body["node_errors"]) == {"3", "4"}


async def test_missing_load_image_file_names_the_input(sem: Running) -> None:
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "absent.png"}}, "2": show(["1", 0])}
    status, body = await sem.post_prompt(prompt)
    assert status == 400
    error = body["node_errors"]["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and error["extra_info"]["input_name"] == "image"


# ---- execution -------------------------------------------------------------------------------------------------


async def test_is_changed_gets_literals_none_for_links_and_hidden_values(sem: Running) -> None:
    prompt = {"1": num(2), "2": {"class_type": "SemChanged", "inputs": {"value": ["1", 0], "literal": 3}}}
    first = await run_prompt(sem, prompt)
    assert first.ui("2") == {"seen": [{"value": None, "literal": 3, "uid": "2", "prompt_nodes": ["1", "2"]}]}
    again = await run_prompt(sem, prompt)
    assert "2" in again.of("execution_cached")[0]["nodes"] and again.executing() == []


async def test_list_items_may_expand_or_not_and_merge_in_order(sem: Running) -> None:
    prompt = {
        "1": {"class_type": "SemList", "inputs": {"count": 4}},
        "2": {"class_type": "SemMaybeExpand", "inputs": {"x": ["1", 0]}},
        "3": {"class_type": "SemCollect", "inputs": {"values": ["2", 0]}},
    }
    done = await run_prompt(sem, prompt)
    assert done.ui("3") == {"values": [101, 2, 103, 4]}
    spliced = [n for n in done.executing() if n.startswith("2:")]
    assert sorted(spliced) == ["2:0.1", "2:2.1"]


async def test_raw_link_inputs_get_the_link_after_their_source_ran(sem: Running) -> None:
    done = await run_prompt(sem, {"1": num(5), "2": {"class_type": "SemRaw", "inputs": {"src": ["1", 0]}}})
    assert done.ui("2") == {"src": [["1", 0]]}
    assert done.executing() == ["1", "2"]


async def test_hidden_inputs_only_when_given_and_undeclared_links_pass(sem: Running) -> None:
    inputs: dict[str, Any] = {"junk": 1, "more": ["1", 0]}
    prompt = {"1": num(6), "2": {"class_type": "SemHidden", "inputs": inputs}}
    extra = {"extra_pnginfo": {"k": "v"}, "auth_token_comfy_org": "tok"}
    done = await run_prompt(sem, prompt, extra_data=extra)
    assert done.ui("2") == {
        "keys": ["key", "more", "png", "token", "uid"],
        "extra": ["<absent>"],
        "png": [{"k": "v"}],
        "token": ["tok"],
        "key": [None],  # an account field the prompt's extra_data lacks is None, as the reference passes it
    }
    inputs["extra"] = "given"
    done = await run_prompt(sem, prompt)
    assert done.ui("2")["keys"] == ["extra", "key", "more", "png", "token", "uid"] and done.ui("2")["extra"] == [
        "given"
    ]


async def test_dynprompt_describes_prompt_and_expanded_nodes(sem: Running) -> None:
    prompt = {
        "1": num(1),
        "2": {"class_type": "SemDyn", "inputs": {"x": ["1", 0]}},
        "3": {"class_type": "SemDynExpand", "inputs": {"show_as": "1"}},
    }
    done = await run_prompt(sem, prompt)
    own = done.ui("2")
    assert own["node"] == [{"class_type": "SemDyn", "inputs": {"x": ["1", 0]}}]
    assert own["has"] == [True] and own["original"] == ["1", "2", "3"] and own["missing"] == ["NodeNotFoundError"]
    assert own["real"] == ["2"] and own["parent"] == [None] and own["display"] == ["2"]
    inner = done.ui("3:inner")
    assert inner["real"] == ["3"] and inner["parent"] == ["3"] and inner["display"] == ["1"]
    assert "3:inner" in inner["ids"][0:] and inner["original"] == ["1", "2", "3"]
    executed = next(d for d in done.of("executed") if d["node"] == "3:inner")
    assert executed["display_node"] == "1"
    executing = next(d for d in done.of("executing") if d["node"] == "3:inner")
    assert executing["display_node"] == "1"
    meta = done.entry["meta"]
    assert meta["3:inner"] == {"node_id": "3:inner", "display_node": "1", "parent_node": "3", "real_node_id": "3"}
    assert meta["2"] == {"node_id": "2", "display_node": "2", "parent_node": None, "real_node_id": "2"}


async def test_one_node_instance_per_node_id_across_prompts(sem: Running) -> None:
    prompt = {"1": {"class_type": "SemCounter", "inputs": {"tag": "a"}}}
    assert (await run_prompt(sem, prompt)).ui("1") == {"calls": [1]}
    other = {"5": {"class_type": "SemCounter", "inputs": {"tag": "b"}}}
    assert (await run_prompt(sem, other)).ui("5") == {"calls": [1]}
    assert (await run_prompt(sem, prompt)).ui("1") == {"calls": [2]}


async def test_cache_lru_zero_keeps_only_the_last_prompt(make_sem_server: Any) -> None:
    a = {"1": num(1), "2": show(["1", 0])}
    b = {"1": num(2), "2": show(["1", 0])}
    classic = await make_sem_server(OutputCache(classic=True))
    lru = await make_sem_server()
    for server, kept in ((classic, False), (lru, True)):
        await run_prompt(server, a)
        await run_prompt(server, b)
        again = await run_prompt(server, a)
        assert ("2" in again.of("execution_cached")[0]["nodes"]) is kept
        assert (again.executing() == []) is kept


async def test_save_image_truncates_like_the_reference(sem: Running) -> None:
    prompt = {
        "1": {"class_type": "SemGray", "inputs": {"level": 0.5, "sizes": "1"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "trunc"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    done = await run_prompt(sem, prompt)
    for node in ("2", "3"):
        image = done.ui(node)["images"][0]
        async with sem.http.get(sem.url + "/view", params=image) as r:
            pixels = Image.open(io.BytesIO(await r.read())).convert("RGB")
        assert pixels.getpixel((0, 0)) == (127, 127, 127), node


async def test_rebatch_images_and_latents(sem: Running) -> None:
    prompt = {
        "1": {"class_type": "SemGray", "inputs": {"level": 0.2, "sizes": "2,1,2"}},
        "2": {"class_type": "RebatchImages", "inputs": {"images": ["1", 0], "batch_size": 2}},
        "3": {"class_type": "SemCollect", "inputs": {"values": ["2", 0]}},
        "4": {"class_type": "SemLatents", "inputs": {"sizes": "1,3"}},
        "5": {"class_type": "RebatchLatents", "inputs": {"latents": ["4", 0], "batch_size": 3}},
        "6": {"class_type": "SemLatentShapes", "inputs": {"latents": ["5", 0]}},
    }
    done = await run_prompt(sem, prompt)
    assert done.ui("3") == {"values": [[2, 4, 4, 3], [2, 4, 4, 3], [1, 4, 4, 3]]}
    assert done.ui("6") == {"shapes": [[3, 4, 2, 2], [1, 4, 2, 2]], "masks": [[3, 1, 2, 2], None]}
    status, body = await sem.post_prompt(
        {**prompt, "5": {**prompt["5"], "inputs": {"latents": ["4", 0], "batch_size": 0}}}
    )
    assert status == 200 and body["node_errors"]["5"]["errors"][0]["type"] == "value_smaller_than_min"
    assert body["node_errors"]["5"]["dependent_outputs"] == ["6"]
