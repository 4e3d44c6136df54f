"""A static front end from another folder: its index at `/`, and its own extensions/ shims for packs that import
them, never a file outside."""

from __future__ import annotations

from pathlib import Path

from tests.server.conftest import Running


async def test_served_front_end_and_its_extension_shims(make_server, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "extensions" / "core").mkdir(parents=True)
    (site / "index.html").write_text("<html>stock</html>")
    (site / "extensions" / "core" / "groupNode.js").write_text("export const x = 1;")
    (tmp_path / "secret.js").write_text("secret")
    srv: Running = await make_server(web_root=site)
    async with srv.http.get(srv.url + "/") as r:
        assert "stock" in await r.text()
    async with srv.http.get(srv.url + "/extensions/core/groupNode.js") as r:
        assert r.status == 200 and "export" in await r.text()
    for path in (
        "/extensions/core/missing.js",
        "/extensions/..%2F..%2Fsecret.js",
        "/extensions/core/..%2F..%2F..%2Fsecret.js",
    ):
        async with srv.http.get(srv.url + path) as r:
            assert r.status == 404, path
