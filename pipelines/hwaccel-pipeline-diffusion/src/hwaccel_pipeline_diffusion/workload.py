"""The diffusion workload: a short denoising run of a diffusers model or pipeline.

Three modes, chosen from the class the reference names:

* ``denoising-loop`` (``UNet2DConditionModel``, ``UNet2DModel``): inputs are seeded noise
  latents (and, for a conditional UNet, seeded ``encoder_hidden_states`` of ``seq_len``
  tokens), sized from the UNet config; ``forward`` runs a real diffusers scheduler for
  :data:`NUM_INFERENCE_STEPS` steps and returns the final ``latents`` and the last
  ``noise_pred``. A conditional UNet uses ``DDIMScheduler`` (deterministic), a pixel-space
  one ``DDPMScheduler`` with a seeded generator, configured as for the tiny builds
  (:data:`hwaccel_pipeline_diffusion.tiny.TINY_BUILDS`) unless a scheduler config sits next
  to the UNet folder (``../scheduler/scheduler_config.json``, as inside a pipeline).
* ``unconditional-pipeline`` (``DDPMPipeline``, ``DDIMPipeline``, any pipeline whose call
  takes ``batch_size`` and no prompt): the pipeline itself runs with a seeded generator and
  ``output_type="pt"`` and returns ``images``.
* ``text-to-image-pipeline`` (``StableDiffusionPipeline`` and others whose call takes a
  ``prompt``): fixed prompts plus seeded starting latents sized from the UNet config, output
  ``images`` of the size the UNet and VAE configs imply.

Real checkpoints load from their folder with ``local_files_only=True`` in fp32; ``tiny:``
ones are built by :mod:`hwaccel_pipeline_diffusion.tiny` from :data:`~hwaccel.kit.tiny.TINY_SEED`.
Every call reseeds its generator, so repeated calls (and a second load) give the same output.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import BaseWorkload

NUM_INFERENCE_STEPS = 4  # denoising steps per call: short, but a real multi-step schedule
LOOP, UNCONDITIONAL, TEXT_TO_IMAGE = ("denoising-loop", "unconditional-pipeline",
                                      "text-to-image-pipeline")
PROMPTS = (
    "a photograph of an astronaut riding a horse",
    "a watercolor painting of a lighthouse at dawn",
    "a red cube on a blue sphere, studio lighting",
    "a pixel-art fox in a snowy forest",
)
LOOP_CLASSES = ("UNet2DConditionModel", "UNet2DModel")
# Schedulers whose set_timesteps(n) gives exactly n timesteps (PNDM's PLMS warm-up adds one).
ONE_TIMESTEP_PER_STEP = ("DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler",
                         "EulerAncestralDiscreteScheduler", "LCMScheduler")
_DENOISERS = ("unet", "transformer", "prior")


def _size(config: dict[str, Any]) -> tuple[int, ...]:
    """The spatial size of a config's ``sample_size`` (an int or a list)."""
    size = config["sample_size"]
    return tuple(int(s) for s in size) if isinstance(size, (list, tuple)) else (int(size),) * 2


class DiffusionWorkload(BaseWorkload):
    """Workload of the ``diffusion`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    num_inference_steps = NUM_INFERENCE_STEPS

    # ---- what the reference is ------------------------------------------------------------

    @cached_property
    def class_name(self) -> str:
        """The diffusers class: the config's ``_class_name``, the tiny class or the hint."""
        name = next(iter(self.ref.architectures), None) or self.classification.model_class
        if not name:
            raise HwaccelError(f"{self.ref.spec!r} names no diffusers class")
        return name

    @cached_property
    def is_pipeline_folder(self) -> bool:
        """True when the reference is a folder with a ``model_index.json`` (a pipeline)."""
        return (self.ref.path is not None and self.ref.config is not None
                and not (Path(self.ref.path) / "config.json").is_file()
                and (Path(self.ref.path) / "model_index.json").is_file())

    @cached_property
    def components(self) -> dict[str, dict[str, Any]]:
        """Configs of the denoiser (``unet``/``transformer``) and ``vae``, as JSON dicts."""
        if self.ref.is_tiny:
            from hwaccel_pipeline_diffusion.tiny import TINY_BUILDS

            self._require_tiny_build()
            return TINY_BUILDS[self.class_name][0]
        if self.ref.config is None or self.ref.path is None:
            from hwaccel.errors import ModelReferenceError
            from hwaccel.kit.references import not_cached_message

            raise ModelReferenceError(not_cached_message(self.ref.spec))
        if not self.is_pipeline_folder:
            return {"unet": self.ref.config}
        found = {}
        for name in (*_DENOISERS, "vae"):
            config_file = Path(self.ref.path) / name / "config.json"
            if name in self.ref.config and config_file.is_file():
                found[name] = json.loads(config_file.read_text(encoding="utf-8"))
        return found

    @cached_property
    def unet_config(self) -> dict[str, Any] | None:
        """The UNet's config when the model is or has a UNet."""
        config = self.components.get("unet")
        return config if config and "sample_size" in config else None

    @cached_property
    def mode(self) -> str:
        """``denoising-loop``, ``unconditional-pipeline`` or ``text-to-image-pipeline``."""
        if self.ref.is_tiny:
            self._require_tiny_build()
        if not (self.ref.is_tiny or self.is_pipeline_folder) or self.class_name in LOOP_CLASSES:
            if self.class_name not in LOOP_CLASSES:
                raise HwaccelError(
                    f"the diffusion workload runs denoising loops of {', '.join(LOOP_CLASSES)} "
                    f"and pipelines; {self.class_name} is neither")
            return LOOP
        import diffusers

        cls = getattr(diffusers, self.class_name, None)
        params = inspect.signature(cls.__call__).parameters if cls is not None else {}
        if "prompt" in params:
            return TEXT_TO_IMAGE
        if "batch_size" in params:
            return UNCONDITIONAL
        raise HwaccelError(f"the diffusion workload cannot call {self.class_name}: it takes "
                           "neither a prompt nor a batch size")

    def _require_tiny_build(self) -> None:
        from hwaccel_pipeline_diffusion.tiny import TINY_BUILDS

        if self.class_name not in TINY_BUILDS:
            raise HwaccelError(f"no tiny build of diffusers class {self.class_name}; tiny "
                               f"builds exist for {', '.join(TINY_BUILDS)}")

    @property
    def conditional(self) -> bool:
        """True for a denoising loop over a text-conditioned UNet."""
        return self.mode == LOOP and self.class_name == "UNet2DConditionModel"

    @cached_property
    def scheduler(self) -> Any:
        """The scheduler of a denoising loop, the same for a UNet folder as for its tiny build
        (pipelines bring their own)."""
        import diffusers

        from hwaccel_pipeline_diffusion.tiny import TINY_BUILDS

        _, name, config = TINY_BUILDS[self.class_name]
        if not self.ref.is_tiny:
            sibling = Path(self.ref.path or ".").parent / "scheduler" / "scheduler_config.json"
            if sibling.is_file():
                config = json.loads(sibling.read_text(encoding="utf-8"))
        return getattr(diffusers, name).from_config(config)

    # ---- the Workload protocol ------------------------------------------------------------

    def prepare(self) -> None:
        """Import torch and diffusers, decide the mode, read configs (not load time)."""
        import diffusers
        import torch  # noqa: F401

        _ = self.components, self.mode
        if self.is_pipeline_folder:
            self._check_pipeline_folder()
        if self.mode == LOOP:
            _ = self.scheduler
        _ = getattr(diffusers, self.class_name)  # imports the class's modules

    def _check_pipeline_folder(self) -> None:
        """Raise a one-line error when the components ``model_index.json`` names are absent."""
        from hwaccel.errors import ModelReferenceError

        named = [key for key, value in (self.ref.config or {}).items()
                 if not key.startswith("_") and isinstance(value, list) and len(value) == 2
                 and all(value)]
        missing = [key for key in named if not (Path(self.ref.path or ".") / key).is_dir()]
        if not named or missing:
            raise ModelReferenceError(
                f"{self.ref.path} is not a complete diffusers pipeline: its model_index.json "
                + (f"names {', '.join(named)} but the folder lacks {', '.join(missing)}"
                   if named else "names no components"))

    def load_model(self) -> Any:
        """Return the model or pipeline on the CPU, fp32, eval mode (tiny ones seeded)."""
        import diffusers
        import torch

        self.prepare()
        torch.manual_seed(TINY_SEED)
        if self.ref.is_tiny:
            from hwaccel_pipeline_diffusion.tiny import build

            model = build(self.class_name)
        elif self.mode == LOOP:
            model = getattr(diffusers, self.class_name).from_pretrained(
                self.ref.path, local_files_only=True, dtype=torch.float32)
        else:
            model = diffusers.DiffusionPipeline.from_pretrained(
                self.ref.path, local_files_only=True, trust_remote_code=False,
                dtype=torch.float32)
        if self.mode == LOOP:
            return model.float().eval()
        model.set_progress_bar_config(disable=True)
        for component in model.components.values():
            if isinstance(component, torch.nn.Module):
                component.float().eval()
        return model

    def skeleton(self) -> Any:
        """The model, or a pipeline's networks as a ``ModuleDict``, built on the meta device."""
        import diffusers
        import torch

        self.prepare()
        with torch.device("meta"):
            if self.ref.is_tiny:
                from hwaccel_pipeline_diffusion.tiny import build

                built = build(self.class_name)
            elif self.mode == LOOP:
                return getattr(diffusers, self.class_name).from_config(self.ref.config)
            else:
                return self._pipeline_networks()
        if isinstance(built, torch.nn.Module):
            return built
        return torch.nn.ModuleDict({name: part for name, part in built.components.items()
                                    if isinstance(part, torch.nn.Module)})

    def _pipeline_networks(self) -> Any:
        """The networks a pipeline folder's ``model_index.json`` names, from their configs."""
        import importlib

        import torch
        from transformers import AutoConfig

        networks = {}
        for name, value in (self.ref.config or {}).items():
            if name.startswith("_") or not (isinstance(value, list) and len(value) == 2):
                continue
            library, class_name = value
            folder = Path(self.ref.path or ".") / name
            if library not in ("diffusers", "transformers") or \
                    not (folder / "config.json").is_file():
                continue
            cls = getattr(importlib.import_module(library), str(class_name), None)
            if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
                continue
            networks[name] = (cls.from_config(cls.load_config(folder)) if library == "diffusers"
                              else cls(AutoConfig.from_pretrained(folder, local_files_only=True)))
        return torch.nn.ModuleDict(networks)

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Seeded noise latents (and text states or prompts) sized from the configs.

        ``seq_len`` is the length of a conditional UNet's ``encoder_hidden_states``; text
        pipelines tokenize their prompts to their own text encoder's length.
        """
        import torch

        generator = torch.Generator().manual_seed(TINY_SEED)
        if self.mode == UNCONDITIONAL:
            return {"batch_size": batch_size, "seed": TINY_SEED}
        inputs: dict[str, Any] = {}
        if self.mode == TEXT_TO_IMAGE:
            inputs["prompt"] = [PROMPTS[i % len(PROMPTS)] for i in range(batch_size)]
            inputs["seed"] = TINY_SEED
        unet = self.unet_config
        if unet is not None:
            inputs["latents"] = torch.randn((batch_size, int(unet["in_channels"]), *_size(unet)),
                                            generator=generator)
        if self.conditional:
            if unet.get("addition_embed_type"):
                raise HwaccelError(f"a UNet with addition_embed_type "
                                   f"{unet['addition_embed_type']!r} needs added conditions "
                                   "the denoising loop does not build; use its pipeline")
            width = unet.get("encoder_hid_dim") or unet["cross_attention_dim"]
            width = width[0] if isinstance(width, (list, tuple)) else width
            inputs["encoder_hidden_states"] = torch.randn((batch_size, seq_len, int(width)),
                                                          generator=generator)
        return inputs

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """Denoise for :data:`NUM_INFERENCE_STEPS` steps; return the tensors by name."""
        import torch

        with torch.inference_mode():
            if self.mode == LOOP:
                return self._loop(model, inputs)
            generator = torch.Generator().manual_seed(inputs["seed"])
            options: dict[str, Any] = {"num_inference_steps": NUM_INFERENCE_STEPS,
                                       "generator": generator, "output_type": "pt"}
            if self.mode == UNCONDITIONAL:
                output = model(batch_size=inputs["batch_size"], **options)
            else:
                if "latents" in inputs:
                    height, width = self.image_size
                    options.update(latents=inputs["latents"], height=height, width=width)
                output = model(prompt=list(inputs["prompt"]), **options)
        return {"images": output.images}

    def _loop(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """The scheduler loop over a bare UNet."""
        import torch

        scheduler = self.scheduler
        latents = inputs["latents"] * scheduler.init_noise_sigma
        scheduler.set_timesteps(NUM_INFERENCE_STEPS, device=latents.device)
        generator = torch.Generator().manual_seed(TINY_SEED)
        condition = ({"encoder_hidden_states": inputs["encoder_hidden_states"]}
                     if self.conditional else {})
        noise_pred = latents
        for timestep in scheduler.timesteps:
            sample = scheduler.scale_model_input(latents, timestep)
            noise_pred = model(sample, timestep, **condition).sample
            latents = scheduler.step(noise_pred, timestep, latents,
                                     generator=generator).prev_sample
        return {"latents": latents, "noise_pred": noise_pred}

    @property
    def image_size(self) -> tuple[int, ...]:
        """Height and width of a text-to-image pipeline's images: latents x VAE scale."""
        vae = self.components.get("vae")
        if self.unet_config is None or not vae:
            raise HwaccelError(f"no UNet and VAE configs to size {self.class_name}'s images")
        scale = 2 ** (len(vae["block_out_channels"]) - 1)
        return tuple(side * scale for side in _size(self.unet_config))

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes the configs imply: latents and noise of the UNet, or the images."""
        unet = self.unet_config
        if self.mode == LOOP:
            batch = int(inputs["latents"].shape[0])
            return {"latents": (batch, int(unet["in_channels"]), *_size(unet)),
                    "noise_pred": (batch, int(unet["out_channels"]), *_size(unet))}
        if self.mode == UNCONDITIONAL:
            if unet is None:
                return {}
            return {"images": (int(inputs["batch_size"]), int(unet["in_channels"]),
                               *_size(unet))}
        if unet is None or "vae" not in self.components:
            return {}
        return {"images": (len(inputs["prompt"]), int(self.components["vae"]["out_channels"]),
                           *self.image_size)}

    # ---- for the generated tests ----------------------------------------------------------

    @property
    def output_name(self) -> str:
        """The name of the denoised output."""
        return "latents" if self.mode == LOOP else "images"

    def starting_noise(self, inputs: dict[str, Any]) -> Any | None:
        """The noise the run starts from (an unconditional pipeline's first seeded draw)."""
        import torch

        if "latents" in inputs:
            return inputs["latents"]
        if self.mode == UNCONDITIONAL and self.unet_config is not None:
            shape = (int(inputs["batch_size"]), int(self.unet_config["in_channels"]),
                     *_size(self.unet_config))
            return torch.randn(shape, generator=torch.Generator().manual_seed(inputs["seed"]))
        return None

    def _denoiser_and_scheduler(self, model: Any) -> tuple[Any, Any]:
        if self.mode == LOOP:
            return model, self.scheduler
        denoiser = next(getattr(model, n) for n in _DENOISERS if getattr(model, n, None))
        return denoiser, model.scheduler

    def count_steps(self, model: Any, inputs: dict[str, Any]) -> tuple[int, int]:
        """Run :meth:`forward` once; return (denoiser calls, scheduler steps) it made.

        A denoiser run by the workload's own loop is counted by calling it through a
        counter, so this holds for a model on any backend (a converted graph has no forward
        hooks); a diffusers pipeline's denoiser, a torch module inside it, by a forward hook.
        """
        denoiser, scheduler = self._denoiser_and_scheduler(model)
        calls = {"denoiser": 0, "scheduler": 0}

        def count_call(*_: Any) -> None:
            calls["denoiser"] += 1

        step = scheduler.step

        def counted_step(*args: Any, **kwargs: Any) -> Any:
            calls["scheduler"] += 1
            return step(*args, **kwargs)

        handle = None if self.mode == LOOP else denoiser.register_forward_hook(count_call)
        scheduler.step = counted_step
        try:
            self.forward(_CountedCalls(model, count_call) if handle is None else model, inputs)
        finally:
            if handle is not None:
                handle.remove()
            del scheduler.step
        return calls["denoiser"], calls["scheduler"]

    def expected_steps(self, model: Any) -> int:
        """Scheduler steps of one call: :data:`NUM_INFERENCE_STEPS` for schedulers that set
        one timestep per step, else the timesteps a fresh copy of the scheduler sets."""
        _, scheduler = self._denoiser_and_scheduler(model)
        if type(scheduler).__name__ in ONE_TIMESTEP_PER_STEP:
            return NUM_INFERENCE_STEPS
        fresh = type(scheduler).from_config(scheduler.config)
        fresh.set_timesteps(NUM_INFERENCE_STEPS)
        return len(fresh.timesteps)


class _CountedCalls:
    """A model called through a counter: ``on_call()`` before each call, every attribute
    the model's own."""

    def __init__(self, model: Any, on_call: Callable[[], None]):
        self._model = model
        self._on_call = on_call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._on_call()
        return self._model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)
