from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError
from diffusion.clip_vision import CLIPVisionOutput
from diffusion.flow import joint_attention_bias
from diffusion.style_models import apply_style, load_style_model
from diffusion.tiny_dit import redux_file_state
from tests.diffusion.tiny_image_models import tiny_t2i_style
from tests.diffusion.tiny_sampling import sample_latent


def _output(seed: int = 0, width: int = 32, images: int = 1) -> CLIPVisionOutput:
    hidden = torch.randn(images, 5, width, generator=torch.Generator().manual_seed(seed))
    return CLIPVisionOutput(torch.zeros(images, 24), hidden, hidden * 0.5)


def _layer_norm(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], 1e-5)


def _t2i_by_hand(sd: dict[str, torch.Tensor], hidden: torch.Tensor, heads: int = 8) -> torch.Tensor:
    """The style adapter written out: style tokens after the image tokens, pre-norm attention and QuickGELU MLP
    blocks, the style tokens' final norm and projection."""
    tokens = sd["style_embedding"].shape[1]
    x = _layer_norm(torch.cat([hidden, sd["style_embedding"]], dim=1), sd, "ln_pre")
    for i in range(2):
        p = f"transformer_layes.{i}."
        h = _layer_norm(x, sd, f"{p}ln_1")
        q, k, v = (h @ sd[f"{p}attn.in_proj_weight"].t() + sd[f"{p}attn.in_proj_bias"]).chunk(3, dim=-1)
        split = [t.reshape(1, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v)]
        weights = torch.softmax(split[0] @ split[1].transpose(-1, -2) / math.sqrt(split[0].shape[-1]), dim=-1)
        attended = (weights @ split[2]).transpose(1, 2).reshape(x.shape)
        x = x + attended @ sd[f"{p}attn.out_proj.weight"].t() + sd[f"{p}attn.out_proj.bias"]
        m = _layer_norm(x, sd, f"{p}ln_2") @ sd[f"{p}mlp.c_fc.weight"].t() + sd[f"{p}mlp.c_fc.bias"]
        x = x + (m * torch.sigmoid(1.702 * m)) @ sd[f"{p}mlp.c_proj.weight"].t() + sd[f"{p}mlp.c_proj.bias"]
    return _layer_norm(x[:, -tokens:], sd, "ln_post") @ sd["proj"]


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_t2i_style_adapter_from_its_file_layout(tmp_path: Path, suffix: str) -> None:
    state = tiny_t2i_style(context_dim=16)
    path = tmp_path / f"t2iadapter_style_sd14v1{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    model = load_style_model(path)
    assert (model.kind, model.image_dim, model.context_dim) == ("t2i-style", 32, 16)
    output = _output()
    tokens = model.tokens(output)
    assert tokens.shape == (1, 4, 16)
    assert torch.allclose(tokens, _t2i_by_hand(state, output.last_hidden_state), atol=1e-5)


def test_flux_redux_from_its_file_layout(tmp_path: Path) -> None:
    state = redux_file_state(text_dim=16)
    save_file(state, str(tmp_path / "flux1-redux-dev.safetensors"))
    model = load_style_model(tmp_path / "flux1-redux-dev.safetensors")
    assert (model.kind, model.image_dim, model.context_dim) == ("redux", 32, 16)
    hidden = _output(images=2).last_hidden_state
    expected = F.silu(hidden @ state["redux_up.weight"].t() + state["redux_up.bias"])
    expected = expected @ state["redux_down.weight"].t() + state["redux_down.bias"]
    assert torch.allclose(model.tokens(_output(images=2)), expected, atol=1e-5)
    with pytest.raises(ValueError, match="SigLIP"):
        model.tokens(_output(width=48))


def test_other_files_are_refused(tmp_path: Path) -> None:
    save_file({"lora_unet_x.lora_up.weight": torch.zeros(2, 2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(CheckpointError, match="not a style model"):
        load_style_model(tmp_path / "lora.safetensors")
    state = tiny_t2i_style(context_dim=16)
    state["proj"] = torch.zeros(32, 16, 2)
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_style_model(tmp_path / "broken.safetensors")


def test_apply_appends_scales_or_biases_the_tokens() -> None:
    text = torch.randn(1, 3, 4)
    conditioning = [[text, {"pooled_output": torch.zeros(1, 2)}]]
    tokens = torch.randn(2, 2, 4)  # two images, two tokens each: one prompt of four tokens
    (scaled,) = apply_style(conditioning, tokens, 0.5, "multiply")
    assert scaled[0].shape == (1, 7, 4) and torch.equal(scaled[0][:, :3], text)
    assert torch.equal(scaled[0][:, 3:], tokens.reshape(1, 4, 4) * 0.5)
    assert "attention_bias" not in scaled[1] and "pooled_output" in scaled[1]
    (plain,) = apply_style(conditioning, tokens, 1.0, "attn_bias")
    assert "attention_bias" not in plain[1] and torch.equal(plain[0][:, 3:], tokens.reshape(1, 4, 4))
    (biased,) = apply_style(conditioning, tokens, 2.0, "attn_bias")
    assert torch.equal(biased[0], plain[0])
    assert torch.allclose(biased[1]["attention_bias"], torch.tensor([0.0] * 3 + [math.log(2.0)] * 4))
    (again,) = apply_style([biased], tokens[:1], 1.0, "multiply")
    assert again[1]["attention_bias"].shape == (9,) and not again[1]["attention_bias"][7:].any()
    assert again[1]["attention_bias_group"].tolist() == [0] * 3 + [1] * 4 + [2] * 2  # which application made each
    (off,) = apply_style(conditioning, tokens, 0.0, "attn_bias")
    assert torch.isinf(off[1]["attention_bias"][3:]).all()
    assert "attention_bias" not in conditioning[0][1]
    with pytest.raises(ValueError, match="strength_type"):
        apply_style(conditioning, tokens, 1.0, "add")
    with pytest.raises(ValueError, match="entry 0 is 4 wide"):
        apply_style(conditioning, torch.zeros(1, 2, 8), 1.0, "multiply")


def test_attn_bias_weighs_the_tokens_in_cross_attention(sd1) -> None:
    text = sd1.clip.encode("a cat").cond
    negative = [[sd1.clip.encode("").cond, {}]]
    tokens = torch.randn(1, 3, text.shape[-1], generator=torch.Generator().manual_seed(4))
    positive = [[text, {}]]
    plain = sample_latent(sd1.model, positive, negative)
    once = sample_latent(sd1.model, apply_style(positive, tokens, 1.0, "multiply"), negative)
    assert not torch.allclose(once, plain, atol=1e-4)
    # attending twice as much to each style token is attending to it as if it were there twice
    doubled = sample_latent(sd1.model, apply_style(positive, tokens, 2.0, "attn_bias"), negative)
    twice = apply_style(apply_style(positive, tokens, 1.0, "multiply"), tokens, 1.0, "multiply")
    assert torch.allclose(doubled, sample_latent(sd1.model, twice, negative), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(doubled, once, atol=1e-4)
    # strength 0 shuts the tokens out of the attention: the text alone
    off = sample_latent(sd1.model, apply_style(positive, tokens, 0.0, "attn_bias"), negative)
    assert torch.allclose(off, plain, rtol=1e-4, atol=1e-4)
    assert not any(h for m in sd1.model.unet.modules() for h in m._forward_pre_hooks.values())


# -- attn_bias on FLUX: a mask over the joint [prompt, image] attention ------------------------------------------


def test_joint_attention_bias_biases_later_styles_tokens_for_every_query() -> None:
    a, b = math.log(0.5), math.log(3.0)
    bias = torch.tensor([[[0.0, 0.0, a, a, b]]])
    group = torch.tensor([[0, 0, 1, 1, 2]])
    mask = joint_attention_bias(bias, group, image_tokens=2)
    assert mask.shape == (1, 1, 7, 7)
    prompt_row, first_style_row, later_style_row = [0, 0, a, a, b], [0, 0, 0, 0, b], [0.0] * 5
    expected = [prompt_row] * 2 + [first_style_row] * 2 + [later_style_row] + [prompt_row] * 2
    assert torch.allclose(mask[0, 0, :, :5], torch.tensor(expected))
    assert not mask[..., 5:].any()  # image keys: no bias


@pytest.fixture(scope="module")
def flux(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, torch.Tensor, torch.Tensor, Path]:
    """The FLUX demo transformer, the demo encoders' states and pooled output for a prompt, and the folder of the
    demo files."""
    from diffusion.demo_dit import DEMO_CLIP_L, DEMO_FLUX, DEMO_T5, DIT_DEMO_MODELS, write_dit_demo_model
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.dit_text import load_text_encoders
    from diffusion.memory import ModelManager

    folder = tmp_path_factory.mktemp("flux")
    files = {m.name: write_dit_demo_model(m, folder) for m in DIT_DEMO_MODELS}
    manager = ModelManager.create(force_cpu=True)
    encoded = load_text_encoders([files[DEMO_CLIP_L], files[DEMO_T5]], "flux", manager).encode("a red fox")
    return load_diffusion_model(files[DEMO_FLUX], manager), encoded.cond, encoded.pooled, folder


def _flux_sample(model: object, positive: list, negative: list | None = None, **overrides: object) -> torch.Tensor:
    latent = {"samples": torch.zeros(1, 16, 8, 8)}
    request = dict(model=model, positive=positive, negative=negative or positive, latent=latent, cfg=1.0, steps=2)
    return sample_latent(**(request | overrides), scheduler="simple")


def _redux_tokens(text: torch.Tensor) -> torch.Tensor:
    return torch.randn(1, 9, text.shape[-1], generator=torch.Generator().manual_seed(2)) * text.std() * 4


@pytest.mark.slow
def test_attn_bias_weighs_the_redux_tokens_in_flux_joint_attention(flux) -> None:
    model, text, pooled, _ = flux
    prompt = [[text, {"pooled_output": pooled}]]
    tokens = _redux_tokens(text)
    plain = _flux_sample(model, prompt)
    once = _flux_sample(model, apply_style(prompt, tokens, 1.0, "multiply"))
    assert not torch.allclose(once, plain, atol=1e-3)
    # strength 1 is no bias at all; an all-zero bias goes through the mask and changes nothing
    assert torch.equal(_flux_sample(model, apply_style(prompt, tokens, 1.0, "attn_bias")), once)
    [[cond, opts]] = apply_style(prompt, tokens, 1.0, "multiply")
    zeros = {"attention_bias": torch.zeros(cond.shape[1]), "attention_bias_group": torch.zeros(cond.shape[1])}
    assert torch.allclose(_flux_sample(model, [[cond, opts | zeros]]), once, atol=1e-5)
    # strength 0 shuts the Redux tokens out of every query's attention: the prompt alone
    off = _flux_sample(model, apply_style(prompt, tokens, 0.0, "attn_bias"))
    assert torch.allclose(off, plain, atol=1e-5)
    # below 1 the result moves towards the prompt alone
    half = _flux_sample(model, apply_style(prompt, tokens, 0.5, "attn_bias"))
    assert (half - plain).norm() < (once - plain).norm() and not torch.allclose(half, once, atol=1e-4)
    assert not torch.allclose(_flux_sample(model, apply_style(prompt, tokens, 2.0, "attn_bias")), once, atol=1e-4)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.unet.modules())


@pytest.mark.slow
def test_attn_bias_on_flux_under_cfg_with_an_unbiased_negative(flux) -> None:
    """One step from pure noise is the guided x0 estimate itself, so at cfg 3 it is neg + 3 (pos - neg) of the
    estimates each conditioning gets alone: batched with a negative without bias (the same length, so one model
    call, zero bias in its rows) or of another length (a call of its own), the positive keeps its bias."""
    model, text, pooled, _ = flux
    prompt = [[text, {"pooled_output": pooled}]]
    tokens = _redux_tokens(text)
    positive = apply_style(prompt, tokens, 0.3, "attn_bias")
    same_length = apply_style(prompt, tokens, 0.0, "multiply")
    pos = _flux_sample(model, positive, steps=1)
    batches: list[int] = []
    handle = model.unet.register_forward_pre_hook(
        lambda _m, _a, kw: batches.append(kw["hidden_states"].shape[0]), with_kwargs=True
    )
    try:
        for negative, calls in ((same_length, [2]), (prompt, [1, 1])):
            neg = _flux_sample(model, negative, steps=1)
            batches.clear()
            guided = _flux_sample(model, positive, negative, steps=1, cfg=3.0)
            assert torch.allclose(guided, neg + 3.0 * (pos - neg), atol=1e-4)
            assert batches == calls  # 256 and 265 tokens would repeat to 67,840: a call each
    finally:
        handle.remove()
    # every joint attention layer, double and single, gets the mask: the positive's row biased, the negative's zero
    masks: list[torch.Tensor] = []
    layers = [m for name, m in model.unet.named_modules() if name.endswith(".attn")]
    handles = [
        layer.register_forward_pre_hook(lambda _m, _a, kw: masks.append(kw["attention_mask"]), with_kwargs=True)
        for layer in layers
    ]
    try:
        _flux_sample(model, positive, same_length, steps=1, cfg=3.0)
    finally:
        for handle in handles:
            handle.remove()
    [[_, opts]] = positive
    expected = joint_attention_bias(opts["attention_bias"][None, None], opts["attention_bias_group"][None], 16)
    assert len(masks) == len(layers) == 4
    for mask in masks:
        assert mask.shape == (2, 1, text.shape[1] + 9 + 16, text.shape[1] + 9 + 16)
        assert torch.equal(mask[:1], expected) and not mask[1:].any()


def test_attn_bias_is_refused_on_sd3(flux) -> None:
    from diffusion.demo_dit import DEMO_SD3
    from diffusion.dit_loader import load_diffusion_model
    from diffusion.memory import ModelManager
    from diffusion.sampling import SamplingError

    _, _, _, folder = flux
    sd3 = load_diffusion_model(folder / DEMO_SD3, ModelManager.create(force_cpu=True))
    prompt = [[torch.randn(1, 6, 64), {"pooled_output": torch.randn(1, 64)}]]
    biased = apply_style(prompt, torch.randn(1, 3, 64), 0.5, "attn_bias")
    with pytest.raises(SamplingError, match="not sd3; use strength_type multiply"):
        _flux_sample(sd3, biased)
    assert _flux_sample(sd3, apply_style(prompt, torch.randn(1, 3, 64), 0.5, "multiply")).isfinite().all()


def test_the_demo_siglip_and_redux_files_make_tokens_for_the_demo_t5(flux) -> None:
    from diffusion.clip_vision import load_clip_vision
    from diffusion.demo_dit import DEMO_REDUX, DEMO_SIGLIP
    from diffusion.memory import ModelManager
    from diffusion.tiny_dit import TINY_SIGLIP

    _, text, _, folder = flux
    vision = load_clip_vision(folder / DEMO_SIGLIP, ModelManager.create(force_cpu=True))
    assert vision.arch == TINY_SIGLIP
    redux = load_style_model(folder / DEMO_REDUX)
    assert (redux.kind, redux.image_dim, redux.context_dim) == ("redux", TINY_SIGLIP.hidden, text.shape[-1])
    tokens = redux.tokens(vision.encode(torch.rand(1, 60, 80, 3)))
    assert tokens.shape == (1, 9, text.shape[-1]) and torch.isfinite(tokens).all() and tokens.std() > 0
