"""Tiny diffusers builds for ``tiny:<ClassName>``: real diffusers classes, a few KB of weights.

Sizes follow the core's tiny transformers configs (:mod:`hwaccel.kit.tiny`): width
``TINY_HIDDEN`` (32) doubling once per level for ``TINY_LAYERS`` (2) resolution levels,
``TINY_HEADS`` (4) attention heads, one ResNet layer per block. Latents are 4 channels of
``LATENT_SIZE`` x ``LATENT_SIZE`` (the Stable Diffusion latent layout), pixel-space models
make 3-channel ``IMAGE_SIZE`` images. Weights are random from :data:`hwaccel.kit.tiny.TINY_SEED`
(the caller seeds torch before building), so two builds are identical.

Supported classes: ``UNet2DConditionModel``, ``UNet2DModel``, ``DDPMPipeline``,
``DDIMPipeline`` and ``StableDiffusionPipeline`` (tiny UNet, tiny ``AutoencoderKL``, tiny
CLIP text model and a character-level tokenizer built in code).
"""

from __future__ import annotations

import string
from typing import Any

from hwaccel.kit.tiny import TINY_HEADS, TINY_HIDDEN, TINY_INTERMEDIATE, TINY_LAYERS

LATENT_CHANNELS = 4
IMAGE_CHANNELS = 3
LATENT_SIZE = 8
IMAGE_SIZE = 16
LAYERS_PER_BLOCK = 1
NORM_GROUPS = 8  # divides every block width
CLIP_MAX_LENGTH = 77  # CLIP's text length; every prompt of the workload fits
_WIDTHS = [TINY_HIDDEN * 2 ** level for level in range(TINY_LAYERS)]
_SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>", "<unk>")
TOKENIZER_VOCAB = (*_SPECIAL_TOKENS,
                   *sorted(set(string.ascii_lowercase + string.digits + string.punctuation)))

UNET_CONDITION: dict[str, Any] = {
    "sample_size": LATENT_SIZE, "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS, "layers_per_block": LAYERS_PER_BLOCK,
    "block_out_channels": _WIDTHS, "norm_num_groups": NORM_GROUPS,
    "down_block_types": ["CrossAttnDownBlock2D"] * (TINY_LAYERS - 1) + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (TINY_LAYERS - 1),
    "cross_attention_dim": TINY_HIDDEN,
    # UNet2DConditionModel reads attention_head_dim as the number of heads (diffusers#2011)
    "attention_head_dim": TINY_HEADS,
}
UNET_PIXEL: dict[str, Any] = {
    "sample_size": IMAGE_SIZE, "in_channels": IMAGE_CHANNELS, "out_channels": IMAGE_CHANNELS,
    "layers_per_block": LAYERS_PER_BLOCK, "block_out_channels": _WIDTHS,
    "norm_num_groups": NORM_GROUPS,
    "down_block_types": ["DownBlock2D"] + ["AttnDownBlock2D"] * (TINY_LAYERS - 1),
    "up_block_types": ["AttnUpBlock2D"] * (TINY_LAYERS - 1) + ["UpBlock2D"],
    "attention_head_dim": TINY_HIDDEN // TINY_HEADS,
}
VAE: dict[str, Any] = {
    "in_channels": IMAGE_CHANNELS, "out_channels": IMAGE_CHANNELS,
    "latent_channels": LATENT_CHANNELS, "block_out_channels": _WIDTHS,
    "down_block_types": ["DownEncoderBlock2D"] * TINY_LAYERS,
    "up_block_types": ["UpDecoderBlock2D"] * TINY_LAYERS,
    "layers_per_block": LAYERS_PER_BLOCK, "norm_num_groups": NORM_GROUPS,
    "sample_size": LATENT_SIZE * 2 ** (TINY_LAYERS - 1),
}
# DDIM with Stable Diffusion's step offset and no sample clipping (diffusers' defaults else).
DDIM_SCHEDULER: dict[str, Any] = {"steps_offset": 1, "clip_sample": False}

# class name -> (component configs, scheduler class, scheduler config); the workload's
# denoising loop over a real UNet folder uses the same scheduler as the tiny build.
TINY_BUILDS: dict[str, tuple[dict[str, dict[str, Any]], str, dict[str, Any]]] = {
    "UNet2DConditionModel": ({"unet": UNET_CONDITION}, "DDIMScheduler", DDIM_SCHEDULER),
    "UNet2DModel": ({"unet": UNET_PIXEL}, "DDPMScheduler", {}),
    "DDPMPipeline": ({"unet": UNET_PIXEL}, "DDPMScheduler", {}),
    "DDIMPipeline": ({"unet": UNET_PIXEL}, "DDIMScheduler", DDIM_SCHEDULER),
    "StableDiffusionPipeline": ({"unet": UNET_CONDITION, "vae": VAE}, "DDIMScheduler",
                                DDIM_SCHEDULER),
}


def tokenizer() -> Any:
    """A character-level CLIP-style tokenizer (lower-case, start and end tokens), in code."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(TOKENIZER_VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"\S"), behavior="isolated")
    bos, eos = _SPECIAL_TOKENS[:2]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos,
                                   pad_token=eos, unk_token="<unk>",
                                   model_max_length=CLIP_MAX_LENGTH)


def text_encoder() -> Any:
    """A tiny CLIP text model over :data:`TOKENIZER_VOCAB`."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        hidden_size=TINY_HIDDEN, intermediate_size=TINY_INTERMEDIATE,
        num_hidden_layers=TINY_LAYERS, num_attention_heads=TINY_HEADS,
        projection_dim=TINY_HIDDEN, vocab_size=len(TOKENIZER_VOCAB),
        max_position_embeddings=CLIP_MAX_LENGTH,
        bos_token_id=TOKENIZER_VOCAB.index(_SPECIAL_TOKENS[0]),
        eos_token_id=TOKENIZER_VOCAB.index(_SPECIAL_TOKENS[1]),
        pad_token_id=TOKENIZER_VOCAB.index(_SPECIAL_TOKENS[1]))
    return CLIPTextModel(config)


def build(class_name: str) -> Any:
    """Build the tiny model or pipeline ``class_name`` (seed torch before calling)."""
    import diffusers

    components, scheduler_class, scheduler_config = TINY_BUILDS[class_name]
    cls = getattr(diffusers, class_name)
    if class_name.startswith("UNet"):
        return cls.from_config(components["unet"])
    scheduler = getattr(diffusers, scheduler_class).from_config(scheduler_config)
    unet_class = (diffusers.UNet2DConditionModel if "vae" in components
                  else diffusers.UNet2DModel)
    unet = unet_class.from_config(components["unet"])
    if "vae" not in components:
        return cls(unet=unet, scheduler=scheduler)
    vae = diffusers.AutoencoderKL.from_config(components["vae"])
    return cls(vae=vae, text_encoder=text_encoder(), tokenizer=tokenizer(), unet=unet,
               scheduler=scheduler, safety_checker=None, feature_extractor=None,
               requires_safety_checker=False)
