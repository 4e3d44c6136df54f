"""Model hashes as workflow files and images from other tools record them."""

from __future__ import annotations

from formats.model_hashes import hashes_from_canvas, hashes_from_parameters

SHA = "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b"


def test_canvas_node_and_top_level_model_entries() -> None:
    canvas = {
        "nodes": [
            {
                "id": 4,
                "type": "CheckpointLoaderSimple",
                "properties": {
                    "models": [
                        {
                            "name": "sd_xl_base_1.0.safetensors",
                            "hash": SHA.upper(),
                            "hash_type": "SHA256",
                            "directory": "checkpoints",
                        }
                    ]
                },
            },
            {"id": 5, "type": "LoraLoader", "properties": {"models": [{"name": "no-hash.safetensors"}]}},
        ],
        "models": [
            {"name": "4x-UltraSharp.pth", "hash": "abcdef0123", "hash_type": "autov2"},
            {"name": "weird.pth", "hash": "not hex"},
        ],
        "definitions": {"subgraphs": [{"nodes": [{"properties": {"models": [{"name": "in-sub.pt", "hash": SHA}]}}]}]},
    }
    assert hashes_from_canvas(canvas) == {
        "4x-UltraSharp.pth": "abcdef0123",
        "sd_xl_base_1.0.safetensors": SHA,
        "in-sub.pt": SHA,
    }


def test_a1111_parameters_with_model_lora_and_civitai_hashes() -> None:
    text = (
        "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
        'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "detail: 0123456789, style_v2: abcdefabcd", '
        'TI hashes: "badhand: 1111111111", Hashes: {"vae": "2222222222", "model": "6ce0161689", "lora:extra": '
        '"3333333333"}'
    )
    assert hashes_from_parameters(text) == {
        "v1-5-pruned-emaonly": "6ce0161689",
        "detail": "0123456789",
        "style_v2": "abcdefabcd",
        "badhand": "1111111111",
        "vae": "2222222222",
        "extra": "3333333333",
    }
    assert hashes_from_parameters("no hashes here") == {}
