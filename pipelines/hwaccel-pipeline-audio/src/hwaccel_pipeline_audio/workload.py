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
for ``tiny:`` models, the class transformers names for the model type (or its sub-configs'
types) with the config's sizes (:mod:`hwaccel_pipeline_audio.features`); a model of raw
samples whose type names none takes the waveform itself. Models that take text (speech
synthesis, text-to-music) get ``seq_len`` token ids of their encoder's vocabulary (the
tokenizer's encoding of a sentence when the folder ships one).

Models whose ``forward`` takes ``decoder_input_ids`` also get them: the decoder start token,
then seeded ids of the decoder's vocabulary, ``seq_len`` in all (capped at the decoder's
positions), per codebook for decoders of audio codes (MusicGen, Dia:
:func:`~hwaccel_pipeline_audio.config_values.codebook_layout`; their per-codebook outputs
come back as ``(batch, codebooks, ...)``). A transducer's (RNN-T, TDT) prediction network
gets one label per row, the blank that starts greedy decoding.

Real checkpoints load from their folder with the class their config names, in fp32, with
``trust_remote_code=False`` and nothing fetched remotely; ``tiny:`` models are built from the
tiny config with the task head their subfamily implies, from a fixed seed.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import TransformersWorkload
from hwaccel_pipeline_audio import SUBFAMILY_TASKS
from hwaccel_pipeline_audio.config_values import (
    CHANNELS,
    ROWS,
    codebook_layout,
    decoder_config,
    find_int,
    input_vocab_size,
)
from hwaccel_pipeline_audio.features import SAMPLING_RATE_KEYS, default_feature_extractor

TONES_HZ = (220.0, 330.0, 440.0, 660.0)  # row i sounds these, each raised by i semitones
NOISE_STD = 0.01
TEXT = "Which hardware should this model run on? hwaccel measures instead of guessing."
# every auto-model task an audio model's class may answer, in the order heads are looked up
HEADS = tuple(task for _, tasks in SUBFAMILY_TASKS for task in tasks)
TRANSDUCER_HEADS = ("RNNT", "TDT")  # heads whose decoder is a label-by-label prediction network
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


def by_example(value: Any, batch_size: int, count: int) -> Any:
    """An output of a decoder of ``count`` codebooks that has one row per codebook of each
    example, ``(batch_size * count, ...)`` (MusicGen's and Dia's logits), as
    ``(batch_size, count, ...)``; any other output as it is."""
    if value.dim() >= 1 and value.shape[0] == batch_size * count:
        return value.reshape(batch_size, count, *value.shape[1:])
    return value


class AudioWorkload(TransformersWorkload):
    """Workload of the ``audio`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

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
        """True for encoder-decoder speech recognisers that generate text from the main input.

        Not for decoders of audio codes (they generate audio), decoder-only models of the
        speech-to-text table (VibeVoice generates speech), or a ``generate`` that takes other
        inputs than ``forward`` (Pop2Piano's takes features, its ``forward`` token ids).
        """
        if self.head != "SPEECH_SEQ_2_SEQ" or self.codebooks != (1, ROWS) or \
                not getattr(self.config, "is_encoder_decoder", False):
            return False
        takes = inspect.signature(self.model_class.generate).parameters
        return self.main_input in takes or "inputs" in takes

    @cached_property
    def codebooks(self) -> tuple[int, str]:
        """``(count, layout)`` of the decoder's token streams (:func:`codebook_layout`)."""
        return codebook_layout(decoder_config(self.config))

    @cached_property
    def whisper_style(self) -> bool:
        """True for models whose ``generate`` returns only the new tokens (Whisper's)."""
        from transformers.models.whisper.generation_whisper import WhisperGenerationMixin

        return issubclass(self.model_class, WhisperGenerationMixin)

    @cached_property
    def main_input(self) -> str:
        """The model's main input: ``input_values``, ``input_features`` or ``input_ids``.

        A generic encoder-decoder whose class names its input ``inputs`` takes what the class
        of its ``encoder`` sub-config takes (under that name: its ``forward`` accepts both).
        """
        name = str(getattr(self.model_class, "main_input_name", "input_values"))
        encoder = getattr(self.config, "encoder", None)
        if name == "inputs" and encoder is not None:
            from transformers.models.auto.modeling_auto import MODEL_MAPPING

            try:
                return str(MODEL_MAPPING[type(encoder)].main_input_name)
            except KeyError:
                raise HwaccelError(f"{self.config.model_type!r}: transformers has no model class "
                                   f"for its encoder type {encoder.model_type!r}") from None
        return name

    @cached_property
    def shipped_feature_extractor(self) -> Any | None:
        """The feature extractor the model folder ships, else ``None``."""
        return self.folder_preprocessor("AutoFeatureExtractor", _PREPROCESSOR_FILES)

    @cached_property
    def feature_extractor(self) -> Any | None:
        """The folder's feature extractor, else the model type's class sized from the config
        (:mod:`hwaccel_pipeline_audio.features`); ``None`` for models that take text, and for
        models of raw samples whose type names no class (they take the waveform itself)."""
        if self.main_input == "input_ids":
            return None
        if self.shipped_feature_extractor is not None:
            return self.shipped_feature_extractor
        built = default_feature_extractor(self.config, self.main_input)
        if built is None and self.main_input != "input_values":
            raise HwaccelError(f"{self.config.model_type!r}: transformers names no feature "
                               f"extractor that gives {self.main_input} for it or its "
                               "sub-configs, and its folder ships none")
        return built

    @cached_property
    def tokenizer(self) -> Any | None:
        """The folder's tokenizer for text-taking models, else ``None``."""
        if self.main_input != "input_ids":
            return None
        return self.folder_preprocessor("AutoTokenizer", _TOKENIZER_FILES)

    @property
    def sampling_rate(self) -> int:
        """Samples per second: the feature extractor's, else the config's (or a sub-config's)."""
        value = getattr(self.feature_extractor, "sampling_rate", None)
        if not isinstance(value, int) or value <= 0:
            value = find_int(self.config, *SAMPLING_RATE_KEYS)
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
            inputs = self._text_inputs(batch_size, seq_len)
        else:
            inputs = self._audio_inputs(batch_size, seq_len)
        if self.head in TRANSDUCER_HEADS:
            inputs["decoder_input_ids"] = self._first_labels(batch_size)
        elif "decoder_input_ids" in self.forward_parameters:
            inputs["decoder_input_ids"] = self._decoder_ids(batch_size, seq_len)
        return inputs

    def _audio_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """The feature extractor's encoding of the waveforms (the waveforms themselves for a
        model of raw samples whose type names no feature extractor)."""
        import torch

        rate = self.sampling_rate
        waves = waveforms(batch_size, self.num_samples(seq_len), rate)
        if self.feature_extractor is None:
            return {self.main_input: torch.stack([torch.from_numpy(wave) for wave in waves])}
        encoded = self.feature_extractor(waves, sampling_rate=rate, return_tensors="pt")
        shipped = self.shipped_feature_extractor is not None
        self.input_source = "processor" if shipped else "processor-class"
        inputs = {name: value for name, value in encoded.items()
                  if name in self.forward_parameters}
        if self.main_input not in inputs:
            raise HwaccelError(f"the feature extractor of {self.ref.spec!r} gave "
                               f"{', '.join(encoded)}, not {self.main_input}")
        return inputs

    def _random_ids(self, shape: tuple[int, ...], vocab: int) -> Any:
        import torch

        generator = torch.Generator().manual_seed(TINY_SEED)
        return torch.randint(min(4, vocab - 1), vocab, shape, generator=generator)

    def _decoder_ids(self, batch_size: int, seq_len: int) -> Any:
        """The decoder start token, then seeded ids; ``seq_len`` tokens in all (capped at the
        decoder's positions), per codebook for decoders of audio codes
        (:func:`~hwaccel_pipeline_audio.config_values.codebook_layout`)."""
        decoder = decoder_config(self.config)
        limit = find_int(self.config, "max_target_positions")
        if limit is None:
            limit = getattr(decoder, "max_position_embeddings", None)
        length = max(1, min(seq_len, limit) if isinstance(limit, int) else seq_len)
        count, layout = self.codebooks
        if layout == CHANNELS:
            ids = self._random_ids((batch_size, length, count), self.decoder_vocab_size)
        else:
            ids = self._random_ids((batch_size * count, length), self.decoder_vocab_size)
        ids[:, 0] = self.decoder_start_token_id
        return ids

    def _first_labels(self, batch_size: int) -> Any:
        """A transducer's prediction-network input for the first step: the blank label."""
        import torch

        return torch.full((batch_size, 1), self.blank_token_id, dtype=torch.long)

    def _text_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Token ids for speech synthesis: the tokenized sentence, else seeded ids."""
        import torch

        if self.tokenizer is not None:
            encoded = self.tokenizer([TEXT] * batch_size, padding="max_length", truncation=True,
                                     max_length=seq_len, return_tensors="pt")
            ids = encoded["input_ids"]
            self.input_source = "processor"
        else:
            ids = self._random_ids((batch_size, seq_len), self.vocab_size)
        inputs = {"input_ids": ids}
        if "attention_mask" in self.forward_parameters:
            inputs["attention_mask"] = torch.ones_like(ids)
        return inputs

    @property
    def vocab_size(self) -> int:
        """The vocabulary of the token ids the model reads (its encoder's, for a composite)."""
        value = input_vocab_size(self.config)
        if value is None:
            raise HwaccelError(f"{self.config.model_type!r}: the config gives no vocab_size")
        return value

    @property
    def decoder_vocab_size(self) -> int:
        """The vocabulary of the decoder's token ids (the model's own for a single stack)."""
        value = getattr(decoder_config(self.config), "vocab_size", None)
        return value if isinstance(value, int) else self.vocab_size

    @property
    def blank_token_id(self) -> int:
        """A transducer's blank label: ``blank_token_id`` of the config, else its pad token."""
        value = find_int(self.config, "blank_token_id", "pad_token_id")
        if value is None:
            raise HwaccelError(f"{self.config.model_type!r}: the config of this transducer "
                               "gives no blank_token_id")
        return value

    @property
    def decoder_start_token_id(self) -> int:
        """The decoder start token of the config or its decoder's (else the pad or BOS token,
        else 0)."""
        sources = (self.config, decoder_config(self.config))
        for name in ("decoder_start_token_id", "pad_token_id", "bos_token_id"):
            for source in sources:
                value = getattr(source, name, None)
                if isinstance(value, int) and 0 <= value < self.decoder_vocab_size:
                    return value
        return 0

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass (no KV cache); returns the tensor outputs by name."""
        import torch

        extra = {"use_cache": False} if "use_cache" in self.forward_parameters else {}
        with torch.inference_mode():
            outputs = model(**inputs, **extra)
        tensors = {name: value for name, value in outputs.items() if torch.is_tensor(value)}
        count, _ = self.codebooks
        if count > 1:
            batch = int(inputs[self.main_input].shape[0])
            tensors = {name: by_example(value, batch, count) for name, value in tensors.items()}
        return tensors

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes the config implies for the model's head (see the module docstring)."""
        config = self.config
        main = inputs[self.main_input]
        batch = int(main.shape[0])
        shapes: dict[str, tuple[int, ...]] = {}
        frames = self.encoder_frames(int(main.shape[-1])) if main.dim() == 2 else None
        if "decoder_input_ids" in inputs and self.head not in TRANSDUCER_HEADS:
            shapes.update(self._decoder_shapes(batch, int(inputs["decoder_input_ids"].shape[1])))
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

    def _decoder_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the outputs per decoder token (per codebook too, for decoders of audio
        codes): the LM head's logits, or a bare decoder's last hidden state."""
        count, _ = self.codebooks
        steps = (batch, count, length) if count > 1 else (batch, length)
        if "encoder_hidden_states" in self.forward_parameters and \
                "encoder_outputs" not in self.forward_parameters:
            # the decoder reads the conditioning as a prefix of its own sequence instead of
            # attending to encoder outputs (MusicGen Melody): its outputs are longer
            return {}
        if self.head == "SPEECH_SEQ_2_SEQ" or (count > 1 and self.head != "BASE"):
            return {"logits": (*steps, self.decoder_vocab_size)}
        width = find_int(decoder_config(self.config), "d_model", "hidden_size")
        if self.head == "BASE" and count == 1 and width is not None:
            return {"last_hidden_state": (*steps, width)}
        return {}

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

    def generate(self, model: Any, inputs: dict[str, Any], new_tokens: int,
                 **extra: Any) -> Any:
        """Greedy generation of exactly ``new_tokens`` tokens per row (seq2seq models);
        ``extra`` goes to the model's ``generate`` as it is (a ``streamer``)."""
        import torch

        if not self.generative:
            raise HwaccelError(f"{self.model_class.__name__} does not generate text")
        prompt = {k: v for k, v in inputs.items()
                  if k != "decoder_input_ids" and k in self.forward_parameters}
        options: dict[str, Any] = dict(extra)
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
