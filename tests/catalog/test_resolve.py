"""The name rules, in their order, on the names real shared workflows carry."""

from __future__ import annotations

import pytest

from catalog.resolve import AmbiguousModelName, Resolved, resolve_model_name

CHOICES = [
    "sdxl/sd_xl_base_1.0.safetensors",
    "sd15/dreamshaper_8.safetensors",
    "4x-UltraSharp.pth",
    "v1-5-pruned-emaonly.safetensors",
]


def test_exact_name_is_kept() -> None:
    found = resolve_model_name("4x-UltraSharp.pth", CHOICES)
    assert found == Resolved("4x-UltraSharp.pth", "4x-UltraSharp.pth", "exact")


def test_windows_separators_and_case_of_folders() -> None:
    found = resolve_model_name("SDXL\\sd_xl_base_1.0.safetensors", CHOICES)
    assert found == Resolved("SDXL\\sd_xl_base_1.0.safetensors", "sdxl/sd_xl_base_1.0.safetensors", "separators")
    assert resolve_model_name("sd15\\dreamshaper_8.safetensors", CHOICES).rule == "separators"


def test_same_file_name_in_another_subfolder() -> None:
    found = resolve_model_name("checkpoints_old/dreamshaper_8.safetensors", CHOICES)
    assert found == Resolved("checkpoints_old/dreamshaper_8.safetensors", "sd15/dreamshaper_8.safetensors", "subfolder")
    assert resolve_model_name("sd_xl_base_1.0.safetensors", CHOICES).name == "sdxl/sd_xl_base_1.0.safetensors"


def test_name_without_extension() -> None:
    assert resolve_model_name("4x-UltraSharp", CHOICES) == Resolved("4x-UltraSharp", "4x-UltraSharp.pth", "extension")
    assert resolve_model_name("dreamshaper_8", CHOICES).name == "sd15/dreamshaper_8.safetensors"


def test_two_different_files_with_one_name_are_an_error_listing_both() -> None:
    choices = ["a/model.safetensors", "b/model.safetensors"]
    with pytest.raises(AmbiguousModelName) as err:
        resolve_model_name("c/model.safetensors", choices)
    assert err.value.candidates == choices
    assert "a/model.safetensors" in str(err.value) and "b/model.safetensors" in str(err.value)


def test_hash_singles_out_one_of_several_name_matches() -> None:
    choices = ["a/model.safetensors", "b/model.safetensors"]
    index = {"abcdef012345": ["b/model.safetensors"]}
    found = resolve_model_name(
        "model.safetensors", choices, hashes={"model.safetensors": "abcdef012345"}, by_hash=lambda d: index.get(d, [])
    )
    assert found == Resolved("model.safetensors", "b/model.safetensors", "hash")


def test_renamed_file_found_by_hash_only() -> None:
    seen: list[str] = []

    def by_hash(digest: str) -> list[str]:
        seen.append(digest)
        return ["v1-5-pruned-emaonly.safetensors", "not-offered.safetensors"]

    found = resolve_model_name(
        "my favourite.safetensors", CHOICES, hashes={"my favourite.safetensors": "cc6cb27103"}, by_hash=by_hash
    )
    assert found == Resolved("my favourite.safetensors", "v1-5-pruned-emaonly.safetensors", "hash")
    assert seen == ["cc6cb27103"]


def test_nothing_is_guessed_by_similarity() -> None:
    assert resolve_model_name("dreamshaper_7.safetensors", CHOICES) is None
    assert resolve_model_name("sd_xl_base_1.0_0.9vae.safetensors", CHOICES) is None
    assert (
        resolve_model_name(
            "missing.safetensors", CHOICES, hashes={"missing.safetensors": "0" * 64}, by_hash=lambda d: []
        )
        is None
    )
