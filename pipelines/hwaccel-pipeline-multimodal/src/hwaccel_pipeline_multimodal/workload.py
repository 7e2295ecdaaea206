"""The multimodal workload: media and a text prompt into a vision-, video- or audio-language
model, a document question answerer or a visual question answerer.

The model class is the config's architecture, else the one the auto-model table of the
subfamily's tasks lists for the type. Which medium the prompt carries follows the model
class's ``input_modalities``: an image when it takes images, else a clip when it takes
video, else a recording when it takes audio (speech-language models), else text alone; a
model whose forward names none of the media tensors gets text alone too.

Inputs, per row of the batch, from :data:`~hwaccel.kit.tiny.TINY_SEED`:

* with a processor in the model's folder (real checkpoints): the folder's ``AutoProcessor``
  turns deterministic pictures (:func:`~hwaccel_pipeline_multimodal.pictures.image_array`)
  or waveforms and a prompt (the processor's chat template with one image or recording and
  :data:`TEXT` cut to ``seq_len`` words, else its placeholder token + text) into every input
  the model takes, so it also decides how many placeholder tokens the prompt holds
  (``input_source`` ``processor``);
* otherwise (``tiny:`` models) the media come from the model type's own preprocessor class
  with its defaults aligned to the config (:mod:`~hwaccel_pipeline_multimodal.pictures`,
  :mod:`~hwaccel_pipeline_multimodal.recordings`; ``input_source`` ``processor-class``), or,
  where this machine cannot build that class, are shaped from the config in the layout the
  model's encoder accepts (``synthetic``). The prompt is the BOS token, the medium's
  placeholder token once per feature the model's own encoder yields for that medium
  (:mod:`~hwaccel_pipeline_multimodal.prompts`) between the config's start and end tokens
  for it, then seeded text tokens, ``seq_len`` in all. Tensors the forward takes beside them
  follow its parameter names (:meth:`MultimodalWorkload._companions`). A streaming
  speech model whose forward takes none of the media, but whose own
  ``prepare_inputs_for_generation`` reads them (Kyutai's speech-to-text: the codec's audio
  codes enter beside each text token), gets a prompt of one token per frame of its audio
  codec and the forward inputs its ``generate`` prepares from that prompt and the recording
  for its first step; it is not asked to generate from them.

The extractive subfamilies take no placeholders: document question answering gets
``seq_len`` token ids with one word box each (``bbox``) and the page image where the model
reads it; visual question answering gets the question's ids and the image.

``forward`` returns the next-token ``logits`` (``batch``, prompt or decoder length, text
vocabulary) for the generative subfamily (a robot policy's: the velocity of its action
chunk, shaped as the ``noise`` it denoises), ``start_logits``/``end_logits`` (``batch``, text
length) for document QA and the answer ``logits`` (``batch``, labels) for VQA; lengths count
the tokens a model adds for pictures it reads beside the text
(:meth:`MultimodalWorkload.picture_tokens`). Real checkpoints load from their folder with
``trust_remote_code=False``, in fp32; ``tiny:`` models are built from their tiny config (with
the fixes of :mod:`~hwaccel_pipeline_multimodal.tiny_fixes`) from a fixed seed.
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import TransformersWorkload
from hwaccel_pipeline_multimodal import GENERATION, SUBFAMILY_TASKS
from hwaccel_pipeline_multimodal.config_values import find_int, text_config, token_id, vocab_size
from hwaccel_pipeline_multimodal.pictures import (
    declared_settings,
    image_processor,
    picture_size,
    pictures,
    synthetic_image_inputs,
    synthetic_video_inputs,
)
from hwaccel_pipeline_multimodal.prompts import (
    Placeholders,
    feature_method,
    features_per_item,
    free_token_id,
    mm_token_types,
    named_parameters,
    placeholders,
    prompt_ids,
    text_ids,
)
from hwaccel_pipeline_multimodal.recordings import audio_inputs
from hwaccel_pipeline_multimodal.tiny_fixes import adjust

TEXT = ("Describe this picture in one sentence and tell me which hardware should run this "
        "model: the quick brown fox jumps over the lazy dog while hwaccel measures instead "
        "of guessing")
DOCUMENT_QA = "document_question_answering"
VQA = "visual_question_answering"
MEDIA = ("image", "video", "audio")
"""The media a prompt may carry, in the order they are chosen."""
BOX_SCALE = 1000
"""Word boxes are ``(x0, y0, x1, y1)`` on LayoutLM's 0-1000 page grid."""
POSITION_MASK = "image_embeds_position_mask"
"""Kosmos-style models take the positions of the image features as a mask."""
IMAGE_COLUMNS = "image_attention_mask"
"""Idefics-style models take which pictures of its row each token attends to."""
CROSS_MASK = "cross_attention_mask"
"""Mllama-style models cross-attend the tiles of each picture, marked once in the prompt."""
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


class MultimodalWorkload(TransformersWorkload):
    """Workload of the ``multimodal`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    input_source = "synthetic"
    _added: frozenset[str] = frozenset()  # the companions make_inputs added last
    _streamed = False  # make_inputs took the forward's inputs from a generation step

    @property
    def subfamily(self) -> str:
        """The classification's subfamily (the generative one when none is set)."""
        return self.classification.subfamily or GENERATION

    @cached_property
    def text_config(self) -> Any:
        """The config of the language model that reads the prompt (or writes the answer)."""
        return text_config(self.config)

    @cached_property
    def model_class(self) -> Any:
        """The concrete class: the config's architecture, else the subfamily's task's."""
        import transformers
        from transformers.models.auto import modeling_auto

        own = self.architecture_class()
        if own is not None:
            return own
        model_type = self.ref.model_type or self.config.model_type
        for task in dict(SUBFAMILY_TASKS)[self.subfamily]:
            table = getattr(modeling_auto, f"MODEL_FOR_{task}_MAPPING_NAMES", {})
            name = table.get(model_type)
            if isinstance(name, (list, tuple)):
                name = name[0] if name else None
            if name and getattr(transformers, name, None) is not None:
                return getattr(transformers, name)
        raise HwaccelError(f"no transformers {self.subfamily} class for {model_type!r}")

    def tiny_config(self, keep: frozenset[str]) -> Any:
        """A candidate tiny config with the multimodal fixes of
        :mod:`hwaccel_pipeline_multimodal.tiny_fixes`."""
        from hwaccel.kit.tiny import tiny_config

        return tiny_config(self.ref.model_type or "", keep, adjust)

    @cached_property
    def medium(self) -> str | None:
        """The medium the prompt carries (see the module docstring), else ``None``."""
        modalities = getattr(self.model_class, "input_modalities", ("text",))
        modalities = (modalities,) if isinstance(modalities, str) else tuple(modalities)
        return next((medium for medium in MEDIA if medium in modalities), None)

    @cached_property
    def processor(self) -> Any | None:
        """The folder's processor (image processor or feature extractor + tokenizer)."""
        return self.folder_preprocessor("AutoProcessor", _PROCESSOR_FILES)

    @property
    def vocab_size(self) -> int:
        """The vocabulary of the text model (prompt ids and next-token logits)."""
        value = vocab_size(self.config)
        if value is None:
            raise HwaccelError(f"{self.config.model_type!r}: the config gives no vocab_size")
        return value

    @property
    def encoder_decoder(self) -> bool:
        """True when the text side is an encoder-decoder (it reads a decoder prompt)."""
        return any(getattr(scope, "is_encoder_decoder", False)
                   for scope in (self.config, self.text_config))

    @property
    def placeholder_id(self) -> int | None:
        """The token that stands for one feature of the medium in the prompt: the one the
        config names, else (a model told the positions by a mask) a free id; ``None`` for
        models that prepend or cross-attend their media instead."""
        if self.medium is None:
            return None
        found = token_id(self.config, self.medium, nested=True)
        if found is None and POSITION_MASK in self.forward_parameters:
            found = free_token_id(self.config, self.vocab_size)
        return found

    def placeholder_counts(self, inputs: dict[str, Any]) -> dict[int, int]:
        """How many times each row of ``inputs`` must hold each placeholder token: once per
        feature the model's encoder yields for the row's medium, counted by running it on
        the media of ``inputs`` (whoever made them)."""
        token = self.placeholder_id if self.subfamily == GENERATION else None
        if token is None:
            return {}
        rows = int(inputs["input_ids"].shape[0])
        media = dict(inputs)
        if "pixel_attention_mask" in self._added and media["pixel_values"].dim() == 5:
            media["pixel_values"] = media["pixel_values"].flatten(0, 1)  # as the encoder reads
        return {token: self._placeholders_per_item(media, rows)}

    def _placeholders_per_item(self, media: dict[str, Any], items: int) -> int:
        """Placeholders per image (recording): one per feature of the model's encoder, or
        one in all for a model that cross-attends its media (``cross_attention_mask``)."""
        if CROSS_MASK in self.forward_parameters:
            return 1
        return features_per_item(self._feature_model(), str(self.medium), media, items)

    @property
    def can_generate(self) -> bool:
        """True when the model class writes text with ``generate`` from the inputs made: not
        for a model whose generation alone reads the media (the inputs hold what its first
        step made of them, see :meth:`_generation_inputs`)."""
        check = getattr(self.model_class, "can_generate", None)
        return self.subfamily == GENERATION and bool(check and check()) and not self._streamed

    def prepare(self) -> None:
        """Import torch and the model class, read the config and the processor."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.processor

    def load_model(self) -> Any:
        """The model on the CPU in fp32 eval mode; kept (weakly) to count media features."""
        model = super().load_model()
        self._loaded = weakref.ref(model)
        return model

    def _feature_model(self) -> Any:
        """A model to count the features of the media with: the one :meth:`load_model` last
        returned while it lives, else the tiny model built again from its seed, else (a real
        checkpoint, whose weights counting needs not) the model on the meta device."""
        loaded = getattr(self, "_loaded", None)
        model = loaded() if loaded is not None else None
        if model is not None:
            return model
        if self.ref.is_tiny:
            return self.load_model()
        return self.skeleton()

    # ---- inputs -------------------------------------------------------------------------

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Media and prompts for ``batch_size`` rows (see the module docstring)."""
        if self.processor is not None:
            return self._processor_inputs(batch_size, seq_len)
        if self.subfamily == GENERATION:
            return self._generation_inputs(batch_size, seq_len)
        return self._extractive_inputs(batch_size, seq_len)

    def _media_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """The media tensors of ``batch_size`` rows from the type's preprocessor class, else
        shaped from the config (sets :attr:`input_source` accordingly), with the Q-Former's
        instruction where the model takes one."""
        extras = self._qformer_prompt(batch_size, seq_len) \
            if "qformer_input_ids" in self.forward_parameters else {}
        model = self._feature_model()
        if self.medium == "audio":
            media, made_by_class = audio_inputs(self.ref.model_type or self.config.model_type,
                                                self.config, model, batch_size,
                                                self.forward_parameters)
        elif self.medium == "video":
            media, made_by_class = synthetic_video_inputs(self.config, model, batch_size,
                                                          extras), False
        else:
            media, made_by_class = self._image_inputs(batch_size, extras)
        self.input_source = "processor-class" if made_by_class else "synthetic"
        return {**media, **extras}

    def _image_inputs(self, batch_size: int,
                      extras: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Pixel tensors of ``batch_size`` pictures and whether the type's image processor
        class made them (see :mod:`~hwaccel_pipeline_multimodal.pictures`)."""
        model = self._feature_model()
        model_type = self.ref.model_type or self.config.model_type
        processor = image_processor(model_type, self.config, model)
        if processor is not None:
            height, width = picture_size(self.config, processor)
            rows = [[picture] for picture in pictures(batch_size, height, width)]
            encoded = processor(images=rows, return_tensors="pt")
            if not hasattr(encoded, "items"):  # a processor that returns the pixels alone
                encoded = {"pixel_values": encoded}
            method = feature_method(model, "image")
            wanted = named_parameters(method) if method is not None else set(encoded)
            if wanted & set(encoded):
                return dict(encoded.items()), True
        settings = declared_settings(model_type, self.config)
        return synthetic_image_inputs(self.config, model, batch_size, extras, settings), False

    def _generation_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """The media, the prompt with its placeholders, and the tensors beside them; for a
        model whose generation alone reads the media (:meth:`_generation_media`), the inputs
        its first generation step gives the forward (:meth:`_first_generation_step`)."""
        inputs: dict[str, Any] = {}
        blocks: list[Placeholders] = []
        streamed: dict[str, Any] = {}
        if self.medium is not None:
            media = self._media_inputs(batch_size, seq_len)
            if not set(media) & self.forward_parameters:  # it names its media otherwise
                streamed, media = self._generation_media(media), {}
            placeholder = self.placeholder_id if media else None
            if placeholder is not None:
                count = self._placeholders_per_item(media, batch_size)
                blocks.append(placeholders(self.config, self.medium, count, placeholder))
            elif self.medium == "audio" and not self.encoder_decoder:
                # a streaming model adds one audio feature to each token of the prompt
                seq_len = features_per_item(self._feature_model(), "audio", media or streamed,
                                            batch_size)
            if "input_ids" in self.forward_parameters:  # the prompt's mask, not the media's
                media.pop("attention_mask", None)
            inputs.update(media)
        self._streamed = bool(streamed)
        ids = prompt_ids(self.config, self.vocab_size, batch_size, seq_len, blocks)
        inputs["input_ids"] = ids
        inputs.update(self._companions(ids, blocks, inputs, seq_len))
        if streamed:
            inputs.update(self._first_generation_step(ids, streamed))
        return {name: value for name, value in inputs.items()
                if name in self.forward_parameters}

    def _generation_media(self, media: dict[str, Any]) -> dict[str, Any]:
        """Of media the forward does not take, those the model's own
        ``prepare_inputs_for_generation`` names beyond transformers' generic one: a streaming
        model (Kyutai's speech-to-text) encodes them, step by step, into its forward's inputs
        (audio codes beside each text token)."""
        from transformers import GenerationMixin

        own = getattr(self.model_class, "prepare_inputs_for_generation", None)
        if own is None or own is GenerationMixin.prepare_inputs_for_generation:
            return {}
        names = named_parameters(own) - named_parameters(
            GenerationMixin.prepare_inputs_for_generation)
        return {name: value for name, value in media.items() if name in names}

    def _first_generation_step(self, ids: Any, media: dict[str, Any]) -> dict[str, Any]:
        """The tensors the forward names among the inputs the model's own ``generate``
        prepares for its first step from the prompt ``ids`` and ``media``: the step is
        stopped before its forward runs."""
        import torch

        captured: dict[str, Any] = {}

        def capture(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            captured.update(kwargs)
            raise _StepCaptured

        model = self._feature_model()
        handle = model.register_forward_pre_hook(capture, with_kwargs=True)
        try:
            with torch.inference_mode():
                model.generate(input_ids=ids, **media, max_new_tokens=1, do_sample=False)
        except _StepCaptured:
            pass
        finally:
            handle.remove()
        if not captured:
            raise HwaccelError(f"{type(model).__name__}.generate did not call its forward")
        return {name: value for name, value in captured.items()
                if torch.is_tensor(value) and name in self.forward_parameters}

    def _companions(self, ids: Any, blocks: list[Placeholders], given: dict[str, Any],
                    seq_len: int) -> dict[str, Any]:
        """Tensors the forward takes beside the prompt, by parameter name, unless the media
        already hold them:

        * ``attention_mask``: ones;
        * ``mm_token_type_ids`` / ``token_type_ids``: each placeholder's modality code;
          ``image_embeds_position_mask``: the placeholders' positions;
        * ``decoder_input_ids`` (encoder-decoders): ``seq_len`` ids from the decoder start;
        * ``bbox`` (document models): a word box per token;
        * ``cross_attention_mask`` (models that cross-attend the tiles of a picture): every
          tile, from the picture's placeholder on;
        * ``image_attention_mask`` (models that cross-attend the pictures of their row):
          every token sees every picture, and the pictures move to an axis of their own;
        * ``pixel_attention_mask`` the media lack (models that take several pictures per
          row): one real picture per row, on an axis of its own;
        * a robot policy's state, noise and timestep (:meth:`_policy_inputs`).
        """
        import torch

        out: dict[str, Any] = {}
        wanted = self.forward_parameters - set(given)
        if "attention_mask" in wanted:
            out["attention_mask"] = torch.ones_like(ids)
        for name in ("mm_token_type_ids", "token_type_ids"):
            if name in wanted:
                out[name] = mm_token_types(ids, blocks)
        if POSITION_MASK in wanted:
            out[POSITION_MASK] = (mm_token_types(ids, blocks) > 0).long()
        if "decoder_input_ids" in wanted and self.encoder_decoder:
            out["decoder_input_ids"] = self._decoder_ids(int(ids.shape[0]), seq_len)
        if "bbox" in wanted:  # a document model reads a box per token
            out["bbox"] = word_boxes(int(ids.shape[0]), int(ids.shape[1]))
        if CROSS_MASK in wanted:  # every tile of the picture, from its placeholder on
            seen = (mm_token_types(ids, blocks).cumsum(dim=1) > 0).long()
            tiles = given.get("aspect_ratio_mask")
            tiles = torch.ones(ids.shape[0], 1, 1) if tiles is None else tiles
            out[CROSS_MASK] = seen[:, :, None, None] * tiles[:, None].long()
        out.update(self._policy_inputs(int(ids.shape[0]), wanted))
        pixels = given.get("pixel_values")
        if "pixel_attention_mask" in wanted and pixels is not None and pixels.dim() == 4:
            out["pixel_values"] = pixels.unsqueeze(1)  # one real picture per row
            out["pixel_attention_mask"] = torch.ones(pixels.shape[0], 1, dtype=torch.bool)
        self._added = frozenset(out)
        if IMAGE_COLUMNS in wanted and pixels is not None and \
                "pixel_values" in self.forward_parameters:
            if pixels.dim() == 4:  # one picture per row, on an axis of pictures per row
                out["pixel_values"] = pixels.unsqueeze(1)
            images = int(out.get("pixel_values", pixels).shape[1])
            out[IMAGE_COLUMNS] = torch.ones(*ids.shape, images, dtype=torch.long)
        return out

    def _policy_inputs(self, rows: int, wanted: set[str] | frozenset[str]) -> dict[str, Any]:
        """What a flow-matching robot policy reads beside its prompt: the robot ``state``
        (``max_state_dim`` seeded values), the ``noise`` of the action chunk to denoise
        (``chunk_size`` by ``max_action_dim``) and the denoising ``timestep`` (0.5), by
        parameter name."""
        import torch

        generator = torch.Generator().manual_seed(TINY_SEED)
        out: dict[str, Any] = {}
        state = find_int(self.config, "max_state_dim")
        if "state" in wanted and state is not None:
            out["state"] = torch.randn(rows, state, generator=generator)
        chunk = find_int(self.config, "chunk_size")
        action = find_int(self.config, "max_action_dim")
        if "noise" in wanted and chunk is not None and action is not None:
            out["noise"] = torch.randn(rows, chunk, action, generator=generator)
        if "timestep" in wanted:
            out["timestep"] = torch.full((rows,), 0.5)
        return out

    def _qformer_prompt(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """The instruction a Q-Former reads beside the image (InstructBLIP): seeded ids of
        its own vocabulary and their mask."""
        import torch

        qformer = getattr(self.config, "qformer_config", None)
        vocab = getattr(qformer, "vocab_size", None) or self.vocab_size
        ids = text_ids(qformer or self.config, int(vocab), batch_size, seq_len)
        return {"qformer_input_ids": ids, "qformer_attention_mask": torch.ones_like(ids)}

    def _decoder_ids(self, rows: int, length: int) -> Any:
        """Decoder prompt ids: the decoder start token, then seeded text ids."""
        ids = text_ids(self.config, self.vocab_size, rows, length)
        start = token_id(self.config, "decoder_start", "bos", "pad")
        ids[:, 0] = start if start is not None and start < self.vocab_size else 0
        return ids

    def _extractive_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Question ids (with one word box each where the model reads boxes) and the image
        where it reads one."""
        import torch

        length = seq_len
        limit = find_int(self.text_config, "max_position_embeddings")
        if limit is not None:
            length = min(length, limit - 2)
        ids = text_ids(self.config, self.vocab_size, batch_size, length)
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if "token_type_ids" in self.forward_parameters:
            inputs["token_type_ids"] = torch.zeros_like(ids)
        if "bbox" in self.forward_parameters:
            inputs["bbox"] = word_boxes(batch_size, length)
        if self.medium == "image":
            media = self._media_inputs(batch_size, seq_len)
            if "image" in self.forward_parameters and "pixel_values" in media:
                media["image"] = media.pop("pixel_values")
            inputs.update(media)
        return {name: value for name, value in inputs.items()
                if name in self.forward_parameters}

    def prompt(self, seq_len: int) -> str:
        """The folder processor's prompt with one medium: its chat template's, else its
        placeholder token + text."""
        words = TEXT.split()
        text = " ".join(words[i % len(words)] for i in range(max(seq_len, 1)))
        processor = self.processor
        medium = self.medium or "text"
        if getattr(processor, "chat_template", None):
            content = [{"type": medium}] if medium != "text" else []
            messages = [{"role": "user", "content": content + [{"type": "text", "text": text}]}]
            return processor.apply_chat_template(messages, add_generation_prompt=True,
                                                 tokenize=False)
        token = getattr(processor, f"{medium}_token", None)
        return f"{token}\n{text}" if token else text

    def _processor_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Inputs made by the folder's processor (real checkpoints)."""
        from hwaccel_pipeline_audio.workload import waveforms

        media: dict[str, Any] = {}
        if self.medium == "image":
            images = getattr(self.processor, "image_processor", self.processor)
            height, width = picture_size(self.config, images)
            media["images"] = pictures(batch_size, height, width)
        elif self.medium == "audio":
            extractor = getattr(self.processor, "feature_extractor", self.processor)
            rate = int(getattr(extractor, "sampling_rate", 16000))
            media["audio"] = waveforms(batch_size, rate, rate)
        encoded = self.processor(text=[self.prompt(seq_len)] * batch_size, return_tensors="pt",
                                 padding=True, **media)
        self.input_source = "processor"
        return {name: value for name, value in encoded.items()
                if name in self.forward_parameters}

    # ---- the call -----------------------------------------------------------------------

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass without a KV cache; returns the subfamily's outputs (see the
        module docstring)."""
        import torch

        extra = {"use_cache": False} if "use_cache" in self.forward_parameters else {}
        with torch.inference_mode():
            outputs = model(**inputs, **extra)
        if self.subfamily == DOCUMENT_QA:
            return {"start_logits": outputs.start_logits, "end_logits": outputs.end_logits}
        return {"logits": outputs.logits}

    def output_length(self, inputs: dict[str, Any]) -> int:
        """The length of the logits: the decoder prompt's for an encoder-decoder, else the
        prompt's with the :meth:`picture_tokens` the model adds."""
        if "decoder_input_ids" in inputs:
            return int(inputs["decoder_input_ids"].shape[1])
        return int(inputs["input_ids"].shape[1]) + self.picture_tokens(inputs)

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The subfamily's output shapes (see the module docstring)."""
        ids = inputs.get("input_ids", inputs.get("decoder_input_ids"))
        batch = int(ids.shape[0])
        if self.subfamily == DOCUMENT_QA:
            length = int(inputs["input_ids"].shape[1]) + self.picture_tokens(inputs)
            return {"start_logits": (batch, length), "end_logits": (batch, length)}
        if self.subfamily == VQA:
            return {"logits": (batch, int(self.config.num_labels))}
        if "noise" in inputs:  # a policy predicts the velocity of its action chunk
            return {"logits": tuple(int(n) for n in inputs["noise"].shape)}
        return {"logits": (batch, self.output_length(inputs), self.vocab_size)}

    def picture_tokens(self, inputs: dict[str, Any]) -> int:
        """Tokens the model adds to the text's sequence for the pictures it reads beside the
        prompt rather than at placeholders (a document model's page, GIT's image): one per
        patch and a class token. 0 for models that place media at placeholders, cross-attend
        them or encode them apart (encoder-decoders)."""
        pixels = inputs.get("pixel_values")
        patch = find_int(self.config, "patch_size")
        beside = self.subfamily == DOCUMENT_QA or (
            self.subfamily == GENERATION and self.placeholder_id is None
            and not self.encoder_decoder
            and not {CROSS_MASK, IMAGE_COLUMNS} & self.forward_parameters)
        if pixels is None or patch is None or not beside:
            return 0
        height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
        return (height // patch) * (width // patch) + 1

    def generate(self, model: Any, inputs: dict[str, Any], new_tokens: int,
                 **extra: Any) -> Any:
        """Greedy generation of exactly ``new_tokens`` tokens per row after the prompt;
        ``extra`` goes to the model's ``generate`` as it is (a ``streamer``)."""
        import torch

        options = dict(extra)
        for key in ("pad_token_id", "eos_token_id"):
            value = getattr(self.text_config, key, None)
            if isinstance(value, int):
                options["pad_token_id"] = value
                break
        with torch.inference_mode():
            return model.generate(**inputs, max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, do_sample=False, **options)

    def generated_length(self, inputs: dict[str, Any], new_tokens: int) -> int:
        """The sequence length :meth:`generate` returns: the (decoder) prompt, then the new
        tokens."""
        ids = inputs.get("decoder_input_ids", inputs.get("input_ids"))
        return int(ids.shape[1]) + new_tokens


class _StepCaptured(Exception):
    """Stops ``generate`` once its first step's forward inputs are captured."""


def word_boxes(rows: int, length: int) -> Any:
    """``(rows, length, 4)`` word boxes ``(x0, y0, x1, y1)`` on the 0-1000 page grid: the
    words of a line of text left to right, a new line every eight words."""
    import torch

    index = torch.arange(length)
    column, line = index % 8, index // 8
    x0 = column * (BOX_SCALE // 8)
    y0 = (line * 40) % (BOX_SCALE - 40)
    boxes = torch.stack([x0, y0, x0 + BOX_SCALE // 10, y0 + 30], dim=-1)
    return boxes.clamp(0, BOX_SCALE).unsqueeze(0).expand(rows, -1, -1).clone()
