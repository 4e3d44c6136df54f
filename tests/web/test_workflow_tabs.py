"""Tabs for several open workflows (issue 19): each tab keeps its own graph, undo history, view and unsaved mark;
examples and saved workflows open in tabs; closing an unsaved tab asks; the tabs come back after a reload."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.polling import wait_for
from tests.web.test_canvas import make_fast, new_seed

T = TypeVar("T")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def tabs(canvas) -> list[str]:
    return canvas.page.locator(".workflow-tab .title").all_inner_texts()


def active(canvas) -> str:
    return canvas.page.locator(".workflow-tab.active .title").inner_text()


def settled(read: Callable[[], T], expected: T, timeout: float = 15) -> None:
    """The canvas answers some clicks after a round trip (a stored workflow fetched, a dialog answered): poll for
    the expected state, then assert it so that a failure shows the last one seen."""
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: read() == expected, timeout, interval=0.05)
    assert read() == expected


def edit(canvas, body: str, arg: object = None) -> None:
    """Edits the graph in the page and records the edit as the canvas does after a gesture."""
    canvas.js(body + "; app.state.changed();", arg)


def sampler_title(canvas) -> str:
    return canvas.js("return app.graph._nodes.find(n => n.type === 'KSampler').title;")


def test_each_tab_keeps_its_workflow_history_view_and_mark(canvas) -> None:
    page = canvas.page
    settled(lambda: tabs(canvas), ["Unsaved workflow"])
    edit(canvas, "app.graph._nodes.find(n => n.type === 'KSampler').title = 'Tab one sampler'")
    settled(lambda: tabs(canvas), ["Unsaved workflow •"])

    # An example opens in a tab of its own; the edited workflow waits in the first one.
    page.click("#examples-button")
    page.locator('.loom-examples [data-example="txt2img"]').click()
    page.wait_for_function("() => document.querySelectorAll('.workflow-tab').length === 2")
    example = active(canvas)
    assert example != "Unsaved workflow" and "•" not in example
    page.keyboard.press("Escape")
    if page.locator(".loom-missing-models button.dismiss").is_visible():
        page.locator(".loom-missing-models button.dismiss").click()
    example_nodes = len(canvas.nodes())
    canvas.js("app.canvas.ds.scale = 0.8; app.canvas.ds.offset = [12, 34]; app.canvas.setDirty(true, true);")
    edit(canvas, "app.graph.remove(app.graph._nodes.find(n => n.type === 'SaveImage'))")
    assert len(canvas.nodes()) == example_nodes - 1
    settled(lambda: tabs(canvas)[1], f"{example} •")
    canvas.shot("two-tabs")

    # Back to the first tab: its graph, and its own undo history.
    page.locator(".workflow-tab .title").first.click()
    settled(lambda: active(canvas), "Unsaved workflow •")
    assert sampler_title(canvas) == "Tab one sampler"
    canvas.js("app.state.undo.undo();")
    assert sampler_title(canvas) == "KSampler"
    canvas.js("app.state.undo.redo();")
    assert sampler_title(canvas) == "Tab one sampler"

    # And to the second: the deletion is still undoable there, the view is where it was left.
    page.locator(".workflow-tab .title").nth(1).click()
    assert len(canvas.nodes()) == example_nodes - 1
    assert canvas.js("return [app.canvas.ds.scale, [...app.canvas.ds.offset]];") == [0.8, [12, 34]]
    canvas.js("app.state.undo.undo();")
    assert len(canvas.nodes()) == example_nodes

    # Closing a tab with unsaved changes asks; dismissed, the tab stays; accepted, it goes.
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.locator(".workflow-tab.active .close").click()
    assert len(asked) == 1 and example in asked[0]
    assert len(tabs(canvas)) == 2
    page.once("dialog", lambda d: d.accept())
    page.locator(".workflow-tab.active .close").click()
    settled(lambda: tabs(canvas), ["Unsaved workflow •"])
    assert sampler_title(canvas) == "Tab one sampler"


def test_tabs_and_saved_workflows_survive_a_reload(open_canvas, own_server) -> None:
    own_server.start()  # a user folder of its own: nothing saved yet, so the workflows folder does not exist
    canvas = open_canvas(own_server.url)
    page = canvas.page
    page.click("#tab-workflows")
    page.locator(".workflow-list li.empty").wait_for()

    edit(canvas, "app.graph._nodes.find(n => n.type === 'KSampler').title = 'Alpha sampler'")
    page.fill(".workflow-name", "alpha")
    page.click(".workflows-panel button.save")
    page.locator('.workflow-list li[data-workflow="alpha"]').wait_for()
    settled(lambda: tabs(canvas), ["alpha"])

    page.click(".workflow-tabs .new-tab")
    settled(lambda: tabs(canvas), ["alpha", "Unsaved workflow"])
    assert sampler_title(canvas) == "KSampler"
    edit(canvas, "app.graph._nodes.find(n => n.type === 'KSampler').title = 'Beta sampler'")
    assert page.locator(".workflows-panel .current").inner_text() == "Unsaved workflow"

    # A saved workflow that is open already: its tab is shown, not a second copy.
    page.locator('.workflow-list li[data-workflow="alpha"] button.name').click()
    settled(lambda: (tabs(canvas), active(canvas)), (["alpha", "Unsaved workflow •"], "alpha"))
    assert sampler_title(canvas) == "Alpha sampler"
    assert page.locator(".workflows-panel .current").inner_text() == "alpha"
    canvas.shot("saved-and-unsaved")

    page.wait_for_timeout(500)  # the tabs are stored once edits pause
    page.reload()
    page.wait_for_function("() => window.loom && window.loom.app.timings.ready")
    settled(lambda: (tabs(canvas), active(canvas)), (["alpha", "Unsaved workflow •"], "alpha"))
    assert sampler_title(canvas) == "Alpha sampler"
    page.locator(".workflow-tab .title").nth(1).click()
    assert sampler_title(canvas) == "Beta sampler"

    # A closed saved workflow opens again from the list, in a new tab, as it was saved.
    page.locator(".workflow-tab .close").first.click()
    settled(lambda: tabs(canvas), ["Unsaved workflow •"])
    page.click("#tab-workflows")
    page.locator('.workflow-list li[data-workflow="alpha"] button.name').click()
    page.wait_for_function("() => document.querySelectorAll('.workflow-tab').length === 2")
    settled(lambda: (active(canvas), sampler_title(canvas)), ("alpha", "Alpha sampler"))
    canvas.shot("reopened")

    # Saving another tab under the same name: the file holds that one now, the old tab is an unsaved copy.
    page.locator(".workflow-tab .title").first.click()
    page.fill(".workflow-name", "alpha")
    page.click(".workflows-panel button.save")
    page.wait_for_function("() => document.querySelector('.workflow-tab.active .title').textContent === 'alpha'")
    settled(lambda: tabs(canvas), ["alpha", "alpha •"])
    assert canvas.errors == []


@pytest.mark.parametrize("closed", [False, True], ids=["switched", "closed"])
def test_a_job_shows_on_the_tab_it_was_queued_from(canvas, closed: bool) -> None:
    page = canvas.page
    make_fast(canvas)
    new_seed(canvas)
    gallery = page.locator(".gallery-grid img")
    before = gallery.count()
    queued = canvas.js("return app.queue();")
    assert len(queued) == 1
    page.click(".workflow-tabs .new-tab")  # the job runs on while another workflow is shown
    settled(lambda: (len(tabs(canvas)), active(canvas)), (2, "Unsaved workflow"))
    if closed:  # ... or after the tab it came from was closed
        page.once("dialog", lambda d: d.accept())
        page.locator(".workflow-tab .close").first.click()
        settled(lambda: tabs(canvas), ["Unsaved workflow"])
    page.wait_for_function(
        "(id) => fetch('/api/history/' + id).then(r => r.json()).then(h => !!h[id])", arg=queued[0], timeout=120_000
    )
    canvas.wait_idle()
    shown = canvas.js("return app.graph._nodes.filter(n => n.loom?.imageUrls.length || n.loom?.preview).length;")
    assert shown == 0
    assert active(canvas) == "Unsaved workflow"  # its previews did not resize a node here either
    assert canvas.js("return app.graph._nodes.every(n => n.loomRunTime === undefined);")
    assert gallery.count() > before  # its images reach the gallery all the same
