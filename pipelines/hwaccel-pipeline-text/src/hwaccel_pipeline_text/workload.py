"""The text workload: load a text model, build its inputs, run forward and generate.

Real checkpoints load from their folder with the class their config names, in fp32, with
``trust_remote_code=False`` and nothing fetched remotely. ``tiny:`` models are built from their
tiny config with the task head their subfamily implies, from a fixed seed, so every build of
the same tiny model has the same weights.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import TransformersWorkload
from hwaccel_pipeline_text.side_inputs import side_inputs

SENTENCES = (
    "Which hardware should this model run on?",
    "The quick brown fox jumps over the lazy dog.",
    "hwaccel measures instead of guessing.",
    "Benchmarks need warm-up, percentiles and a fixed seed.",
)
AUTO_CLASSES = {"causal_lm": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM",
                "masked_lm": "AutoModelForMaskedLM", "encoder": "AutoModel"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")
BYTE_VALUES = 256  # ids of a model that states no vocabulary size and has no embedding table
# auto-model tables tried, in order, for a model type the subfamily's auto class lacks
FALLBACK_TASKS = ("BASE", "TEXT_ENCODING", "MASKED_LM", "PRETRAINING", "CAUSAL_LM",
                  "SEQ_TO_SEQ_CAUSAL_LM", "SEQUENCE_CLASSIFICATION", "TOKEN_CLASSIFICATION",
                  "QUESTION_ANSWERING", "MULTIPLE_CHOICE")
_LM_SUFFIXES = ("ForCausalLM", "ForMaskedLM", "ForConditionalGeneration", "LMHeadModel",
                "ForSeq2SeqLM", "MTModel")


def class_from_tasks(model_type: str) -> Any | None:
    """The first installed class that the auto-model tables of :data:`FALLBACK_TASKS` list
    for ``model_type`` (a retrieval model that only the pre-training table names)."""
    import transformers
    from transformers.models.auto import modeling_auto

    for task in FALLBACK_TASKS:
        name = "MODEL_MAPPING_NAMES" if task == "BASE" else f"MODEL_FOR_{task}_MAPPING_NAMES"
        found = getattr(modeling_auto, name, {}).get(model_type)
        for class_name in (found,) if isinstance(found, str) else found or ():
            if getattr(transformers, class_name, None) is not None:
                return getattr(transformers, class_name)
    return None


class TextWorkload(TransformersWorkload):
    """Workload of the ``text`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    @property
    def generative(self) -> bool:
        """True for causal and sequence-to-sequence language models."""
        return self.classification.subfamily in ("causal_lm", "seq2seq")

    @property
    def encoder_decoder(self) -> bool:
        """True when the model takes decoder inputs."""
        return self.classification.subfamily == "seq2seq"

    @cached_property
    def text_config(self) -> Any:
        """The config that holds the vocabulary and width (the text part of composite ones)."""
        return self.config.get_text_config()

    @cached_property
    def model_class(self) -> Any:
        """The concrete model class: the config's architecture, else the task's auto class's."""
        import transformers

        own = self.architecture_class()
        if own is not None:
            return own
        auto = getattr(transformers, AUTO_CLASSES.get(self.classification.subfamily or "",
                                                       "AutoModel"))
        try:
            return auto._model_mapping[type(self.config)]
        except KeyError:
            pass
        found = class_from_tasks(str(self.config.model_type))
        if found is None:
            from hwaccel.errors import HwaccelError

            raise HwaccelError(f"{auto.__name__} has no class for "
                               f"{type(self.config).__name__}, nor has any auto-model table "
                               "of its model type")
        return found

    @cached_property
    def vocab_size(self) -> int:
        """Token ids run below this: the config's vocabulary, else the model's input
        embedding table (models without a vocabulary, such as character-level ones, take
        code points hashed into their own table)."""
        vocab = getattr(self.text_config, "vocab_size", None)
        if isinstance(vocab, int) and vocab > 0:
            return vocab
        try:
            return int(self.skeleton().get_input_embeddings().num_embeddings)
        except (AttributeError, NotImplementedError, TypeError):
            return BYTE_VALUES

    @cached_property
    def tokenizer(self) -> Any | None:
        """The checkpoint's tokenizer when its folder ships one, else ``None``."""
        return self.folder_preprocessor("AutoTokenizer", _TOKENIZER_FILES)

    def prepare(self) -> None:
        """Import torch and the model class and read the config (not part of load time)."""
        import torch  # noqa: F401

        _ = self.model_class, self.config, self.tokenizer

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """Tokenized sentences padded to ``seq_len``, or seeded random token ids."""
        import torch

        if self.tokenizer is not None:
            texts = [SENTENCES[i % len(SENTENCES)] for i in range(batch_size)]
            if self.tokenizer.pad_token is None:
                self.tokenizer.pad_token = self.tokenizer.eos_token
            encoded = self.tokenizer(texts, padding="max_length", truncation=True,
                                     max_length=seq_len, return_tensors="pt")
            inputs = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask",
                                                                "token_type_ids")}
            self.input_source = "processor"
        else:
            generator = torch.Generator().manual_seed(TINY_SEED)
            vocab = self.vocab_size
            ids = torch.randint(min(4, vocab - 1), vocab, (batch_size, seq_len),
                                generator=generator)
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        inputs.update(side_inputs(self.config, self.forward_parameters, batch_size, seq_len))
        if self.encoder_decoder:
            start = self._token_id("decoder_start_token_id", "pad_token_id")
            decoder = inputs["input_ids"].clone()
            decoder[:, 0] = start
            inputs["decoder_input_ids"] = decoder
        return inputs

    def _token_id(self, *names: str) -> int:
        """The first of the config's token ids ``names`` that is set, else 0."""
        for name in names:
            value = getattr(self.config, name, None)
            if value is None:
                value = getattr(self.text_config, name, None)
            if isinstance(value, int):
                return value
        return 0

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward pass without a KV cache; returns the tensor outputs by name."""
        import torch

        extra = {"use_cache": False} if self.generative else {}
        with torch.inference_mode():
            outputs = model(**inputs, **extra)
        return {name: value for name, value in outputs.items() if torch.is_tensor(value)}

    def embeddings(self, outputs: dict[str, Any], inputs: dict[str, Any]) -> Any | None:
        """One vector per row for an embedding model: its last hidden states averaged over
        the attention mask (sentence-transformers' mean pooling); ``None`` for other models."""
        hidden = outputs.get("last_hidden_state")
        if self.classification.family != "embedding" or hidden is None:
            return None
        mask = inputs.get("attention_mask")
        weights = (mask if mask is not None else hidden.new_ones(hidden.shape[:2]))
        weights = weights.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Shapes implied by the config: LM logits over the vocabulary, or hidden states."""
        batch, seq = inputs["input_ids"].shape
        out_seq = inputs["decoder_input_ids"].shape[1] if "decoder_input_ids" in inputs else seq
        name = self.model_class.__name__
        fields = self.output_fields()
        if name.endswith(_LM_SUFFIXES) and (fields is None or "logits" in fields):
            return {"logits": (batch, out_seq, self.vocab_size)}
        if name.endswith("Model") and (fields is None or "last_hidden_state" in fields):
            return {"last_hidden_state": (batch, out_seq, int(self.text_config.hidden_size))}
        return {}

    def generate(self, model: Any, inputs: dict[str, Any], new_tokens: int,
                 **options: Any) -> Any:
        """Greedy generation of exactly ``new_tokens`` tokens per row; ``options`` go to the
        model's ``generate`` as they are (a ``streamer``)."""
        import torch

        prompt = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        options = {"pad_token_id": self._token_id("pad_token_id", "eos_token_id"), **options}
        if self.encoder_decoder:
            options["decoder_start_token_id"] = self._token_id("decoder_start_token_id",
                                                               "pad_token_id")
        with torch.inference_mode():
            return model.generate(**prompt, max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, do_sample=False, **options)

    def generated_length(self, inputs: dict[str, Any], new_tokens: int) -> int:
        """The sequence length :meth:`generate` returns for ``inputs``."""
        if self.encoder_decoder:
            return 1 + new_tokens  # the decoder start token, then the new tokens
        return int(inputs["input_ids"].shape[1]) + new_tokens
