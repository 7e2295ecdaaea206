"""The audio workload: a deterministic waveform turned into what a speech/audio model takes.

The waveform is a seeded sum of tones plus a little Gaussian noise (:func:`waveforms`), at
the sampling rate of the model's feature extractor (else its config). Its length:

* for models with a convolutional feature encoder over raw samples (wav2vec2, HuBERT, WavLM,
  ...: ``conv_kernel``/``conv_stride`` in the config), ``seq_len`` is the number of encoder
  frames the waveform must produce: ``receptive field + (seq_len - 1) * total stride``
  samples (for wav2vec2 a frame is 20 ms of 16 kHz audio: ``seq_len=50`` is 16,080
  samples, about one second);
* otherwise the waveform is one second long; a feature extractor that works on fixed windows
  (Whisper's 30 s) pads it as it would any recording.

The feature extractor then makes the model's inputs: raw ``input_values`` (wav2vec2-style) or
log-mel ``input_features`` (Whisper-style). It is the folder's own for real checkpoints and,
for ``tiny:`` models, the default one of the model type with the config's sizes
(``num_mel_bins``, ``sampling_rate``). Sequence-to-sequence models also get
``decoder_input_ids``: the decoder start token, then seeded token ids, ``seq_len`` in all
(capped at ``max_target_positions``). Speech-synthesis models take ``seq_len`` seeded token
ids (the tokenizer's encoding of a sentence when the folder ships one).

Real checkpoints load from their folder with the class their config names, in fp32, with
``trust_remote_code=False`` and nothing fetched remotely; ``tiny:`` models are built from the
tiny config with the task head their subfamily implies, from a fixed seed.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.models import TINY_SEED
from hwaccel.workloads import TransformersWorkload
from hwaccel_pipeline_audio import SUBFAMILY_TASKS

TONES_HZ = (220.0, 330.0, 440.0, 660.0)  # row i sounds these, each raised by i semitones
NOISE_STD = 0.01
TEXT = "Which hardware should this model run on? hwaccel measures instead of guessing."
# every auto-model task an audio model's class may answer, in the order heads are looked up
HEADS = tuple(task for _, tasks in SUBFAMILY_TASKS for task in tasks)
_PREPROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt")


def waveforms(batch_size: int, num_samples: int, sampling_rate: int) -> list[Any]:
    """Return ``batch_size`` deterministic float32 waveforms of ``num_samples`` samples.

    Row ``i`` is the sum of :data:`TONES_HZ` raised by ``i`` semitones (kept below the Nyquist
    frequency), with seeded phases, scaled to a peak near 0.5, plus Gaussian noise of
    standard deviation :data:`NOISE_STD`, all from :data:`TINY_SEED`.
    """
    import numpy as np

    rng = np.random.default_rng(TINY_SEED)
    t = np.arange(num_samples, dtype=np.float64) / sampling_rate
    rows = []
    for i in range(batch_size):
        wave = np.zeros(num_samples)
        for tone in TONES_HZ:
            freq = tone * 2.0 ** (i / 12.0)
            if freq < sampling_rate / 2:
                wave += np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        wave *= 0.5 / len(TONES_HZ)
        wave += rng.normal(0.0, NOISE_STD, num_samples)
        rows.append(wave.astype(np.float32))
    return rows


def conv_output_length(length: int, kernels: list[int], strides: list[int]) -> int:
    """Frames a stack of unpadded 1-D convolutions makes of ``length`` samples."""
    for kernel, stride in zip(kernels, strides, strict=True):
        length = (length - kernel) // stride + 1
    return length


def conv_input_length(frames: int, kernels: list[int], strides: list[int]) -> int:
    """The fewest samples a stack of unpadded 1-D convolutions turns into ``frames`` frames."""
    receptive, hop = 1, 1
    for kernel, stride in zip(reversed(kernels), reversed(strides), strict=True):
        receptive = (receptive - 1) * stride + kernel
        hop *= stride
    return receptive + (frames - 1) * hop


class AudioWorkload(TransformersWorkload):
    """Workload of the ``audio`` pipeline (see :class:`hwaccel.workloads.Workload`)."""

    @cached_property
    def model_class(self) -> Any:
        """The concrete class: the config's architecture, else the subfamily's first task's."""
        import transformers

        own = self.architecture_class()
        if own is not None:
            return own
        wanted = dict(SUBFAMILY_TASKS).get(self.classification.subfamily or "", HEADS)
        for task in wanted:
            name = self._table(task).get(self.config.model_type)
            if name and getattr(transformers, name, None) is not None:
                return getattr(transformers, name)
        raise HwaccelError(f"no transformers class for {self.config.model_type!r} in the "
                           f"tasks {', '.join(wanted)}")

    @staticmethod
    def _table(task: str) -> dict[str, str]:
        """The auto-model table of ``task`` as model type -> class name."""
        from transformers.models.auto import modeling_auto

        table = getattr(modeling_auto, f"MODEL_FOR_{task}_MAPPING_NAMES", {})
        return {key: value if isinstance(value, str) else value[0]
                for key, value in table.items() if value}

    @cached_property
    def head(self) -> str:
        """The auto-model task the model class answers (``CTC``, ...), else ``BASE``."""
        name = self.model_class.__name__
        for task in HEADS:
            if self._table(task).get(self.config.model_type) == name:
                return task
        return "BASE"

    @property
    def generative(self) -> bool:
        """True for sequence-to-sequence speech recognisers (they take decoder inputs)."""
        return self.head == "SPEECH_SEQ_2_SEQ"

    @cached_property
    def whisper_style(self) -> bool:
        """True for models whose ``generate`` returns only the new tokens (Whisper's)."""
        from transformers.models.whisper.generation_whisper import WhisperGenerationMixin

        return issubclass(self.model_class, WhisperGenerationMixin)

    @cached_property
    def main_input(self) -> str:
        """The model's main input: ``input_values``, ``input_features`` or ``input_ids``."""
        return str(getattr(self.model_class, "main_input_name", "input_values"))

    @cached_property
    def forward_parameters(self) -> frozenset[str]:
        """The argument names the model's ``forward`` accepts."""
        return frozenset(inspect.signature(self.model_class.forward).parameters)

    @cached_property
    def feature_extractor(self) -> Any | None:
        """The folder's feature extractor, else the model type's default one sized from the
        config; ``None`` for models that take text."""
        if self.main_input == "input_ids":
            return None
        from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING

        shipped = self.folder_preprocessor("AutoFeatureExtractor", _PREPROCESSOR_FILES)
        if shipped is not None:
            return shipped
        try:
            cls = FEATURE_EXTRACTOR_MAPPING[type(self.config)]
        except KeyError:
            raise HwaccelError(f"{self.config.model_type!r} has no feature extractor class in "
                               "transformers and its folder ships none") from None
        options = {}
        defaults = inspect.signature(cls.__init__).parameters
        for option, key in (("feature_size", "num_mel_bins"),
                            ("sampling_rate", "sampling_rate")):
            value = getattr(self.config, key, None)
            if option in defaults and isinstance(value, int):
                options[option] = value
        return cls(**options)

    @cached_property
    def tokenizer(self) -> Any | None:
        """The folder's tokenizer for text-taking models, else ``None``."""
        if self.main_input != "input_ids":
            return None
        return self.folder_preprocessor("AutoTokenizer", _TOKENIZER_FILES)

    @property
    def sampling_rate(self) -> int:
        """Samples per second: the feature extractor's, else the config's."""
        for source in (self.feature_extractor, self.config):
            value = getattr(source, "sampling_rate", None)
            if isinstance(value, int) and value > 0:
                return value
        raise HwaccelError(f"{self.config.model_type!r}: neither its feature extractor nor "
                           "its config gives a sampling rate")

    @property
    def conv_encoder(self) -> tuple[list[int], list[int]] | None:
        """``(kernels, strides)`` of a convolutional feature encoder over raw samples."""
        kernels = getattr(self.config, "conv_kernel", None)
        strides = getattr(self.config, "conv_stride", None)
        if (self.main_input == "input_values" and isinstance(kernels, (list, tuple))
                and isinstance(strides, (list, tuple)) and len(kernels) == len(strides)):
            return list(kernels), list(strides)
        return None

    def num_samples(self, seq_len: int) -> int:
        """Waveform length for ``seq_len``: exactly ``seq_len`` encoder frames, else 1 s."""
        if self.conv_encoder is not None:
            return conv_input_length(max(seq_len, 1), *self.conv_encoder)
        return self.sampling_rate

    def encoder_frames(self, num_samples: int) -> int | None:
        """Frames the conv feature encoder (and adapter) make of ``num_samples`` samples."""
        if self.conv_encoder is None:
            return None
        frames = conv_output_length(num_samples, *self.conv_encoder)
        if getattr(self.config, "add_adapter", False):
            stride = int(self.config.adapter_stride)
            for _ in range(int(self.config.num_adapter_layers)):
                frames = (frames - 1) // stride + 1
        return frames

    def prepare(self) -> None:
        """Import torch and the model class, read the config and the preprocessor."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.feature_extractor, self.tokenizer

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Model inputs for ``batch_size`` deterministic waveforms (or texts), see the module."""
        if self.main_input == "input_ids":
            return self._text_inputs(batch_size, seq_len)
        rate = self.sampling_rate
        waves = waveforms(batch_size, self.num_samples(seq_len), rate)
        encoded = self.feature_extractor(waves, sampling_rate=rate, return_tensors="pt")
        inputs = {name: value for name, value in encoded.items()
                  if name in self.forward_parameters}
        if self.main_input not in inputs:
            raise HwaccelError(f"the feature extractor of {self.ref.spec!r} gave "
                               f"{', '.join(encoded)}, not {self.main_input}")
        if self.generative:
            inputs["decoder_input_ids"] = self._decoder_ids(batch_size, seq_len)
        return inputs

    def _random_ids(self, batch_size: int, length: int, vocab: int) -> Any:
        import torch

        generator = torch.Generator().manual_seed(TINY_SEED)
        return torch.randint(min(4, vocab - 1), vocab, (batch_size, length), generator=generator)

    def _decoder_ids(self, batch_size: int, seq_len: int) -> Any:
        """The decoder start token, then seeded ids; ``seq_len`` tokens in all."""
        limit = getattr(self.config, "max_target_positions", None)
        length = max(1, min(seq_len, limit) if isinstance(limit, int) else seq_len)
        ids = self._random_ids(batch_size, length, self.vocab_size)
        ids[:, 0] = self.decoder_start_token_id
        return ids

    def _text_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Token ids for speech synthesis: the tokenized sentence, else seeded ids."""
        import torch

        if self.tokenizer is not None:
            encoded = self.tokenizer([TEXT] * batch_size, padding="max_length", truncation=True,
                                     max_length=seq_len, return_tensors="pt")
            ids = encoded["input_ids"]
        else:
            ids = self._random_ids(batch_size, seq_len, self.vocab_size)
        inputs = {"input_ids": ids}
        if "attention_mask" in self.forward_parameters:
            inputs["attention_mask"] = torch.ones_like(ids)
        return inputs

    @property
    def vocab_size(self) -> int:
        """The (text) vocabulary size of the config."""
        value = getattr(self.config, "vocab_size", None)
        if not isinstance(value, int):
            value = getattr(self.config.get_text_config(), "vocab_size", None)
        if not isinstance(value, int):
            raise HwaccelError(f"{self.config.model_type!r}: the config gives no vocab_size")
        return value

    @property
    def decoder_start_token_id(self) -> int:
        """The decoder start token of the config (else its pad or BOS token, else 0)."""
        for name in ("decoder_start_token_id", "pad_token_id", "bos_token_id"):
            value = getattr(self.config, name, None)
            if isinstance(value, int) and 0 <= value < self.vocab_size:
                return value
        return 0

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass (no KV cache); returns the tensor outputs by name."""
        import torch

        extra = {"use_cache": False} if "use_cache" in self.forward_parameters else {}
        with torch.inference_mode():
            outputs = model(**inputs, **extra)
        return {name: value for name, value in outputs.items() if torch.is_tensor(value)}

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes the config implies for the model's head (see the module docstring)."""
        config = self.config
        main = inputs[self.main_input]
        batch = int(main.shape[0])
        shapes: dict[str, tuple[int, ...]] = {}
        frames = self.encoder_frames(int(main.shape[-1])) if main.dim() == 2 else None
        if self.head == "SPEECH_SEQ_2_SEQ":
            decoder_len = int(inputs["decoder_input_ids"].shape[1])
            shapes["logits"] = (batch, decoder_len, self.vocab_size)
            if self.whisper_style:
                # Whisper's encoder takes exactly 2 * max_source_positions mel frames and
                # keeps max_source_positions of them
                shapes["encoder_last_hidden_state"] = (
                    batch, int(config.max_source_positions), int(config.d_model))
        elif self.head == "CTC" and frames is not None:
            shapes["logits"] = (batch, frames, self.vocab_size)
        elif self.head in ("AUDIO_CLASSIFICATION", "AUDIO_XVECTOR"):
            shapes["logits"] = (batch, int(config.num_labels))
            if self.head == "AUDIO_XVECTOR":
                shapes["embeddings"] = (batch, int(config.xvector_output_dim))
        elif self.head == "AUDIO_FRAME_CLASSIFICATION" and frames is not None:
            shapes["logits"] = (batch, frames, int(config.num_labels))
        return shapes

    def ctc_greedy_ids(self, logits: Any) -> Any:
        """Greedy CTC decoding, step one: the most likely token id of every frame."""
        return logits.argmax(dim=-1)

    def ctc_collapse(self, frame_ids: list[int]) -> list[int]:
        """Greedy CTC decoding, step two: merge repeats, then drop the blank (pad) token."""
        blank = getattr(self.config, "pad_token_id", 0)
        out: list[int] = []
        previous = None
        for token in frame_ids:
            if token != previous and token != blank:
                out.append(token)
            previous = token
        return out

    def generate(self, model: Any, inputs: dict[str, Any], new_tokens: int) -> Any:
        """Greedy generation of exactly ``new_tokens`` tokens per row (seq2seq models)."""
        import torch

        if not self.generative:
            raise HwaccelError(f"{self.model_class.__name__} does not generate text")
        prompt = {k: v for k, v in inputs.items()
                  if k != "decoder_input_ids" and k in self.forward_parameters}
        options: dict[str, Any] = {}
        if not self.whisper_style:
            options["decoder_start_token_id"] = self.decoder_start_token_id
        pad = getattr(self.config, "pad_token_id", None)
        if isinstance(pad, int):
            options["pad_token_id"] = pad
        with torch.inference_mode():
            return model.generate(**prompt, max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, do_sample=False, **options)

    def generated_length(self, inputs: dict[str, Any], new_tokens: int) -> int:
        """The sequence length :meth:`generate` returns.

        Whisper's ``generate`` strips its decoder prompt and returns only the new tokens;
        other sequence-to-sequence models return the decoder start token, then the new ones.
        """
        return new_tokens if self.whisper_style else 1 + new_tokens
