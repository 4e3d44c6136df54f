"""Users, settings and user data through a real server: shapes, conflicts, traversal, multi-user, token mode."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.server.conftest import Running


def enc(path: str) -> str:
    return quote(path, safe="")


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_users_single_user(server: Running, prefix: str) -> None:
    async with server.http.get(f"{server.url}{prefix}/users") as r:
        assert r.status == 200
        assert await r.json() == {"storage": "server", "migrated": True}
    async with server.http.post(f"{server.url}{prefix}/users", json={"username": "ann"}) as r:
        assert r.status == 400
        assert "--multi-user" in (await r.json())["error"]["message"]


async def test_settings_roundtrip_and_merge(server: Running) -> None:
    async with server.http.get(server.url + "/api/settings") as r:
        assert await r.json() == {}
    async with server.http.post(server.url + "/api/settings", json={"Comfy.A": 1, "Comfy.B": "x"}) as r:
        assert r.status == 200
    async with server.http.post(server.url + "/api/settings/" + enc("Comfy.B"), data=json.dumps([1, 2])) as r:
        assert r.status == 200
    async with server.http.post(server.url + "/settings", json={"Comfy.C": True}) as r:
        assert r.status == 200
    async with server.http.get(server.url + "/settings") as r:
        assert await r.json() == {"Comfy.A": 1, "Comfy.B": [1, 2], "Comfy.C": True}
    async with server.http.get(server.url + "/settings/Comfy.B") as r:
        assert await r.json() == [1, 2]
    async with server.http.get(server.url + "/settings/Comfy.Missing") as r:
        assert r.status == 200 and await r.json() is None
    stored = server.tmp / "user" / "default" / "comfy.settings.json"
    assert json.loads(stored.read_text())["Comfy.A"] == 1
    assert not list(stored.parent.glob(".tmp-*"))  # written through a temporary file, none left behind


async def test_settings_bad_bodies(server: Running) -> None:
    async with server.http.post(server.url + "/settings", data="[1, 2]") as r:
        assert r.status == 400 and "object" in (await r.json())["error"]["message"]
    async with server.http.post(server.url + "/settings/x", data="{not json") as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]["message"]


async def test_userdata_write_read_list_move_delete(server: Running) -> None:
    url = server.url + "/api/userdata"
    body = json.dumps({"nodes": []})
    async with server.http.post(f"{url}/{enc('workflows/a.json')}?overwrite=false&full_info=true", data=body) as r:
        assert r.status == 200
        info = await r.json()
        assert info["path"] == "workflows/a.json" and info["size"] == len(body) and info["modified"] > 0
    async with server.http.post(f"{url}/{enc('workflows/a.json')}?overwrite=false", data="{}") as r:
        assert r.status == 409
        assert (await r.json())["error"]["type"] == "file_exists"
    async with server.http.post(f"{url}/{enc('workflows/sub/b.json')}", data="{}") as r:
        assert r.status == 200 and await r.json() == "workflows/sub/b.json"
    async with server.http.get(f"{url}/{enc('workflows/a.json')}") as r:
        assert r.status == 200 and await r.text() == body
    async with server.http.get(f"{url}?dir=workflows&recurse=true&full_info=true") as r:
        listing = await r.json()
        assert [e["path"] for e in listing] == ["a.json", "sub/b.json"]
        assert {"path", "size", "modified", "created"} == set(listing[0])
        # epoch milliseconds, as the reference answers (the stock front end shows and sorts by them)
        assert listing[0]["modified"] > 10**12 and isinstance(listing[0]["modified"], int)
    async with server.http.get(f"{url}?dir=workflows") as r:
        assert await r.json() == ["a.json"]
    async with server.http.get(f"{url}?dir=workflows&recurse=true&split=true") as r:
        assert await r.json() == [["a.json", "a.json"], ["sub/b.json", "sub", "b.json"]]
    move = f"{url}/{enc('workflows/a.json')}/move/"
    async with server.http.post(f"{move}{enc('workflows/sub/b.json')}?overwrite=false") as r:
        assert r.status == 409
    async with server.http.post(f"{move}{enc('workflows/c.json')}?full_info=true") as r:
        assert r.status == 200 and (await r.json())["path"] == "workflows/c.json"
    async with server.http.get(f"{url}/{enc('workflows/a.json')}") as r:
        assert r.status == 404
    async with server.http.delete(f"{url}/{enc('workflows/c.json')}") as r:
        assert r.status == 204
    async with server.http.delete(f"{url}/{enc('workflows/c.json')}") as r:
        assert r.status == 404 and (await r.json())["error"]["type"] == "not_found"


async def test_userdata_v2_lists_one_folder(server: Running) -> None:
    await server.http.post(f"{server.url}/userdata/{enc('workflows/a.json')}", data="{}")
    await server.http.post(f"{server.url}/userdata/{enc('notes.txt')}", data="hi")
    async with server.http.get(server.url + "/api/v2/userdata") as r:
        entries = await r.json()
    assert [(e["name"], e["type"]) for e in entries] == [("workflows", "directory"), ("notes.txt", "file")]
    assert entries[1]["path"] == "notes.txt" and entries[1]["size"] == 2
    async with server.http.get(server.url + "/v2/userdata?path=workflows") as r:
        assert [e["path"] for e in await r.json()] == ["workflows/a.json"]
    async with server.http.get(server.url + "/v2/userdata?path=nope") as r:
        assert r.status == 404
    async with server.http.get(server.url + "/v2/userdata?path=notes.txt") as r:
        assert r.status == 400


async def test_userdata_listing_errors(server: Running) -> None:
    async with server.http.get(server.url + "/userdata") as r:
        assert r.status == 400 and "'dir'" in (await r.json())["error"]["message"]
    async with server.http.get(server.url + "/userdata?dir=missing") as r:
        assert r.status == 404


async def test_a_new_user_has_no_folders_yet(server: Running) -> None:
    """Before anything was saved: the workflows listing is a 404 (the reference's answer, which front ends read
    as "nothing saved"), and the user folder itself lists as empty rather than missing."""
    assert not (server.tmp / "user" / "default").exists()
    async with server.http.get(server.url + "/api/userdata?dir=workflows&recurse=true&full_info=true") as r:
        assert r.status == 404 and (await r.json())["error"]["type"] == "not_found"
    async with server.http.get(server.url + "/api/v2/userdata") as r:
        assert r.status == 200 and await r.json() == []
    async with server.http.get(server.url + "/api/v2/userdata?path=workflows") as r:
        assert r.status == 404


@pytest.mark.parametrize("bad", ["../loom.db", "../../etc/passwd", "/etc/passwd", "a/../../x", "x\x00y", "a/..", "/"])
async def test_userdata_traversal_refused(server: Running, bad: str) -> None:
    (server.tmp / "user" / "secret.json").write_text("{}")
    for method, path in (
        ("GET", f"/userdata/{enc(bad)}"),
        ("POST", f"/userdata/{enc(bad)}"),
        ("DELETE", f"/userdata/{enc(bad)}"),
        ("GET", f"/userdata?dir={enc(bad)}"),
        ("GET", f"/v2/userdata?path={enc(bad)}"),
    ):
        async with server.http.request(method, server.url + path, data="{}") as r:
            assert r.status in (400, 404), (method, path, r.status)
            assert "error" in await r.json()
    async with server.http.post(f"{server.url}/userdata/{enc('ok.json')}", data="{}") as r:
        assert r.status == 200
    async with server.http.post(f"{server.url}/userdata/{enc('ok.json')}/move/{enc('../secret.json')}") as r:
        assert r.status == 400
    assert (server.tmp / "user" / "secret.json").read_text() == "{}"
    assert (server.tmp / "user" / "default" / "ok.json").is_file()


async def test_userdata_symlink_out_refused(server: Running) -> None:
    outside = server.tmp / "outside"
    outside.mkdir()
    user_dir = server.tmp / "user" / "default"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "link").symlink_to(outside, target_is_directory=True)
    async with server.http.post(f"{server.url}/userdata/{enc('link/x.json')}", data="{}") as r:
        assert r.status == 400
    assert not (outside / "x.json").exists()


async def test_multi_user(make_server) -> None:
    srv = await make_server(multi_user=True)
    async with srv.http.post(srv.url + "/users", json={"username": "ann"}) as r:
        assert r.status == 200
        ann = await r.json()
    async with srv.http.post(srv.url + "/users", json={"username": "ann"}) as r:
        assert r.status == 400
    async with srv.http.post(srv.url + "/users", json={"username": "  "}) as r:
        assert r.status == 400
    async with srv.http.get(srv.url + "/users") as r:
        assert await r.json() == {"storage": "server", "users": {ann: "ann"}}
    async with srv.http.post(srv.url + "/settings", json={"k": 1}, headers={"Comfy-User": ann}) as r:
        assert r.status == 200
    async with srv.http.get(srv.url + "/settings", headers={"Comfy-User": ann}) as r:
        assert await r.json() == {"k": 1}
    async with srv.http.get(srv.url + "/settings") as r:  # the default user's settings are separate
        assert await r.json() == {}
    async with srv.http.get(srv.url + "/settings", headers={"Comfy-User": "../default"}) as r:
        assert r.status == 400 and (await r.json())["error"]["type"] == "unknown_user"
    assert json.loads((srv.tmp / "user" / ann / "comfy.settings.json").read_text()) == {"k": 1}


async def test_token_and_origin_rules_apply(make_server) -> None:
    srv = await make_server(auth_token="s3cret")
    for method, path in (("GET", "/settings"), ("POST", "/userdata/a.json"), ("GET", "/api/users"),
                         ("GET", "/userdata?dir=workflows"), ("DELETE", "/userdata/a.json")):  # fmt: skip
        async with srv.http.request(method, srv.url + path, data="{}") as r:
            assert r.status == 401, path
    bearer = {"Authorization": "Bearer s3cret"}
    async with srv.http.post(srv.url + "/userdata/a.json", data="{}", headers=bearer) as r:
        assert r.status == 200
    cross = {**bearer, "Origin": "http://evil.example"}
    async with srv.http.post(srv.url + "/settings", json={"a": 1}, headers=cross) as r:
        assert r.status == 403
    async with srv.http.delete(srv.url + "/userdata/a.json", headers=cross) as r:
        assert r.status == 403
    async with srv.http.get(srv.url + "/settings", headers=bearer) as r:
        assert await r.json() == {}


async def test_stored_files_never_run_as_pages(server: Running) -> None:
    page = "<script>fetch('/prompt', {method: 'POST'})</script>"
    async with server.http.post(f"{server.url}/userdata/{enc('evil.html')}", data=page) as r:
        assert r.status == 200
    async with server.http.get(f"{server.url}/api/userdata/{enc('evil.html')}") as r:
        assert r.status == 200 and await r.text() == page
        assert "sandbox" in r.headers["Content-Security-Policy"] and r.headers["X-Content-Type-Options"] == "nosniff"
