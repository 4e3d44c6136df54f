"""Output files from a worker's folders into the server's, numbered as the server numbers its own, each written
once even when a cached output node reports it again."""

from __future__ import annotations

from pathlib import Path

from engine.folders import Folders
from nodes.files import OutputWriter
from scaleout.transfer import OutputReceiver, collect_files


def folders(root: Path) -> Folders:
    f = Folders.under(root)
    f.ensure()
    return f


def test_worker_files_land_in_the_server_folder_without_clobbering(tmp_path: Path) -> None:
    worker, server = folders(tmp_path / "worker"), folders(tmp_path / "server")
    ref = OutputWriter(worker.output, "output", "sub/pic").write(b"worker-bytes", "png")
    (server.output / "sub").mkdir()
    (server.output / "sub" / "pic_00001_.png").write_bytes(b"server's own")
    ui = {"images": [ref], "text": ["kept"]}
    files = collect_files(ui, worker)
    assert [f.data for f in files] == [b"worker-bytes"]

    receiver = OutputReceiver(server)
    receiver.receive("w0", files)
    mapped = receiver.rewrite("w0", ui)
    (image,) = mapped["images"]
    assert image == {"filename": "pic_00002_.png", "subfolder": "sub", "type": "output"}
    assert (server.output / "sub" / "pic_00002_.png").read_bytes() == b"worker-bytes"
    assert (server.output / "sub" / "pic_00001_.png").read_bytes() == b"server's own"
    assert mapped["text"] == ["kept"]

    receiver.receive("w0", collect_files(ui, worker))  # a cached output node reports the same file again
    assert receiver.rewrite("w0", ui) == mapped
    assert sorted(p.name for p in (server.output / "sub").iterdir()) == ["pic_00001_.png", "pic_00002_.png"]


def test_files_outside_the_worker_folders_are_not_sent(tmp_path: Path) -> None:
    worker = folders(tmp_path / "worker")
    (tmp_path / "secret.txt").write_text("no")
    ui = {"images": [{"filename": "../../secret.txt", "subfolder": "", "type": "output"}]}
    assert collect_files(ui, worker) == []
