"""The rag workload: retrieve documents from an in-memory store, then generate from them.

Two kinds of model are run, both as a :class:`~hwaccel_pipeline_rag.retrieval.RetrieveThenGenerate`
module that holds the models and the document store (:mod:`hwaccel_pipeline_rag.documents`):

* a composition ``rag:<retriever>+<generator>``: each part is loaded by the ``text``
  pipeline's :class:`~hwaccel_pipeline_text.workload.TextWorkload` (real checkpoints from their
  folder, ``tiny:`` ones from their tiny config and the fixed seed). The retriever must be an
  embedding model (it is used as a bare encoder: mean pooling over the attention mask,
  L2-normalised, cosine top-:data:`~hwaccel_pipeline_rag.documents.TOP_K`); the generator a
  causal or sequence-to-sequence LM, which reads the retrieved documents followed by the
  question.
* transformers' ``rag`` model type, run as ``RagTokenForGeneration`` without a
  ``RagRetriever`` (which needs ``datasets``, ``faiss`` and a hub index): its DPR question
  encoder embeds the questions and, standing in for the DPR context encoder a checkpoint does
  not ship, the documents; the config's ``n_docs`` best documents by inner product become the
  ``doc_scores`` and one ``context_input_ids`` row per document, which this workload passes
  itself. The logits are RAG-token marginalised over the documents. transformers' default
  ``RagConfig`` already holds a DPR question-encoder and a BART generator config, which
  ``tiny:rag`` shrinks like any other config, so no tiny fix is needed.

Texts are tokenized with a model's own tokenizer when its folder ships one, else with the
stable word hash of :func:`hwaccel_pipeline_rag.documents.hash_ids`, so the retrieved documents
always change the generator's input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.tiny import TINY_SEED
from hwaccel.kit.workloads import BaseWorkload
from hwaccel_pipeline_rag.documents import DOC_MAX_TOKENS, DOCUMENTS, QUESTIONS, TOP_K, hash_ids

GENERATOR_SUBFAMILIES = ("causal_lm", "seq2seq")
RAG_TOKENIZER_FOLDERS = ("question_encoder_tokenizer", "generator_tokenizer")


def token_id(config: Any, *names: str) -> int | None:
    """The first of ``config``'s token ids ``names`` that is set, else ``None``."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class RagWorkload(BaseWorkload):
    """Workload of the ``rag`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    documents: tuple[str, ...] = DOCUMENTS
    questions: tuple[str, ...] = QUESTIONS

    @property
    def is_composition(self) -> bool:
        """True for ``rag:<retriever>+<generator>``, False for transformers' Rag models."""
        return self.ref.kind == "composite"

    # ---- the parts --------------------------------------------------------------------------

    @cached_property
    def parts(self) -> tuple[Any, Any]:
        """The text workloads of a composition's retriever and generator."""
        from hwaccel.kit.references import classify_part
        from hwaccel_pipeline_text.workload import TextWorkload

        if not self.is_composition:
            raise HwaccelError(f"{self.ref.spec!r} is not a composition")
        retriever, generator = self.ref.components
        r_class = classify_part(retriever)
        g_class = classify_part(generator)
        if r_class.family != "embedding":
            raise HwaccelError(f"the retriever of {self.ref.spec!r} must be an embedding model; "
                               f"{retriever.spec!r} is {r_class.family}")
        if g_class.subfamily not in GENERATOR_SUBFAMILIES:
            raise HwaccelError(f"the generator of {self.ref.spec!r} must be a causal or "
                               f"sequence-to-sequence LM; {generator.spec!r} is "
                               f"{g_class.family}/{g_class.subfamily}")
        # the retriever is used as a bare encoder: a tiny one is built without a task head
        r_class = dataclasses.replace(r_class, subfamily="encoder")
        return TextWorkload(retriever, r_class), TextWorkload(generator, g_class)

    @cached_property
    def config(self) -> Any:
        """The Rag model's config, or the composition generator's config."""
        if self.is_composition:
            return self.parts[1].config
        config = self.ref.load_config()
        if getattr(config, "question_encoder", None) is None or \
                getattr(config, "generator", None) is None:
            raise HwaccelError(f"the RagConfig of {self.ref.spec!r} has no question_encoder "
                               "or generator sub-config")
        return config

    @cached_property
    def retriever_config(self) -> Any:
        """The config of the model that embeds questions and documents."""
        if self.is_composition:
            return self.parts[0].text_config
        return self.config.question_encoder

    @cached_property
    def generator_config(self) -> Any:
        """The config of the generator (the vocabulary of its logits, its token ids)."""
        if self.is_composition:
            return self.parts[1].text_config
        return self.config.generator

    @property
    def mode(self) -> str:
        """``causal`` or ``seq2seq`` (compositions), ``rag`` (transformers' Rag models)."""
        if not self.is_composition:
            return "rag"
        return "seq2seq" if self.parts[1].encoder_decoder else "causal"

    @property
    def top_k(self) -> int:
        """Documents retrieved per question: TOP_K, or a Rag config's ``n_docs``."""
        k = TOP_K if self.is_composition else int(self.config.n_docs)
        if not 0 < k <= len(self.documents):
            raise HwaccelError(f"{self.ref.spec!r} retrieves {k} documents per question; the "
                               f"store holds {len(self.documents)}")
        return k

    @cached_property
    def tokenizers(self) -> tuple[Any | None, Any | None]:
        """The retriever's and the generator's tokenizers, ``None`` where none is shipped."""
        if self.is_composition:
            return self.parts[0].tokenizer, self.parts[1].tokenizer
        if self.ref.path is None:
            return None, None
        from transformers import AutoTokenizer

        found = []
        for name in RAG_TOKENIZER_FOLDERS:
            folder = Path(self.ref.path) / name
            found.append(AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                                       trust_remote_code=False)
                         if folder.is_dir() else None)
        return found[0], found[1]

    # ---- tokenization -----------------------------------------------------------------------

    def encode(self, texts: Sequence[str], role: str, length: int | None = None,
               special_tokens: bool = True) -> tuple[Any, Any]:
        """Token ids and attention mask of ``texts`` for the ``retriever`` or ``generator``.

        :param length: pad or truncate to this length; ``None`` pads to the longest text
            (at most ``DOC_MAX_TOKENS``).
        """
        import torch

        index = ("retriever", "generator").index(role)
        tokenizer = self.tokenizers[index]
        config = (self.retriever_config, self.generator_config)[index]
        if tokenizer is not None:
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            encoded = tokenizer(list(texts), padding="max_length" if length else "longest",
                                truncation=True, max_length=length or DOC_MAX_TOKENS,
                                add_special_tokens=special_tokens, return_tensors="pt")
            return encoded["input_ids"], encoded["attention_mask"]
        vocab = int(config.vocab_size)
        rows = [hash_ids(text, vocab)[:length or DOC_MAX_TOKENS] for text in texts]
        width = length or max(len(row) for row in rows)
        pad = token_id(config, "pad_token_id")
        ids = torch.full((len(rows), width), pad if pad is not None and pad < vocab else 0)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = 1
        return ids, mask

    @cached_property
    def generator_documents(self) -> tuple[Any, Any]:
        """The documents' token ids and mask in the generator's vocabulary (no specials)."""
        return self.encode(self.documents, "generator", special_tokens=False)

    @cached_property
    def retriever_documents(self) -> tuple[Any, Any]:
        """The documents' token ids and mask as the retriever reads them."""
        return self.encode(self.documents, "retriever")

    # ---- the workload protocol --------------------------------------------------------------

    def prepare(self) -> None:
        """Import torch and the models' code, read configs and tokenize the documents."""
        import hwaccel_pipeline_rag.retrieval  # noqa: F401

        if self.is_composition:
            for part in self.parts:
                part.prepare()
        else:
            from transformers import RagTokenForGeneration  # noqa: F401
        _ = self.config, self.top_k, self.generator_documents, self.retriever_documents

    def load_model(self) -> Any:
        """The retriever, the generator and the embedded document store as one CPU module."""
        import torch

        from hwaccel_pipeline_rag.retrieval import RetrieveThenGenerate, mean_pool

        ids, mask = self.retriever_documents
        if self.is_composition:
            retriever = self.parts[0].load_model().base_model
            generator = self.parts[1].load_model()
            with torch.no_grad():
                embeddings = mean_pool(retriever(input_ids=ids, attention_mask=mask)[0], mask)
        else:
            retriever, generator = None, self._load_rag()
            with torch.no_grad():
                embeddings = generator.question_encoder(ids, attention_mask=mask)[0]
        doc_ids, doc_mask = self.generator_documents
        model = RetrieveThenGenerate(retriever, generator, embeddings.detach().clone(),
                                     doc_ids.clone(), doc_mask.clone(), top_k=self.top_k,
                                     mode=self.mode)
        return model.float().eval()

    def skeleton(self) -> Any:
        """The retriever and generator (or the Rag model) built on the meta device."""
        import torch
        from transformers import RagTokenForGeneration

        if not self.is_composition:
            with torch.device("meta"):
                return RagTokenForGeneration(self.config)
        retriever, generator = (part.skeleton() for part in self.parts)
        return torch.nn.ModuleDict({"retriever": retriever.base_model, "generator": generator})

    def _load_rag(self) -> Any:
        """transformers' Rag model as ``RagTokenForGeneration``, fp32 on the CPU."""
        import torch
        from transformers import RagTokenForGeneration

        torch.manual_seed(TINY_SEED)
        if self.ref.is_tiny:
            return RagTokenForGeneration(self.config).float().eval()
        if self.ref.path is None:
            from hwaccel.errors import ModelReferenceError
            from hwaccel.kit.references import not_cached_message

            raise ModelReferenceError(not_cached_message(self.ref.spec))
        return RagTokenForGeneration.from_pretrained(
            self.ref.path, local_files_only=True, trust_remote_code=False,
            dtype=torch.float32).float().eval()

    def make_inputs(self, batch_size: int, seq_len: int) -> dict[str, Any]:
        """The questions (cycling through QUESTIONS) for the retriever and the generator.

        ``input_ids``/``attention_mask`` are the questions as the retriever reads them,
        ``question_ids``/``question_attention_mask`` as the generator does, each padded to
        ``seq_len``; encoder-decoder generators also get ``decoder_input_ids`` (the question,
        starting with the decoder start token).
        """
        texts = [self.questions[i % len(self.questions)] for i in range(batch_size)]
        input_ids, attention_mask = self.encode(texts, "retriever", seq_len)
        question_ids, question_mask = self.encode(texts, "generator", seq_len)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                  "question_ids": question_ids, "question_attention_mask": question_mask}
        if self.mode != "causal":
            decoder = question_ids.clone()
            decoder[:, 0] = self._decoder_start()
            inputs["decoder_input_ids"] = decoder
        return inputs

    def _decoder_start(self) -> int:
        """The generator's decoder start token id (its pad or bos id when unset)."""
        value = token_id(self.generator_config, "decoder_start_token_id", "pad_token_id",
                         "bos_token_id")
        return 0 if value is None else value

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """Retrieve then generate: ``logits``, ``retrieval_scores``, ``retrieved_indices``."""
        import torch

        with torch.inference_mode():
            return model(**inputs)

    def prompt_length(self, inputs: dict[str, Any]) -> int:
        """The length of a causal generator's prompt: k documents, then the question."""
        return self.top_k * int(self.generator_documents[0].shape[1]) + \
            int(inputs["question_ids"].shape[1])

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Logits over the generator's vocabulary; scores and indices of k documents."""
        batch = int(inputs["question_ids"].shape[0])
        if self.mode == "causal":
            length = self.prompt_length(inputs)
        else:
            length = int(inputs["decoder_input_ids"].shape[1])
        return {"logits": (batch, length, int(self.generator_config.vocab_size)),
                "retrieval_scores": (batch, self.top_k),
                "retrieved_indices": (batch, self.top_k)}

    def generate(self, model: Any, inputs: dict[str, Any], new_tokens: int,
                 **extra: Any) -> Any:
        """Retrieve, then greedy generation of exactly ``new_tokens`` tokens per question;
        ``extra`` goes to the generator's ``generate`` as it is (a ``streamer``)."""
        import torch

        question = {k: inputs[k] for k in ("input_ids", "attention_mask", "question_ids",
                                           "question_attention_mask")}
        if self.mode == "rag":
            options = {"pad_token_id": token_id(self.generator_config, "pad_token_id",
                                                "eos_token_id"),
                       "eos_token_id": token_id(self.generator_config, "eos_token_id"),
                       "decoder_start_token_id": self._decoder_start(), **extra}
            with torch.inference_mode():
                return model.generate_rag(**question, new_tokens=new_tokens, **options)
        with torch.inference_mode():
            _, indices = model.retrieve(inputs["input_ids"], inputs["attention_mask"])
            ids, mask = model.prompt(indices, inputs["question_ids"],
                                     inputs["question_attention_mask"])
        return self.parts[1].generate(model.generator,
                                      {"input_ids": ids, "attention_mask": mask}, new_tokens,
                                      **extra)

    def generated_length(self, inputs: dict[str, Any], new_tokens: int) -> int:
        """The sequence length :meth:`generate` returns for ``inputs``."""
        if self.mode == "causal":
            return self.prompt_length(inputs) + new_tokens
        return 1 + new_tokens  # the decoder start token, then the new tokens
