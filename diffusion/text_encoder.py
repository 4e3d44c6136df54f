"""CLIP text encoding for the SD families: one encoder (SD 1.x CLIP-L, SD 2.x OpenCLIP-H) or two (SDXL: CLIP-L and
OpenCLIP-bigG, hidden states concatenated, pooled output from bigG), with clip skip, emphasis and embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion.checkpoint import CheckpointError, TensorFile
from diffusion.detect import TextArch
from diffusion.hooks import ClipHooks, clip_schedule, patch_components
from diffusion.memory import ModelManager, module_nbytes
from diffusion.prompt import Window, tokenize_prompt
from diffusion.tokenizer import EOS, ClipTokenizer

EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth")
COMPONENTS = ("te1", "te2")  # the units' names as LoRA and hook patches address them (diffusion.lora_keys)


@dataclass(eq=False)
class EncoderUnit:
    arch: TextArch
    module: nn.Module  # transformers CLIPTextModel / CLIPTextModelWithProjection


@dataclass(frozen=True)
class Encoded:
    cond: torch.Tensor  # [1, tokens, width]
    pooled: torch.Tensor | None  # [1, projection] (SDXL)


@dataclass(eq=False)
class TextEncoder:
    """The CLIP socket value. Immutable from the outside: `with_layer` returns a copy sharing the modules."""

    family: str
    units: tuple[EncoderUnit, ...]
    tokenizer: ClipTokenizer
    manager: ModelManager
    embedding_dirs: Sequence[Path] = ()
    layer: int | None = None  # CLIPSetLastLayer's value; None keeps each encoder's family default
    extra: dict[str, object] = field(default_factory=dict)
    view: bool = False  # shares the modules of another TextEncoder (the cache counts their bytes there)
    hooks: ClipHooks | None = None  # SetClipHooks' hooks: encoding patches the units with them

    def loom_nbytes(self) -> int:
        return 1024 if self.view else sum(module_nbytes(u.module) for u in self.units)

    def with_layer(self, layer: int) -> TextEncoder:
        return replace(self, layer=layer, view=True)

    def with_embedding_dirs(self, dirs: Sequence[Path]) -> TextEncoder:
        return replace(self, embedding_dirs=tuple(dirs), view=True)

    def with_units(self, units: Sequence[EncoderUnit]) -> TextEncoder:
        """A copy around other encoder modules (e.g. ones with LoRA deltas applied); this one stays untouched."""
        return replace(self, units=tuple(units))

    def components(self) -> dict[str, nn.Module]:
        """The encoder modules by the names patches address them with (te1, te2)."""
        return {name: unit.module for name, unit in zip(COMPONENTS, self.units, strict=False)}

    def encode_scheduled(
        self, text: str, warn: Callable[[str], None] = lambda _m: None, per_encoder: dict[str, str] | None = None
    ) -> list[tuple[Encoded, dict[str, Any]]]:
        """`encode` as conditioning entries (encoding, extra keys): one plain entry without hooks; with hooks, the
        units patched at each range of the hooks' CLIP schedule, the range under clip_start/end_percent, and the
        hooks themselves under "hooks" when they apply to the conditioning too."""
        if self.hooks is None:
            return [(self.encode(text, warn, per_encoder), {})]
        group = self.hooks.group
        ranges = clip_schedule(group, self.hooks.schedule)
        out = []
        for start, end, strengths in ranges:
            modules = patch_components(self.components(), list(zip(group.hooks, strengths, strict=True)))
            units = [replace(u, module=modules[n]) for n, u in zip(COMPONENTS, self.units, strict=False)]
            patched = replace(self.with_units(units), hooks=None)
            extras: dict[str, Any] = {"hooks": group} if self.hooks.apply_to_conds else {}
            if self.hooks.schedule:
                extras |= {"clip_start_percent": start, "clip_end_percent": end}
            out.append((patched.encode(text, warn if not out else lambda _m: None, per_encoder), extras))
        return out

    @property
    def device(self) -> torch.device:
        return self.manager.device

    @torch.no_grad()
    def encode(
        self, text: str, warn: Callable[[str], None] = lambda _m: None, per_encoder: dict[str, str] | None = None
    ) -> Encoded:
        """Encode `text` with every encoder; `per_encoder` gives some encoders (by name: clip_l, clip_g) their own
        text, as SDXL's two-prompt node does. Shorter outputs are padded with empty windows to a common length."""
        self.manager.load([u.module for u in self.units])
        conds: list[torch.Tensor] = []
        pooled: torch.Tensor | None = None
        found: dict[str, dict[str, torch.Tensor] | None] = {}

        def find(name: str) -> dict[str, torch.Tensor] | None:
            if name not in found:
                found[name] = load_embedding(name, self.embedding_dirs)
            return found[name]

        for index, unit in enumerate(self.units):
            width = unit.arch.hidden

            def lookup(name: str, unit: EncoderUnit = unit, width: int = width) -> torch.Tensor | None:
                tensors = find(name)
                return pick_embedding(tensors, unit.arch.name, width) if tensors is not None else None

            own = (per_encoder or {}).get(unit.arch.name, text)
            windows = tokenize_prompt(
                own, self.tokenizer.words, lookup, warn if index == 0 else (lambda _m: None), unit.arch.pad_token
            )
            cond, unit_pooled = self._encode_unit(unit, windows)
            conds.append(cond)
            if unit.arch.pooled:
                pooled = unit_pooled
        longest = max(c.shape[1] for c in conds)
        for i, (unit, cond) in enumerate(zip(self.units, conds, strict=True)):
            if cond.shape[1] < longest:
                pad = tokenize_prompt("", self.tokenizer.words, lambda _n: None, warn, unit.arch.pad_token)
                blank, _ = self._encode_unit(unit, pad)
                conds[i] = torch.cat([cond, *[blank] * ((longest - cond.shape[1]) // blank.shape[1])], dim=1)
        return Encoded(torch.cat(conds, dim=-1).float().cpu(), pooled.float().cpu() if pooled is not None else None)

    @torch.no_grad()
    def phrase_embedding(self, text: str) -> torch.Tensor:
        """The first encoder's final-layer-normed state at the end-of-text token, unprojected ([1, width]): the
        phrase embedding GLIGEN's boxes carry."""
        unit = self.units[0]
        self.manager.load([unit.module])
        words = self.tokenizer.words
        window = tokenize_prompt(text, words, lambda _n: None, lambda _m: None, unit.arch.pad_token)[0]
        whole = replace(unit, arch=replace(unit.arch, pooled=True))
        _hidden, pooled = run_clip(whole, window.tokens, -1, self.device, self.manager.dtype, project=False)
        assert pooled is not None
        return pooled.float().cpu()

    def _encode_unit(self, unit: EncoderUnit, windows: list[Window]) -> tuple[torch.Tensor, torch.Tensor | None]:
        outs, pooled = [], None
        empty: torch.Tensor | None = None
        for n, window in enumerate(windows):
            hidden, pool = run_clip(unit, window.tokens, self.layer, self.device, self.manager.dtype)
            if any(w != 1.0 for w in window.weights):
                if empty is None:
                    blank = [window.tokens[0], EOS, *([unit.arch.pad_token] * (len(window.tokens) - 2))]
                    empty, _ = run_clip(unit, blank, self.layer, self.device, self.manager.dtype)
                w = torch.tensor(window.weights, dtype=hidden.dtype, device=hidden.device)[None, :, None]
                hidden = empty + (hidden - empty) * w
            outs.append(hidden)
            if n == 0:
                pooled = pool
        return torch.cat(outs, dim=1), pooled


def run_clip(
    unit: EncoderUnit,
    tokens: list,
    layer: int | None,
    device: torch.device,
    dtype: torch.dtype,
    project: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One 77-token window through one encoder, stopping at the requested layer (the pooled output, for encoders
    that give one, through the text projection when `project`).

    Embedding vectors (tensors among the tokens) replace the token embedding at their position.
    """
    model = unit.module
    text_model = getattr(model, "text_model", model)
    arch = unit.arch
    ids = torch.tensor([t if isinstance(t, int) else 0 for t in tokens], device=device)[None]
    embeds = text_model.embeddings.token_embedding(ids)
    for pos, tok in enumerate(tokens):
        if not isinstance(tok, int):
            embeds[0, pos] = tok.to(device=device, dtype=embeds.dtype)
    hidden = text_model.embeddings(inputs_embeds=embeds)
    n = hidden.shape[1]
    mask = torch.full((n, n), torch.finfo(hidden.dtype).min, device=device, dtype=hidden.dtype).triu(1)[None, None]
    want = layer if layer is not None else arch.default_layer
    want = max(-arch.layers, min(-1, want))
    stop = arch.layers + 1 + want  # number of layers to run
    need_all = arch.pooled
    layers = text_model.encoder.layers
    states = hidden
    selected = None
    for i, block in enumerate(layers if need_all else layers[:stop]):
        out = block(states, mask)
        states = out[0] if isinstance(out, tuple) else out
        if i + 1 == stop:
            selected = states
    assert selected is not None
    if want == -1 or arch.final_norm_on_skip:
        selected = text_model.final_layer_norm(selected)
    pooled = None
    if arch.pooled:
        final = text_model.final_layer_norm(states)
        eos = [pos for pos, t in enumerate(tokens) if isinstance(t, int) and t == EOS]
        pooled = final[:, eos[0] if eos else -1]
        if project and hasattr(model, "text_projection"):
            pooled = model.text_projection(pooled)
    return selected, pooled


def load_embedding(name: str, dirs: Sequence[Path]) -> dict[str, torch.Tensor] | None:
    """The tensors of a textual-inversion file `name` (with or without extension), or None when absent."""
    for root in dirs:
        for suffix in ("", *EMBEDDING_SUFFIXES):
            path = Path(root) / f"{name}{suffix}"
            if path.is_file() and path.suffix.lower() in EMBEDDING_SUFFIXES:
                try:
                    data = TensorFile(path)
                    tensors = dict(data.items())
                except CheckpointError:
                    return None
                return tensors or _nested_embedding(path)
    return None


def _nested_embedding(path: Path) -> dict[str, torch.Tensor] | None:
    """A1111 `.pt` files keep the vectors in `string_to_param["*"]`."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    param = obj.get("string_to_param", {}) if isinstance(obj, dict) else {}
    return {"*": param["*"]} if "*" in param else None


def pick_embedding(tensors: dict[str, torch.Tensor], encoder: str, width: int) -> torch.Tensor | None:
    """The vectors for one encoder: under its name (`clip_l`/`clip_g`) if present, else any tensor of its width."""
    if encoder in tensors and tensors[encoder].shape[-1] == width:
        return tensors[encoder].reshape(-1, width)
    for tensor in tensors.values():
        if tensor.ndim >= 1 and tensor.shape[-1] == width:
            return tensor.reshape(-1, width)
    return None
