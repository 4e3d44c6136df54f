"""The CLIP socket value of the DiT families: CLIP-L (FLUX), CLIP-L + CLIP-G (SD3) and T5-XXL, from standalone
text-encoder files (`models/text_encoders`, `models/clip`) as DualCLIPLoader/TripleCLIPLoader/CLIPLoader name them.

FLUX conditions on T5's hidden states and CLIP-L's pooled output. SD3 conditions on CLIP-L and CLIP-G penultimate
states side by side (zero-padded to T5's width) followed by T5's states, with both CLIPs' projected pooled outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from diffusion.checkpoint import CheckpointError, ShardedTensors, TensorFile, assign_weights
from diffusion.convert import Renamed
from diffusion.detect import UnknownModel, detect_text, family_defaults
from diffusion.memory import ModelManager, module_nbytes
from diffusion.t5 import EOS, PAD, T5Tokenizer, build_t5, detect_t5, find_tokenizer, is_t5, run_t5
from diffusion.text_encoder import Encoded, EncoderUnit, TextEncoder
from diffusion.tokenizer import ClipTokenizer

HF_MARK = "text_model.embeddings.token_embedding.weight"
OPENCLIP_MARK = "transformer.resblocks.0.attn.in_proj_weight"
LORA_ORDER = ("clip_l", "clip_g")


class KeyView(Renamed):
    """The tensors of `source` under prefix `old`, seen under prefix `new` (so one detector reads every layout)."""

    def __init__(self, source: TensorFile | ShardedTensors, old: str, new: str) -> None:
        super().__init__(source, {new + k[len(old) :]: k for k in source.shapes if k.startswith(old)})
        self.shapes = {k: source.shapes[v] for k, v in self.names.items()}


@dataclass(eq=False)
class T5Unit:
    module: nn.Module
    tokenizer: T5Tokenizer


@dataclass(eq=False)
class DiTTextEncoder:
    """Immutable from the outside, like TextEncoder: `with_layer` returns a view sharing the modules."""

    family: str  # "flux" or "sd3"
    clips: dict[str, TextEncoder]  # "clip_l" / "clip_g", each a one-encoder TextEncoder
    t5: T5Unit | None
    manager: ModelManager
    view: bool = False

    def loom_nbytes(self) -> int:
        if self.view:
            return 1024
        return sum(c.loom_nbytes() for c in self.clips.values()) + (module_nbytes(self.t5.module) if self.t5 else 0)

    def with_layer(self, layer: int) -> DiTTextEncoder:
        return replace(self, clips={k: c.with_layer(layer) for k, c in self.clips.items()}, view=True)

    @property
    def units(self) -> tuple[EncoderUnit, ...]:
        """The CLIP encoders in the order LoRA files number them (CLIP-L first, then CLIP-G)."""
        return tuple(self.clips[name].units[0] for name in LORA_ORDER if name in self.clips)

    def with_units(self, units: Sequence[EncoderUnit]) -> DiTTextEncoder:
        """A copy whose CLIP encoders are `units` (in the order of `units`), e.g. carrying LoRA deltas."""
        names = [name for name in LORA_ORDER if name in self.clips]
        clips = dict(self.clips) | {n: self.clips[n].with_units((u,)) for n, u in zip(names, units, strict=True)}
        return replace(self, clips=clips)

    def with_embedding_dirs(self, dirs: Sequence[Path]) -> DiTTextEncoder:
        return replace(self, clips={k: c.with_embedding_dirs(dirs) for k, c in self.clips.items()}, view=True)

    @torch.no_grad()
    def encode_t5(self, text: str, left_out: bool = False) -> torch.Tensor | None:
        """T5's states, padded to the family's minimum length; a left-out prompt is the end token alone."""
        if self.t5 is None:
            return None
        self.manager.load([self.t5.module])
        ids = [EOS] if left_out else self.t5.tokenizer(text)
        if not left_out:
            ids += [PAD] * (family_defaults(self.family)["t5_min_length"] - len(ids))
        return run_t5(self.t5.module, ids, self.manager.device).cpu()

    @torch.no_grad()
    def encode(
        self,
        text: str,
        warn: Callable[[str], None] = lambda _m: None,
        per_encoder: dict[str, str] | None = None,
        left_out: frozenset[str] = frozenset(),
    ) -> Encoded:
        """`per_encoder` gives an encoder (clip_l, clip_g, t5xxl) its own text, as CLIPTextEncodeFlux/SD3 do;
        `left_out` names encoders whose (empty) prompt is dropped rather than encoded (CLIPTextEncodeSD3's
        empty_padding "none"): T5's then is its end token alone, and SD3's CLIPs go only when both are."""
        own = per_encoder or {}
        skip_clips = {"clip_l", "clip_g"} <= left_out
        clip = {} if skip_clips else {name: enc.encode(own.get(name, text), warn) for name, enc in self.clips.items()}
        t5 = self.encode_t5(own.get("t5xxl", text), "t5xxl" in left_out)
        if self.family == "flux":
            if t5 is None or "clip_l" not in clip:
                raise CheckpointError("FLUX needs both a CLIP-L and a T5-XXL text encoder (DualCLIPLoader, type flux)")
            return Encoded(t5, clip["clip_l"].pooled)
        return self._sd3(clip, t5, skip_clips)

    def _sd3(self, clip: dict[str, Encoded], t5: torch.Tensor | None, skip_clips: bool) -> Encoded:
        """CLIP-L and CLIP-G states side by side (the shorter prompt extended with empty windows), zero-padded to
        the joint width, then T5's states; pooled: both CLIPs' side by side. A missing encoder contributes zeros
        of its width, so SD3 runs with any subset of its three."""
        d = family_defaults(self.family)
        width = max(d["context_width"], t5.shape[-1] if t5 is not None else 0)
        archs = {u.arch.name: u.arch for c in self.clips.values() for u in c.units}
        defaults = d["clip_widths"]
        pooled = []
        for name in ("clip_l", "clip_g"):
            arch = archs.get(name)
            size = (arch.projection_dim or arch.hidden) if arch else defaults[name]
            pooled.append(clip[name].pooled if name in clip else torch.zeros(1, size))
        if t5 is not None:
            t5 = torch.nn.functional.pad(t5, (0, width - t5.shape[-1]))
        if skip_clips or not clip:
            cond = t5 if t5 is not None else torch.zeros(1, 77, width)
            return Encoded(cond, torch.cat(pooled, dim=-1))
        length = max(c.cond.shape[1] for c in clip.values())
        parts = []
        for name in ("clip_l", "clip_g"):
            if name not in clip:
                parts.append(torch.zeros(1, length, archs[name].hidden if name in archs else defaults[name]))
                continue
            cond = clip[name].cond
            if cond.shape[1] < length:
                blank = self.clips[name].encode("").cond
                cond = torch.cat([cond, *[blank] * ((length - cond.shape[1]) // blank.shape[1])], dim=1)
            parts.append(cond)
        clip_cond = torch.cat(parts, dim=-1)
        clip_cond = torch.nn.functional.pad(clip_cond, (0, width - clip_cond.shape[-1]))
        if t5 is None:
            return Encoded(clip_cond, torch.cat(pooled, dim=-1))
        return Encoded(torch.cat([clip_cond, t5], dim=1), torch.cat(pooled, dim=-1))


def _clip_name(arch_width: int, layout: str, prefix: str, file_name: str) -> str:
    """CLIP-G is 1280 wide (and often stored in OpenCLIP's layout); names in the file or its path settle tiny ones."""
    hint = f"{prefix} {file_name}".lower()
    if "clip_g" in hint or "clip-g" in hint:
        return "clip_g"
    if "clip_l" in hint or "clip-l" in hint:
        return "clip_l"
    return "clip_g" if arch_width == 1280 or layout == "openclip" else "clip_l"


def _specs(family: str) -> dict[str, dict]:
    return {s["name"]: s for s in family_defaults(family)["text_encoders"]}


def clip_encoder(
    view: KeyView,
    layout: str,
    encoder: str,
    family: str,
    what: str,
    manager: ModelManager,
    embedding_dirs: Sequence[Path],
    tokenizer: ClipTokenizer | None = None,
) -> TextEncoder:
    """One CLIP encoder (`encoder`: clip_l or clip_g) from tensors seen under `transformer.` (hf layout) or
    `model.` (openclip), as a one-encoder TextEncoder; `tokenizer` defaults to the bundled CLIP vocabulary."""
    from diffusion.loader import build_text, fit_text_keys, text_state

    specs = _specs(family)
    if encoder not in specs:
        raise CheckpointError(f"{what}: a {encoder} text encoder is no part of {family}")
    try:
        arch = detect_text(view.shapes, "", dict(specs[encoder], layout=layout))
    except (UnknownModel, KeyError) as exc:
        raise CheckpointError(f"{what}: incomplete CLIP text encoder ({exc})") from exc
    if encoder == "clip_l" and family in ("flux", "sd3"):
        arch = replace(arch, projection_dim=None)  # FLUX and SD3 take CLIP-L's pooled output unprojected
    module = build_text(arch)
    wanted = module.state_dict()
    state = {k: v for k, v in fit_text_keys(text_state(view, arch), module).items() if k in wanted}
    module = assign_weights(module, state, f"{what}: {encoder}", manager.dtype)
    unit = EncoderUnit(arch, module)
    return TextEncoder(family, (unit,), tokenizer or ClipTokenizer(), manager, tuple(embedding_dirs))


def read_text_file(
    path: Path, family: str, manager: ModelManager, embedding_dirs: Sequence[Path]
) -> tuple[dict[str, TextEncoder], T5Unit | None]:
    """The CLIP and T5 encoders one file holds (a standalone encoder, or several under their own prefixes)."""
    tensors = TensorFile(path)
    name = Path(path).name
    clips: dict[str, TextEncoder] = {}
    t5 = None
    for key in tensors.shapes:
        if key.endswith(HF_MARK):
            layout, old, new = "hf", key[: -len(HF_MARK)], "transformer."
        elif key.endswith(OPENCLIP_MARK) and not key.endswith("text_model." + OPENCLIP_MARK):
            layout, old, new = "openclip", key[: -len(OPENCLIP_MARK)], "model."
        else:
            continue
        view = KeyView(tensors, old, new)
        width = view.shapes["transformer.text_model.embeddings.token_embedding.weight" if layout == "hf"
                            else "model.token_embedding.weight"][1]  # fmt: skip
        encoder = _clip_name(width, layout, old, name)
        clips[encoder] = clip_encoder(view, layout, encoder, family, name, manager, embedding_dirs)
    if is_t5(tensors.shapes):
        t5 = T5Unit(build_t5(detect_t5(tensors.shapes), tensors, f"{name}: T5", manager.dtype),
                    T5Tokenizer(find_tokenizer(path)))  # fmt: skip
    if not clips and t5 is None:
        raise CheckpointError(f"{name}: no CLIP or T5 text encoder found in this file")
    return clips, t5


def load_text_encoders(
    paths: Sequence[Path], family: str, manager: ModelManager, embedding_dirs: Sequence[Path] = ()
) -> DiTTextEncoder:
    """One DiTTextEncoder from the files a CLIP loader names (in any order); a role filled twice is an error."""
    clips: dict[str, TextEncoder] = {}
    t5 = None
    for path in paths:
        found, found_t5 = read_text_file(path, family, manager, embedding_dirs)
        for encoder in found:
            if encoder in clips:
                raise CheckpointError(f"{Path(path).name}: a second {encoder} text encoder")
        if found_t5 is not None and t5 is not None:
            raise CheckpointError(f"{Path(path).name}: a second T5 text encoder")
        clips.update(found)
        t5 = found_t5 or t5
    return DiTTextEncoder(family, clips, t5, manager)
