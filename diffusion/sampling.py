"""KSampler and the custom-sampling path: noise, schedule, guidance, inpainting masks and ControlNet residuals
around a sampler (diffusion.samplers).

`sample` runs a KSampler request: it builds the sigmas and a classifier-free-guidance Guider and calls `run`, which
SamplerCustom(Advanced) call with their own guider, sampler choice and sigmas. Initial noise is drawn on the CPU
from a generator seeded with `seed`, in the latent's shape, so a seed gives the same image as the ecosystem's tools
(up to float rounding) whatever the device. So is the noise of each step: a Brownian tree for SDE samplers, a
continued seeded stream for the others (diffusion.noise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from diffusion.controlnet import Crop, add_rows, chain_residuals
from diffusion.gligen import gligen_attached
from diffusion.guidance import CFG, Guider, Rule
from diffusion.hooks import HookedModels, HookError, HookKey
from diffusion.model import DiffusionModel, GuidanceStep, UnetPatch
from diffusion.noise import BrownianTreeNoise, GaussianNoise, NoiseSource, seeded_generator
from diffusion.regions import Region, blend, has_regions, latent_mask, region
from diffusion.samplers import SAMPLERS, Sampler, SamplerChoice
from diffusion.samplers.scaling import VE, NoiseScaling, RectifiedFlow
from diffusion.schedulers import sigmas_for
from diffusion.step import StepInfo, Warn, once_each, unet_step

Conditioning = Sequence[Sequence[Any]]  # [[tensor [1, T, C], {"pooled_output": ..., ...}], ...]
StepReport = Callable[[int, int, torch.Tensor], None]  # (step done, steps, current x0 estimate)


class SamplingError(ValueError):
    """A sampling request that cannot run (empty conditioning, bad shapes); the message says which input."""


def prepare_noise(samples: torch.Tensor, seed: int, batch_index: Sequence[int] | None = None) -> torch.Tensor:
    """Gaussian noise in the latent's shape from a CPU generator seeded with `seed`.

    With `batch_index` (a latent taken from a bigger batch) each item gets the noise it had in that batch."""
    gen = seeded_generator(seed)
    if batch_index is None:
        return torch.randn(samples.shape, dtype=torch.float32, generator=gen, device="cpu")
    wanted = sorted(set(int(i) for i in batch_index))
    drawn: dict[int, torch.Tensor] = {}
    for i in range(wanted[-1] + 1):
        noise = torch.randn([1, *samples.shape[1:]], dtype=torch.float32, generator=gen, device="cpu")
        if i in wanted:
            drawn[i] = noise
    return torch.cat([drawn[int(i)] for i in batch_index])


@dataclass(frozen=True)
class SeededNoise:
    """A NOISE socket value: the initial noise KSampler draws for `seed`, or zeros when not `enabled`. The seed
    also seeds the samplers' step noise."""

    seed: int
    enabled: bool = True

    def generate(self, latent: dict[str, Any]) -> torch.Tensor:
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor):
            raise SamplingError("latent_image: expected a LATENT with 'samples'")
        if not self.enabled:
            return torch.zeros(samples.shape, dtype=torch.float32)
        return prepare_noise(samples, self.seed, latent.get("batch_index"))


def schedule_sigmas(
    model: DiffusionModel,
    scheduler: str,
    steps: int,
    denoise: float = 1.0,
    start_step: int | None = None,
    last_step: int | None = None,
    force_full_denoise: bool = True,
    discard_penultimate: bool = False,
) -> torch.Tensor:
    """The sigmas to run: `denoise` < 1 keeps the last `steps` of a longer schedule (img2img); start/last step
    cut the schedule (KSamplerAdvanced), ending at 0 unless leftover noise is wanted. `discard_penultimate`
    (DPM-2, UniPC) schedules one step more and drops the second-to-last sigma, as the reference does."""
    if denoise <= 0:
        return torch.zeros(0)
    planned = steps + 1 if discard_penultimate else steps
    total = planned if denoise >= 1 else int(planned / denoise)
    sigmas = sigmas_for(model.schedule, scheduler, total)
    if denoise < 1:
        sigmas = sigmas[-(planned + 1) :]
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step >= len(sigmas) - 1:
            return torch.zeros(0)
        sigmas = sigmas[start_step:]
    return sigmas


# Conditioning sets that stand for "no prompt": layers that prompt per row (IP-Adapter) give these rows their
# unconditional input.
UNCONDITIONAL_SETS = frozenset({"negative", "empty_conditioning"})


@dataclass
class _Entry:
    cond: torch.Tensor
    opts: dict[str, Any]
    negative: bool = False


def _as_entries(conditioning: Conditioning, name: str) -> list[_Entry]:
    entries = []
    for i, pair in enumerate(conditioning or ()):
        if not isinstance(pair, list | tuple) or len(pair) < 2 or not isinstance(pair[0], torch.Tensor):
            raise SamplingError(f"{name}: item {i} is not a [tensor, dict] conditioning pair")
        entries.append(_Entry(pair[0], dict(pair[1] or {}), name in UNCONDITIONAL_SETS))
    return entries


class Guided:
    """D(x, sigma): the x0 estimates of every conditioning set in one batched UNet call, combined by a guidance
    rule (classifier-free guidance for KSampler). Keeps the step's unguided estimate for CFG++ samplers.

    Entries with hooks (diffusion.hooks) are predicted by the model with their hooks' weights at this step's
    keyframe strengths, a call per distinct set of weights. Entries marked "default" fill in only where the other
    entries of their set leave weight below 1 (e.g. outside every hooked entry's mask), with the weight left."""

    def __init__(
        self,
        model: DiffusionModel,
        sets: Sequence[tuple[str, Conditioning]],
        rule: Rule,
        latent: torch.Tensor,
        device: torch.device,
        keep_uncond: bool = False,
        sigma_max: float | None = None,
        seed: int = 0,
        warn: Warn | None = None,
    ) -> None:
        self.model, self.rule, self.device = model, rule, device
        self.seed = seed  # the sampler's: model inputs drawn from it (unCLIP's noise augmentation)
        self.warn = once_each(warn)
        self.hooked = HookedModels(model, sigma_max if sigma_max is not None else model.schedule.sigma_max)
        self.sets = [_as_entries(cond, name) for name, cond in sets]
        if not self.sets[0]:
            raise SamplingError(f"{sets[0][0]}: the conditioning is empty")
        self.wanted = [i == 0 or rule.needs(i, keep_uncond) for i in range(len(self.sets))]
        self.batch = latent.shape[0]
        self.pixel_h, self.pixel_w = latent.shape[2] * 8, latent.shape[3] * 8
        self.last_uncond: torch.Tensor | None = None

    @staticmethod
    def _active(entries: list[_Entry], percent: float) -> list[_Entry]:
        """The entries acting at `percent`: within their timestep range, and within their CLIP schedule range."""
        active = []
        for e in entries:
            start = max(e.opts.get("start_percent", 0.0), e.opts.get("clip_start_percent", 0.0))
            end = min(e.opts.get("end_percent", 1.0), e.opts.get("clip_end_percent", 1.0))
            if start <= percent <= end:
                active.append(e)
        return active

    def _with_defaults(self, active: list[_Entry], x: torch.Tensor) -> tuple[list[_Entry], list[Region]]:
        """The active entries and their regions; "default" entries weigh what the others leave uncovered of each
        cell (1 minus their summed weights, at least 0) and are dropped where that is nothing."""
        regular = [e for e in active if not e.opts.get("default")]
        regions = [region(e.opts, x) for e in regular]
        defaults = [e for e in active if e.opts.get("default")]
        if not defaults:
            return regular, regions
        covered = torch.zeros(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        for reg in regions:
            covered[..., reg.y0 : reg.y1, reg.x0 : reg.x1] += reg.weight
        left = (1 - covered).clamp_min(0)
        if not bool((left > 0).any()):
            return regular, regions
        whole = Region(0, x.shape[2], 0, x.shape[3], left)
        return regular + defaults, regions + [whole] * len(defaults)

    def _step_percent(self, sigma: float) -> float:
        """How far through the model's full noise range a sigma lies (0 = pure noise)."""
        return self.model.schedule.sigma_to_percent(sigma)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        percent = self._step_percent(float(sigma[0]))
        groups: list[tuple[list[_Entry], list[Region]]] = []
        for i, entries in enumerate(self.sets):
            active = self._active(entries, percent) if self.wanted[i] else []
            if i == 0 and not active:
                active = entries[:1]
            groups.append(self._with_defaults(active, x))
        flat = [e for group, _ in groups for e in group]
        preds = self._predict(flat, [r for _, regions in groups for r in regions], x, sigma, percent)
        estimates: list[torch.Tensor | None] = []
        start = 0
        for group, _ in groups:
            chunk = preds[start : start + len(group)]
            estimates.append(self._combine(x, group, chunk) if group else None)
            start += len(group)
        guided, self.last_uncond = self.rule(estimates)
        cond = estimates[0]
        if self.model.post_guidance and cond is not None:  # model options (RescaleCFG, CFGZeroStar, ...)
            predict = partial(self._extra, sigma=sigma, percent=percent)
            step = GuidanceStep(x, sigma, cond, self.last_uncond, guided, self.rule.scale, predict)
            guided = self.model.guide(step)
        return guided

    def _extra(
        self,
        x: torch.Tensor,
        conditioning: int | Conditioning,
        patch: UnetPatch | None = None,
        *,
        sigma: torch.Tensor,
        percent: float,
    ) -> torch.Tensor | None:
        """One more estimate for a post-guidance function (diffusion.model.Predictor): a set of this guider by
        index, or another conditioning, optionally with a UNet patch for this call."""
        if isinstance(conditioning, int):
            if conditioning >= len(self.sets):
                return None
            entries = self.sets[conditioning]
            entries = self._active(entries, percent) or (entries[:1] if conditioning == 0 else [])
        else:
            entries = _as_entries(conditioning, "empty_conditioning")
        if not entries:
            return None
        entries, regions = self._with_defaults(entries, x)
        return self._combine(x, entries, self._predict(entries, regions, x, sigma, percent, patch))

    def _predict(
        self,
        entries: list[_Entry],
        regions: list[Region],
        x: torch.Tensor,
        sigma: torch.Tensor,
        percent: float,
        patch: UnetPatch | None = None,
    ) -> list[tuple[Region, torch.Tensor]]:
        """x0 estimates per entry, each computed on its region's crop of the latent; entries sharing a region
        (most often: the whole frame) and hook weights go through the UNet together, with `patch` for this call
        when one is given."""
        groups: dict[tuple[tuple[int, int, int, int], HookKey], list[int]] = {}
        for i, (entry, reg) in enumerate(zip(entries, regions, strict=True)):
            try:
                hooks = self.hooked.key(entry.opts.get("hooks"), float(sigma[0]))
            except HookError as exc:
                raise SamplingError(f"hooks: {exc}") from exc
            groups.setdefault((reg.bounds, hooks), []).append(i)
        height, width = x.shape[2], x.shape[3]
        preds: list[tuple[Region, torch.Tensor]] = [None] * len(entries)  # type: ignore[list-item]
        for (bounds, hooks), indices in groups.items():
            crop = regions[indices[0]].crop(x)
            group = [entries[i] for i in indices]
            area = None if bounds == (0, height, 0, width) else (height, width, *bounds)
            try:
                model = self.hooked.model(hooks)
            except HookError as exc:
                raise SamplingError(f"hooks: {exc}") from exc
            if patch is not None:
                model = model.with_unet_patch(patch)
            denoised = self._forward(model, group, crop, sigma, percent, area)
            for i, chunk in zip(indices, denoised.split(self.batch), strict=True):
                preds[i] = (regions[i], chunk)
        return preds

    def _forward(
        self,
        model: DiffusionModel,
        entries: list[_Entry],
        x: torch.Tensor,
        sigma: torch.Tensor,
        percent: float,
        area: Crop | None,
    ) -> torch.Tensor:
        """x0 estimates of `entries` on `x` (the whole latent, or the `area` of it), one batched call of `model`
        (the sampled model, or a copy of it carrying the entries' hooks and a post-guidance pass's patch)."""
        n = len(entries)
        c_skip, c_out, c_in = model.scalings(sigma)
        x_in = (x * c_in).repeat(n, 1, 1, 1)
        t = model.timestep(sigma).to(self.device).repeat(n)
        length = math.lcm(*(e.cond.shape[1] for e in entries))
        context = torch.cat([self._rows(e.cond.repeat(1, length // e.cond.shape[1], 1)) for e in entries])
        context = context.to(self.device)
        added = self._added(entries)
        bias = self._key_bias(entries, length)
        residuals = self._control(model, entries, x_in, t, context, added, percent, area)
        if bias is not None:
            added = {**(added or {}), "cross_attention_bias": bias.to(self.device)}
        negative = torch.tensor([e.negative for e in entries]).repeat_interleave(self.batch)
        boxes = [e.opts.get("gligen") for e in entries for _ in range(self.batch)]
        with (
            unet_step(StepInfo(percent, negative, (x.shape[2], x.shape[3]), area, self.warn)),
            gligen_attached(model.unet, boxes, (x.shape[2], x.shape[3])),
        ):
            out = model.unet_forward(x_in, t, context, added, *residuals)
        return x.repeat(n, 1, 1, 1) * c_skip.repeat(n, 1, 1, 1) + out * c_out.repeat(n, 1, 1, 1)

    def _combine(
        self, x: torch.Tensor, entries: list[_Entry], preds: list[tuple[Region, torch.Tensor]]
    ) -> torch.Tensor:
        """Strength-weighted mean of the entries' estimates; areas, masks and defaults weight only where they
        apply."""
        if not has_regions([e.opts for e in entries]) and not any(e.opts.get("default") for e in entries):
            return self._mean([p for _r, p in preds], entries)
        return blend(preds, x)

    def _key_bias(self, entries: list[_Entry], length: int) -> torch.Tensor | None:
        """The cross-attention logit bias [rows, 1, length] of entries that carry one per token (style models'
        attn_bias), zeros for the others; None when no entry has one."""
        if not any("attention_bias" in e.opts for e in entries):
            return None
        if getattr(self.model, "conditioning_inputs", None) is not None:
            raise SamplingError("attn_bias style strength works on U-Net models; use strength_type multiply")
        rows = []
        for e in entries:
            tokens = e.cond.shape[1]
            bias = e.opts.get("attention_bias")
            if bias is None:
                bias = torch.zeros(tokens)
            elif bias.shape[-1] != tokens:
                raise SamplingError(
                    f"a conditioning's attention bias covers {bias.shape[-1]} tokens, its prompt has {tokens} "
                    "(apply the style model after changing the prompt's tokens)"
                )
            rows.append(bias.float().repeat(length // tokens)[None, None].expand(self.batch, 1, -1))
        return torch.cat(rows)

    def _rows(self, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[0] == self.batch:
            return cond
        return cond[:1].repeat(self.batch, 1, 1)

    @staticmethod
    def _mean(chunks: Sequence[torch.Tensor], entries: list[_Entry]) -> torch.Tensor:
        weights = [float(e.opts.get("strength", 1.0)) for e in entries]
        total = sum(weights) or 1.0
        return sum((c * (w / total) for c, w in zip(chunks, weights, strict=True)), torch.zeros_like(chunks[0]))

    def _added(self, entries: list[_Entry]) -> dict[str, torch.Tensor] | None:
        """The UNet's extra inputs per row: SDXL's pooled text embedding and six size/crop numbers, or unCLIP's
        class label."""
        model_inputs = getattr(self.model, "conditioning_inputs", None)
        if model_inputs is not None:  # the model's own per-row inputs (flow transformers: pooled, guidance)
            return {k: v.to(self.device) for k, v in model_inputs([e.opts for e in entries], self.batch).items()}
        augmentor = self.model.extra.get("noise_augmentor")
        if augmentor is not None:  # unCLIP: each entry's image embeddings as the UNet's class label
            labels = augmentor.class_labels([e.opts for e in entries], self.batch, self.seed)
            return {"class_labels": labels.to(self.device)}
        if getattr(self.model.unet.config, "addition_embed_type", None) != "text_time":
            return None
        pooled, ids = [], []
        for e in entries:
            p = e.opts.get("pooled_output")
            if p is None:
                raise SamplingError("SDXL needs a pooled text embedding: encode the prompt with an SDXL CLIP")
            pooled.append(self._rows(p.reshape(p.shape[0], 1, -1)).reshape(self.batch, -1))
            ids.append(torch.tensor([self._time_ids(e, p.shape[-1])], dtype=torch.float32).repeat(self.batch, 1))
        return {"text_embeds": torch.cat(pooled).to(self.device), "time_ids": torch.cat(ids).to(self.device)}

    def _time_ids(self, entry: _Entry, pooled_dim: int) -> list[float]:
        """SDXL base: size, crop and target size; the SDXL refiner (room for five numbers in its added embedding):
        size, crop and the aesthetic score (6 for prompts, 2.5 for negatives when a conditioning gives none)."""
        o, config = entry.opts, self.model.unet.config
        size = [o.get("height", self.pixel_h), o.get("width", self.pixel_w), o.get("crop_h", 0), o.get("crop_w", 0)]
        count = (config.projection_class_embeddings_input_dim - pooled_dim) // config.addition_time_embed_dim
        if count == 5:
            return [*size, o.get("aesthetic_score", 2.5 if entry.negative else 6.0)]
        return [*size, o.get("target_height", self.pixel_h), o.get("target_width", self.pixel_w)]

    def _control(
        self,
        model: DiffusionModel,
        entries: list[_Entry],
        x_in: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        added: dict[str, torch.Tensor] | None,
        percent: float,
        area: Crop | None,
    ) -> tuple[Any, ...]:
        """Sum the residuals of each entry's ControlNet chain; each control sees only its entry's rows (and,
        for SDXL, their pooled embedding and size numbers, which its own added embedding needs), and for an area
        entry the area's crop, so its hint is cut to match. U-Net ControlNets give (down, mid), DiT ones (joint
        blocks, single blocks): the model's residual arguments, () when no control acts."""
        total: Any = None
        for n, entry in enumerate(entries):
            rows = list(range(n * self.batch, (n + 1) * self.batch))
            extra: dict[str, Any] = {"added_cond_kwargs": {k: v[rows] for k, v in added.items()}} if added else {}
            if area is not None:
                extra["crop"] = area
            result = chain_residuals(
                entry.opts.get("control"), x_in[rows], t[rows], context[rows], percent, rows, model=model, **extra
            )
            if result is not None:
                total = add_rows(total, result, rows, x_in.shape[0])
        return () if total is None else tuple(total)


class Inpaint:
    """Keeps the unmasked area on the original latent's noising path and in the output (mask 1 = repaint).

    `mask_at` gives the mask a step at a sigma uses: the mask itself, or a model's per-step rework of it
    (Differential Diffusion)."""

    def __init__(
        self,
        inner: Guided,
        latent: torch.Tensor,
        noise: torch.Tensor,
        mask_at: Callable[[torch.Tensor], torch.Tensor],
        noise_scaling: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.inner, self.latent, self.noise, self.mask_at = inner, latent, noise, mask_at
        self.mask: torch.Tensor | None = None
        self.noise_scaling = noise_scaling or (lambda s, n, x0: x0 + n * s)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma[:, None, None, None]
        mask = self.mask = self.mask_at(sigma)
        x = x * mask + self.noise_scaling(s, self.noise, self.latent) * (1 - mask)
        return self.inner(x, sigma) * mask + self.latent * (1 - mask)

    @property
    def last_uncond(self) -> torch.Tensor | None:
        uncond = self.inner.last_uncond
        if uncond is None or self.mask is None:
            return None
        return uncond * self.mask + self.latent * (1 - self.mask)


@dataclass
class SampleRequest:
    model: DiffusionModel
    seed: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    positive: Conditioning
    negative: Conditioning
    latent: dict[str, Any]
    denoise: float = 1.0
    add_noise: bool = True
    start_step: int | None = None
    last_step: int | None = None
    force_full_denoise: bool = True


def sample(req: SampleRequest, report: StepReport | None = None, warn: Warn | None = None) -> dict[str, Any]:
    """Run one KSampler request; returns a new LATENT dict (the input's extra keys are kept). `warn` hears what
    the run should tell its node (each distinct warning once)."""
    if req.sampler not in SAMPLERS:
        raise SamplingError(f"sampler_name: unknown sampler {req.sampler!r}")
    samples = _latent_samples(req.latent, req.model)
    sigmas = schedule_sigmas(
        req.model,
        req.scheduler,
        req.steps,
        req.denoise,
        req.start_step,
        req.last_step,
        req.force_full_denoise,
        SAMPLERS[req.sampler].discard_penultimate,
    )
    noise = (
        prepare_noise(samples, req.seed, req.latent.get("batch_index"))
        if req.add_noise
        else torch.zeros(samples.shape, dtype=torch.float32)
    )
    guider = Guider(req.model, (("positive", req.positive), ("negative", req.negative)), CFG(req.cfg))
    output, _denoised = run(guider, SamplerChoice(req.sampler), sigmas, req.latent, noise, req.seed, report, warn)
    return output


def _latent_samples(latent: dict[str, Any], model: DiffusionModel) -> torch.Tensor:
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        raise SamplingError("latent_image: expected a LATENT with 'samples' of shape [B, C, H, W]")
    if samples.shape[1] != model.latent_channels:
        raise SamplingError(f"latent_image: {samples.shape[1]} channels, but the model expects {model.latent_channels}")
    return samples


def run(
    guider: Guider,
    choice: SamplerChoice,
    sigmas: torch.Tensor,
    latent: dict[str, Any],
    noise: torch.Tensor,
    seed: int,
    report: StepReport | None = None,
    warn: Warn | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample `latent` along `sigmas` from `latent + noise * sigma_0` with a guider and a sampler (the
    SamplerCustom path; KSampler builds its sigmas and CFG guider, then comes here). Returns the output LATENT
    and the last x0 estimate as a LATENT (the same when no step ran). `warn` as for `sample`."""
    sampler = SAMPLERS.get(choice.name)
    if sampler is None:
        raise SamplingError(f"sampler: unknown sampler {choice.name!r}")
    model: DiffusionModel = guider.model
    samples = _latent_samples(latent, model)
    if noise.shape != samples.shape:
        raise SamplingError(f"noise: shape {tuple(noise.shape)} does not match the latent's {tuple(samples.shape)}")
    out = dict(latent)
    out.pop("noise_mask", None)
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
    if len(sigmas) < 2:
        out["samples"] = samples.clone()
        return out, out
    device = model.manager.device
    model.manager.load([model.unet])
    latent_format = model.latent_format
    x0 = samples.float().to(device)
    if latent_format is not None:
        x0 = latent_format.to_model(x0)
    noise = noise.float().to(device)
    sigmas = sigmas.to(device)
    x = model.noise_scaling(sigmas[0], noise, x0)
    guided = Guided(
        model,
        guider.sets,
        guider.rule,
        x0,
        device,
        keep_uncond=sampler.needs_uncond,
        sigma_max=float(sigmas.max()),
        seed=seed,
        warn=warn,
    )
    denoiser: Guided | Inpaint = guided
    mask = latent.get("noise_mask")
    m = latent_mask(mask, x0).to(device) if isinstance(mask, torch.Tensor) else None
    if m is not None:
        keep_noise = noise
        if sampler.fresh_inpaint_noise:  # DDIM: the kept area follows its own noise draw
            keep_noise = torch.randn(samples.shape, generator=seeded_generator(seed + 1)).to(device)
        flow = model.noise_scaling if model.prediction == "flow" else None
        denoiser = Inpaint(guided, x0, keep_noise, _mask_schedule(model, m, sigmas), flow)
    step_noise = _step_noise(sampler, x, sigmas, seed, latent.get("batch_index"))
    options = dict(choice.options)
    if sampler.schedule_defaults is not None:
        options = sampler.schedule_defaults(model.schedule) | options
    steps = len(sigmas) - 1
    last: dict[str, Any] = {"done": 0, "denoised": None}

    def to_loom(latent: torch.Tensor) -> torch.Tensor:
        return latent if latent_format is None else latent_format.from_model(latent)

    def callback(i: int, _x: torch.Tensor, denoised: torch.Tensor) -> None:
        last["done"], last["denoised"] = min(i + 1, steps), denoised
        if report is not None:
            report(last["done"], steps, to_loom(denoised))

    with torch.no_grad():
        result = sampler(denoiser, x, sigmas, step_noise, callback, scaling=sampler_scaling(model), **options)
    if report is not None and last["done"] < steps and last["denoised"] is not None:
        # samplers that take fewer steps than sigmas (dpm_fast/adaptive)
        report(steps, steps, to_loom(last["denoised"]))
    if m is not None:
        final = _mask_schedule(model, m, sigmas)(sigmas[-1:])
        result = result * final + x0 * (1 - final)
    out["samples"] = to_loom(result).float().cpu()
    denoised_out = dict(out)
    if last["denoised"] is not None:
        denoised_out["samples"] = to_loom(last["denoised"]).float().cpu()
    return out, denoised_out


def sampler_scaling(model: DiffusionModel) -> NoiseScaling:
    """How the samplers must scale this model's latents: flow models' (1 - sigma) x0 + sigma n, with half-log-SNR
    steps starting 0.01% of the way into the model's schedule rather than at sigma 1 (as the reference's)."""
    if model.prediction == "flow":
        return RectifiedFlow(top=model.schedule.percent_to_sigma(1e-4))
    return VE


def _mask_schedule(
    model: DiffusionModel, mask: torch.Tensor, sigmas: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The inpainting mask at each sigma: fixed, or reworked per step by the model's option."""
    function = model.denoise_mask
    if function is None:
        return lambda _sigma: mask
    return lambda sigma: function(mask, sigma, sigmas, model)


def _step_noise(
    sampler: Sampler, x: torch.Tensor, sigmas: torch.Tensor, seed: int, batch_index: Sequence[int] | None
) -> NoiseSource:
    """Brownian-tree increments for SDE samplers (on the CPU, or on the model's device for the `_gpu` ones);
    a seeded stream of fresh draws (seed + 1, as the reference's default noise sampler on the CPU) otherwise."""
    if sampler.noise in ("tree", "device_tree"):
        where = x.device if sampler.noise == "device_tree" else torch.device("cpu")
        return BrownianTreeNoise.for_sigmas(x, sigmas, seed, batch_index, tree_device=where)
    return GaussianNoise(x.shape, seed + 1, x.device)


@dataclass
class PreviewThrottle:
    """Lets at most one preview through per `interval` seconds (plus the last step)."""

    interval: float = 0.4
    last: float = 0.0

    def ready(self, final: bool) -> bool:
        now = time.monotonic()
        if final or now - self.last >= self.interval:
            self.last = now
            return True
        return False
