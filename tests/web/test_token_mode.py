"""The canvas served with --auth-token: opened once at /?token=..., its assets, API calls, socket and images all
work through the cookie that answer set."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.web.conftest import ServerProcess, free_port
from tests.web.test_canvas import make_fast

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "tok-3f9a1c"


def test_canvas_opens_with_a_token_and_runs_a_workflow(open_canvas, tmp_path) -> None:
    base = tmp_path / "loom-base"
    base.mkdir()
    server = ServerProcess(base, free_port(), token=TOKEN)
    try:
        server.start()
        with pytest.raises(urllib.error.HTTPError) as refused:  # without the token nothing is served
            urllib.request.urlopen(server.url + "/")
        assert refused.value.code == 401

        canvas = open_canvas(server.url, f"/?token={TOKEN}")
        canvas.page.wait_for_selector(".status.open")  # the socket connected with the cookie
        canvas.shot("loaded-with-token")
        save = next(n["id"] for n in canvas.nodes() if n["type"] == "SaveImage")
        make_fast(canvas)
        canvas.page.click("#queue-button")
        urls = canvas.wait_for_images(save)
        canvas.wait_idle()
        canvas.shot("image-shown")
        shown = canvas.page.evaluate(
            "(url) => fetch(url).then(r => r.status)", urls[0]
        )  # the page's own image request, cookie only
        assert shown == 200
        assert canvas.errors == []
    finally:
        server.stop()
