"""`folder_paths` answers from Loom's folders: model lists, full paths, directories and the save-path helper."""

from __future__ import annotations

from pathlib import Path

import pytest

import compat
from engine.folders import UnsafePath


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_model_lists_and_full_paths(host: compat.Host) -> None:
    import folder_paths

    loras = host.folders.model_dirs("loras")[0]
    touch(loras / "style.safetensors")
    touch(loras / "sub" / "detail.pt")
    touch(loras / "readme.txt")
    assert folder_paths.get_folder_paths("loras") == [str(loras)]
    assert folder_paths.get_filename_list("loras") == ["style.safetensors", "sub/detail.pt"]
    assert folder_paths.get_full_path("loras", "sub/detail.pt") == str(loras / "sub" / "detail.pt")
    assert folder_paths.get_full_path("loras", "missing.safetensors") is None
    assert folder_paths.get_full_path("loras", "../../etc/passwd") is None
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        folder_paths.get_full_path_or_raise("loras", "missing.safetensors")
    assert folder_paths.get_filename_list("no_such_folder") == []
    assert folder_paths.models_dir == str(loras.parent)
    assert ".safetensors" in folder_paths.supported_pt_extensions


def test_added_folders_and_the_folder_table(host: compat.Host, tmp_path: Path) -> None:
    import folder_paths

    extra = tmp_path / "more_loras"
    touch(extra / "extra.safetensors")
    folder_paths.add_model_folder_path("loras", str(extra))
    assert folder_paths.get_filename_list("loras") == ["extra.safetensors"]
    assert str(extra) in folder_paths.get_folder_paths("loras")

    ipadapter = tmp_path / "ipadapter"
    touch(ipadapter / "a.bin")
    touch(ipadapter / "b.json")
    table = folder_paths.folder_names_and_paths
    table["ipadapter"] = ([str(ipadapter)], {".json"})
    assert folder_paths.get_filename_list("ipadapter") == ["b.json"]
    paths, extensions = folder_paths.folder_names_and_paths["ipadapter"]
    assert paths == [str(ipadapter)] and extensions == {".json"}
    assert "checkpoints" in table and "ipadapter" in list(table)
    with pytest.raises(KeyError):
        table["never_declared"]


def test_directories_and_annotated_names(host: compat.Host) -> None:
    import folder_paths

    folders = host.folders
    assert folder_paths.get_input_directory() == str(folders.input)
    assert folder_paths.get_output_directory() == str(folders.output)
    assert folder_paths.get_temp_directory() == str(folders.temp)
    assert folder_paths.output_directory == str(folders.output)
    assert folder_paths.get_annotated_filepath("cat.png") == str(folders.input / "cat.png")
    assert folder_paths.get_annotated_filepath("cat.png [output]") == str(folders.output / "cat.png")
    assert folder_paths.get_annotated_filepath("cat.png [temp]") == str(folders.temp / "cat.png")
    assert not folder_paths.exists_annotated_filepath("cat.png [output]")
    touch(folders.output / "cat.png")
    assert folder_paths.exists_annotated_filepath("cat.png [output]")
    with pytest.raises(UnsafePath):
        folder_paths.get_annotated_filepath("../secret.png")
    assert not folder_paths.exists_annotated_filepath("../../secret.png")
    assert folder_paths.filter_files_extensions(["b.PNG", "a.txt", "c.png"], [".png"]) == ["b.PNG", "c.png"]


def test_save_image_path_counts_up_and_stays_in_the_output_folder(host: compat.Host) -> None:
    import folder_paths

    output = str(host.folders.output)
    folder, name, counter, subfolder, prefix = folder_paths.get_save_image_path(
        "runs/img_%width%x%height%", output, 64, 32
    )
    assert (folder, name, counter, subfolder, prefix) == (
        str(host.folders.output / "runs"),
        "img_64x32",
        1,
        "runs",
        "runs/img_64x32",
    )
    touch(Path(folder) / "img_64x32_00001_.png")
    touch(Path(folder) / "img_64x32_00007_.png")
    touch(Path(folder) / "other_00099_.png")
    assert folder_paths.get_save_image_path("runs/img_%width%x%height%", output, 64, 32)[2] == 8
    with pytest.raises(UnsafePath):
        folder_paths.get_save_image_path("../escape/img", output)


def test_unknown_attribute_names_itself(host: compat.Host) -> None:
    import folder_paths

    with pytest.raises(AttributeError, match=r"does not provide folder_paths\.get_system_user_directory"):
        folder_paths.get_system_user_directory  # noqa: B018
