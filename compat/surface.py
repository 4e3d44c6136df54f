"""The host's names that packs import at load time but Loom has no machinery for, module by module.

Each entry makes a module importable under the ecosystem's name. Its `functions` and `classes` are placeholders
(compat.placeholder: calling or instantiating one fails at run time, naming it and the calling node); its
`nodes` are node classes: a Loom built-in of the same type name when there is one (through `nodes`), otherwise a
placeholder whose INPUT_TYPES fails, so a pack subclassing it loses that node only. A module with a real file
under compat/ lists here only what that file does not define (the file calls `complete(globals())` last).
Anything not listed is refused: "Loom does not provide X".
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from compat import placeholder
from compat.host import bound, refuse


@dataclass(frozen=True, slots=True)
class Surface:
    functions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    package: bool = False


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


S = Surface
MODULES: dict[str, Surface] = {
    # -- comfy --------------------------------------------------------------------------------------------------
    "comfy.utils": S(
        _names(
            "tiled_scale tiled_scale_multidim get_tiled_scale_steps reshape_mask unet_to_diffusers "
            "flux_to_diffusers mmdit_to_diffusers convert_sd_to auraflow_to_diffusers pixart_to_diffusers "
            "transformers_convert clip_text_transformers_convert"
        )
    ),
    "comfy.model_management": S(
        _names(
            "maximum_vram_for_weights minimum_inference_memory extra_reserved_memory supports_cast "
            "supports_fp8_compute device_supports_non_blocking archive_model_dtypes get_offload_stream sync_stream"
        ),
        _names("LoadedModel"),
    ),
    "comfy.samplers": S(
        _names(
            "sampling_function calc_cond_batch cfg_function get_area_and_mult cond_equal_size can_concat_cond "
            "cond_cat encode_model_conds resolve_areas_and_cond_masks calculate_start_end_timesteps "
            "pre_run_control apply_empty_x_to_equal_area create_cond_with_same_area_if_none process_conds "
            "preprocess_conds_hooks sample normal_scheduler simple_scheduler ddim_scheduler sgm_uniform "
            "beta_scheduler calculate_sigmas ksampler"
        ),
        _names("CFGGuider Sampler KSAMPLER UNIPC UNIPCBH2 KSamplerX0Inpaint"),
    ),
    "comfy.sd": S(
        _names(
            "load_lora_for_models load_clip load_unet load_diffusion_model load_diffusion_model_state_dict "
            "load_unet_state_dict load_checkpoint load_style_model load_gligen load_text_encoder_state_dicts "
            "load_state_dict_guess_config save_checkpoint"
        ),
        _names("StyleModel CLIPType TEModel"),
    ),
    "comfy.sample": S(_names("sample_custom prepare_mask get_models_from_cond convert_cond cleanup_additional_models")),
    "comfy.model_patcher": S(
        _names("set_model_options_patch_replace set_model_options_post_cfg_function wipe_lowvram_weight"),
        _names("LowVramPatch PatcherInjection"),
    ),
    "comfy.k_diffusion.sampling": S(
        _names(
            "sample_dpm_fast sample_dpm_adaptive sample_dpmpp_2s_ancestral sample_dpmpp_3m_sde sample_ipndm "
            "sample_deis sample_heunpp2 sample_euler_cfg_pp sample_euler_ancestral_cfg_pp sample_dpmpp_2m_cfg_pp "
            "sample_res_multistep sample_gradient_estimation sample_er_sde sample_seeds_2 sample_seeds_3"
        ),
        _names("BatchedBrownianTree DPMSolver PIDStepSizeController"),
    ),
    "comfy.k_diffusion.utils": S(classes=_names("FolderOfImages EMAWarmup")),
    "comfy.k_diffusion.external": S(
        classes=_names("DiscreteSchedule DiscreteEpsDDPMDenoiser CompVisDenoiser CompVisVDenoiser")
    ),
    "comfy.ldm.util": S(_names("instantiate_from_config get_obj_from_str default exists count_params")),
    "comfy.ldm.modules.attention": S(
        _names("attention_xformers attention_sage attention_flash get_attention_function Normalize"),
        _names("CrossAttention BasicTransformerBlock SpatialTransformer SpatialVideoTransformer FeedForward GEGLU"),
    ),
    "comfy.ldm.common_dit": S(_names("pad_to_patch_size rms_norm")),
    "comfy.quant_ops": S(classes=_names("QuantizedTensor")),
    "comfy.ldm.modules.diffusionmodules.mmdit": S(classes=_names("MMDiT JointBlock PatchEmbed TimestepEmbedder")),
    "comfy.ldm.modules.diffusionmodules": S(package=True),
    "comfy.ldm.modules.diffusionmodules.openaimodel": S(
        _names("forward_timestep_embed apply_control timestep_embedding"),
        _names("UNetModel TimestepBlock TimestepEmbedSequential ResBlock Downsample Upsample VideoResBlock"),
    ),
    "comfy.ldm.modules.diffusionmodules.util": S(
        _names("timestep_embedding zero_module make_beta_schedule checkpoint conv_nd linear avg_pool_nd"),
        _names("AlphaBlender"),
    ),
    "comfy.ldm.modules.diffusionmodules.model": S(
        _names("nonlinearity Normalize vae_attention"), _names("Encoder Decoder ResnetBlock AttnBlock Model")
    ),
    "comfy.ldm.modules.sub_quadratic_attention": S(_names("efficient_dot_product_attention")),
    "comfy.ldm.modules.distributions": S(package=True),
    "comfy.ldm.modules.distributions.distributions": S(classes=_names("DiagonalGaussianDistribution")),
    "comfy.ldm.modules.encoders": S(package=True),
    "comfy.ldm.modules.encoders.noise_aug_modules": S(classes=_names("CLIPEmbeddingNoiseAugmentation")),
    "comfy.ldm.models": S(package=True),
    "comfy.ldm.models.autoencoder": S(classes=_names("AutoencoderKL AutoencodingEngine AbstractAutoencoder")),
    "comfy.ldm.flux": S(package=True),
    "comfy.ldm.flux.layers": S(
        _names("timestep_embedding"), _names("DoubleStreamBlock SingleStreamBlock EmbedND MLPEmbedder LastLayer")
    ),
    "comfy.ldm.flux.model": S(classes=_names("Flux FluxParams")),
    "comfy.ldm.flux.math": S(_names("attention rope apply_rope")),
    "comfy.model_base": S(
        _names("model_sampling convert_tensor"),
        _names(
            "BaseModel SD21UNCLIP SDXL SDXLRefiner SVD_img2vid SD3 Flux StableCascade_C StableCascade_B "
            "SDXL_instructpix2pix SD15_instructpix2pix AuraFlow HunyuanDiT HunyuanVideo WAN21 LTXV Lumina2 "
            "IP2P StableAudio1 GenmoMochi PixArt"
        ),
    ),
    "comfy.model_sampling": S(
        _names("rescale_zero_terminal_snr_sigmas time_snr_shift flux_time_shift"),
        _names(
            "EPS V_PREDICTION EDM X0 IMG_TO_IMG CONST ModelSamplingDiscrete ModelSamplingContinuousEDM "
            "ModelSamplingContinuousV ModelSamplingDiscreteFlow ModelSamplingFlux StableCascadeSampling"
        ),
    ),
    "comfy.model_detection": S(_names("detect_unet_config model_config_from_unet unet_config_from_diffusers_unet")),
    "comfy.supported_models": S(classes=_names("SD15 SD20 SDXL SDXLRefiner SD3 Flux SVD_img2vid")),
    "comfy.supported_models_base": S(classes=_names("BASE ClipTarget")),
    "comfy.controlnet": S(
        _names("load_controlnet load_t2i_adapter broadcast_image_to load_controlnet_state_dict controlnet_config"),
        _names("ControlBase ControlNet ControlLora T2IAdapter ControlLoraOps StrengthType"),
    ),
    "comfy.t2i_adapter": S(package=True),
    "comfy.t2i_adapter.adapter": S(classes=_names("Adapter Adapter_light StyleAdapter")),
    "comfy.cldm": S(package=True),
    "comfy.cldm.cldm": S(classes=_names("ControlNet ControlledUnetModel")),
    "comfy.cldm.mmdit": S(classes=_names("ControlNet")),
    "comfy.ldm.cascade": S(package=True),
    "comfy.ldm.cascade.controlnet": S(classes=_names("ControlNet")),
    "comfy.lora": S(
        _names(
            "load_lora model_lora_keys_clip model_lora_keys_unet calculate_weight weight_decompose pad_tensor_to_shape"
        )
    ),
    "comfy.lora_convert": S(_names("convert_lora")),
    "comfy.ops": S(_names("cast_to cast_to_input cast_bias_weight pick_operations"), _names("CastWeightBiasOp")),
    "comfy.sampler_helpers": S(
        _names(
            "convert_cond get_additional_models get_models_from_cond cleanup_additional_models prepare_sampling "
            "cleanup_models estimate_memory prepare_model_patcher"
        )
    ),
    "comfy.sdxl_clip": S(
        classes=_names("SDXLClipG SDXLClipGTokenizer SDXLTokenizer SDXLClipModel SDXLRefinerClipModel")
    ),
    "comfy.sd1_clip": S(
        _names("gen_empty_tokens token_weights parse_parentheses escape_important unescape_important load_embed"),
        _names("SDClipModel SDTokenizer SD1ClipModel SD1Tokenizer ClipTokenWeightEncoder"),
    ),
    "comfy.clip_vision": S(_names("load clip_preprocess load_clipvision_from_sd"), _names("ClipVisionModel Output")),
    "comfy.clip_model": S(classes=_names("CLIPTextModel CLIPVisionModelProjection CLIPAttention CLIPMLP")),
    "comfy.gligen": S(_names("load_gligen"), _names("Gligen")),
    "comfy.diffusers_load": S(_names("load_diffusers")),
    "comfy.conds": S(classes=_names("CONDRegular CONDNoiseShape CONDCrossAttn CONDConstant CONDList")),
    "comfy.hooks": S(
        _names("create_hook_lora create_hook_model_as_lora set_hooks_for_conditioning"),
        _names("Hook HookGroup HookKeyframe HookKeyframeGroup WeightHook EnumHookMode EnumHookType"),
    ),
    "comfy.patcher_extension": S(
        _names("add_wrapper_with_key get_all_wrappers"), _names("WrappersMP CallbacksMP WrapperExecutor")
    ),
    "comfy.taesd": S(package=True),
    "comfy.taesd.taesd": S(classes=_names("TAESD")),
    "comfy.checkpoint_pickle": S(classes=_names("Unpickler")),
    "comfy.float": S(_names("stochastic_rounding")),
    "comfy.rmsnorm": S(_names("rms_norm"), _names("RMSNorm")),
    # -- comfy_extras: node classes (a Loom built-in when Loom has one) and helper functions ---------------------
    "comfy_extras.nodes_custom_sampler": S(
        nodes=_names(
            "SamplerCustom SamplerCustomAdvanced KSamplerSelect BasicScheduler KarrasScheduler ExponentialScheduler "
            "PolyexponentialScheduler SDTurboScheduler BetaSamplingScheduler VPScheduler LaplaceScheduler "
            "SplitSigmas SplitSigmasDenoise FlipSigmas SetFirstSigma SamplerEulerAncestral SamplerDPMPP_2M_SDE "
            "SamplerDPMPP_SDE SamplerDPMPP_2S_Ancestral SamplerLMS SamplerDPMAdaptative SamplerEulerAncestralCFGPP "
            "RandomNoise DisableNoise CFGGuider BasicGuider DualCFGGuider AddNoise SamplingPercentToSigma"
        ),
        classes=_names("Noise_RandomNoise Noise_EmptyNoise Guider_Basic Guider_DualCFG"),
    ),
    "comfy_extras.nodes_upscale_model": S(nodes=_names("UpscaleModelLoader ImageUpscaleWithModel")),
    "comfy_extras.nodes_mask": S(
        _names("composite"),
        nodes=_names(
            "LatentCompositeMasked ImageCompositeMasked MaskToImage ImageToMask ImageColorToMask SolidMask "
            "InvertMask CropMask MaskComposite FeatherMask GrowMask ThresholdMask"
        ),
    ),
    "comfy_extras.chainner_models": S(package=True),
    "comfy_extras.chainner_models.model_loading": S(_names("load_state_dict")),
    "comfy_extras.nodes_model_advanced": S(
        nodes=_names(
            "ModelSamplingDiscrete ModelSamplingContinuousEDM ModelSamplingContinuousV ModelSamplingStableCascade "
            "ModelSamplingSD3 ModelSamplingAuraFlow ModelSamplingFlux RescaleCFG ModelComputeDtype"
        ),
        classes=_names("LCM X0 ModelSamplingDiscreteDistilled"),
    ),
    "comfy_extras.nodes_clip_sdxl": S(nodes=_names("CLIPTextEncodeSDXL CLIPTextEncodeSDXLRefiner")),
    "comfy_extras.nodes_images": S(
        nodes=_names(
            "ImageCrop RepeatImageBatch ImageFromBatch ImageAddNoise SaveAnimatedWEBP SaveAnimatedPNG ImageStitch "
            "ResizeAndPadImage GetImageSize ImageRotate ImageFlip"
        )
    ),
    "comfy_extras.nodes_post_processing": S(
        _names("gaussian_kernel"), nodes=_names("Blend Blur Quantize Sharpen ImageScaleToTotalPixels")
    ),
    "comfy_extras.nodes_compositing": S(
        _names("resize_mask"), nodes=_names("PorterDuffImageComposite SplitImageWithAlpha JoinImageWithAlpha")
    ),
    "comfy_extras.nodes_differential_diffusion": S(nodes=_names("DifferentialDiffusion")),
    "comfy_extras.nodes_freelunch": S(nodes=_names("FreeU FreeU_V2")),
    "comfy_extras.nodes_sag": S(nodes=_names("SelfAttentionGuidance")),
    "comfy_extras.nodes_pag": S(nodes=_names("PerturbedAttentionGuidance")),
    "comfy_extras.nodes_perpneg": S(nodes=_names("PerpNeg PerpNegGuider")),
    "comfy_extras.nodes_latent": S(
        _names("reshape_latent_to"),
        nodes=_names(
            "LatentAdd LatentSubtract LatentMultiply LatentInterpolate LatentBatch LatentBatchSeedBehavior "
            "LatentApplyOperation LatentApplyOperationCFG LatentOperationTonemapReinhard LatentOperationSharpen"
        ),
    ),
    "comfy_extras.nodes_model_merging": S(
        nodes=_names(
            "ModelMergeSimple ModelMergeBlocks ModelMergeSubtract ModelMergeAdd CLIPMergeSimple CLIPMergeSubtract "
            "CLIPMergeAdd CheckpointSave CLIPSave VAESave ModelSave"
        ),
        functions=_names("save_checkpoint"),
    ),
    "comfy_extras.nodes_flux": S(
        nodes=_names("CLIPTextEncodeFlux FluxGuidance FluxDisableGuidance FluxKontextImageScale")
    ),
    "comfy_extras.nodes_sd3": S(
        nodes=_names("TripleCLIPLoader EmptySD3LatentImage CLIPTextEncodeSD3 ControlNetApplySD3")
    ),
    "comfy_extras.nodes_cond": S(nodes=_names("CLIPTextEncodeControlnet T5TokenizerOptions")),
    "comfy_extras.nodes_morphology": S(nodes=_names("Morphology ImageRGBToYUV ImageYUVToRGB")),
    "comfy_extras.nodes_align_your_steps": S(_names("loglinear_interp"), nodes=_names("AlignYourStepsScheduler")),
    "comfy_extras.nodes_gits": S(_names("loglinear_interp"), nodes=_names("GITSScheduler")),
    "comfy_extras.nodes_ip2p": S(nodes=_names("InstructPixToPixConditioning")),
    "comfy_extras.nodes_rebatch": S(nodes=_names("LatentRebatch ImageRebatch")),
    "comfy_extras.nodes_hypertile": S(nodes=_names("HyperTile")),
    "comfy_extras.nodes_tomesd": S(nodes=_names("TomePatchModel")),
    "comfy_extras.nodes_canny": S(nodes=_names("Canny")),
    "comfy_extras.nodes_controlnet": S(nodes=_names("SetUnionControlNetType ControlNetInpaintingAliMamaApply")),
    "comfy_extras.nodes_video_model": S(
        nodes=_names(
            "ImageOnlyCheckpointLoader SVD_img2vid_Conditioning VideoLinearCFGGuidance VideoTriangleCFGGuidance"
        )
    ),
    "comfy_extras.nodes_stable_cascade": S(
        nodes=_names("StableCascade_EmptyLatentImage StableCascade_StageB_Conditioning")
    ),
    "comfy_extras.nodes_hooks": S(nodes=_names("CreateHookLora CreateHookModelAsLora SetClipHooks CombineHooks")),
    "comfy_extras.nodes_attention_multiply": S(nodes=_names("UNetSelfAttentionMultiply UNetCrossAttentionMultiply")),
    "comfy_extras.nodes_advanced_samplers": S(nodes=_names("SamplerLCMUpscale SamplerEulerCFGpp")),
    "comfy_extras.nodes_photomaker": S(nodes=_names("PhotoMakerLoader PhotoMakerEncode")),
    "comfy_extras.nodes_clip_vision": S(nodes=_names("CLIPVisionLoader CLIPVisionEncode")),
    "comfy_extras.nodes_primitive": S(nodes=_names("String StringMultiline Int Float Boolean")),
    "comfy_extras.nodes_webcam": S(nodes=_names("WebcamCapture")),
    "comfy_extras.nodes_audio": S(nodes=_names("SaveAudio PreviewAudio LoadAudio VAEEncodeAudio VAEDecodeAudio")),
    "comfy_extras.nodes_lt": S(nodes=_names("EmptyLTXVLatentVideo LTXVImgToVideo LTXVConditioning")),
    "comfy_extras.nodes_hunyuan": S(nodes=_names("EmptyHunyuanLatentVideo TextEncodeHunyuanVideo_ImageToVideo")),
    "comfy_extras.nodes_wan": S(nodes=_names("WanImageToVideo WanFunControlToVideo")),
    "comfy_extras.nodes_slg": S(nodes=_names("SkipLayerGuidanceDiT SkipLayerGuidanceSD3")),
    "comfy_extras.nodes_apg": S(nodes=_names("APG")),
    "comfy_extras.nodes_qwen": S(nodes=_names("TextEncodeQwenImageEdit TextEncodeQwenImageEditPlus")),
    "comfy_extras.nodes_edit_model": S(nodes=_names("ReferenceLatent")),
    "comfy_extras.nodes_context_windows": S(nodes=_names("ContextWindowsManual WanContextWindowsManual")),
    "comfy_extras.nodes_string": S(nodes=_names("StringConcatenate StringSubstring StringLength StringReplace")),
    "comfy_extras.nodes_model_downscale": S(nodes=_names("PatchModelAddDownscale")),
    "comfy_extras.nodes_torch_compile": S(nodes=_names("TorchCompileModel")),
    "comfy_extras.nodes_video": S(nodes=_names("SaveVideo SaveWEBM CreateVideo GetVideoComponents LoadVideo")),
    "comfy_extras.nodes_preview_any": S(nodes=_names("PreviewAny")),
    "comfy_extras.nodes_lora_extract": S(nodes=_names("LoraSave")),
    "comfy_extras.nodes_train": S(nodes=_names("TrainLoraNode LoraModelLoader")),
    "comfy_extras.nodes_mochi": S(nodes=_names("EmptyMochiLatentVideo")),
    "comfy_extras.nodes_cosmos": S(nodes=_names("EmptyCosmosLatentVideo CosmosImageToVideoLatent")),
    "comfy_extras.nodes_hidream": S(nodes=_names("QuadrupleCLIPLoader CLIPTextEncodeHiDream")),
    "comfy_extras.nodes_lumina2": S(nodes=_names("RenormCFG CLIPTextEncodeLumina2")),
    "comfy_extras.nodes_pixart": S(nodes=_names("CLIPTextEncodePixArtAlpha")),
    "comfy_extras.nodes_tcfg": S(nodes=_names("TCFG")),
    "comfy_extras.nodes_fresca": S(nodes=_names("FreSca")),
    "comfy_extras.nodes_mahiro": S(nodes=_names("Mahiro")),
    # -- the rest of the host ------------------------------------------------------------------------------------
    "execution": S(
        _names(
            "get_input_data get_output_data validate_inputs validate_prompt validate_node_input full_type_name "
            "format_value recursive_execute execute get_input_info _map_node_over_list merge_result_data "
            "get_outputs_summary"
        ),
        _names("PromptExecutor PromptQueue ExecutionResult IsChangedCache CacheType CacheSet ExecutionList"),
    ),
    "comfy_execution.caching": S(
        classes=_names("HierarchicalCache LRUCache CacheKeySetID CacheKeySetInputSignature DependencyAwareCache")
    ),
    "comfy_execution.validation": S(_names("validate_node_input")),
    "comfy_execution.progress": S(
        _names("get_progress_state reset_progress_state add_progress_handler"), _names("ProgressRegistry")
    ),
    "comfy_execution.utils": S(_names("get_executing_context"), _names("CurrentNodeContext")),
}

ROOTS = frozenset(name.partition(".")[0] for name in MODULES)


def declared(fullname: str) -> Surface | None:
    return MODULES.get(fullname)


def complete(namespace: dict[str, Any]) -> None:
    """Add the module's placeholders (from MODULES) to a shim module's namespace, keeping what it defines."""
    module = namespace["__name__"]
    surface = MODULES.get(module)
    if surface is None:
        return
    placeholder.fill(namespace, module, surface.functions, surface.classes)


def resolve(namespace: dict[str, Any], name: str) -> Any:
    """A module `__getattr__` for shims: its node classes, resolved on first use (the registry is complete only
    after the built-ins load); a submodule not imported yet (`import comfy; comfy.samplers.KSampler` works in
    the reference because its startup imported comfy.samplers); then the refusal naming what is missing."""
    module = namespace["__name__"]
    surface = MODULES.get(module)
    if surface is not None and name in surface.nodes:
        resolved = builtin_node(name) or placeholder.node_class(f"{module}.{name}")
        namespace[name] = resolved
        return resolved
    if "__path__" in namespace and not name.startswith("__"):
        try:
            return importlib.import_module(f"{module}.{name}")
        except ImportError as exc:
            if exc.name != f"{module}.{name}":
                raise
    refuse(module, name)


def builtin_node(class_type: str) -> type | None:
    """Loom's built-in node of that type as a protocol class (compat.nodes), when there is one."""
    host = bound()
    if host is None or host.registry is None or host.registry.source(class_type) != "builtin":
        return None
    from compat.nodes import host_attribute

    return host_attribute(class_type)
