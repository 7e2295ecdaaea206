"""Retrieve-then-generate as one ``torch.nn.Module``: document store, retriever and generator.

The module holds the retriever (a bare text encoder, or a Rag model's question encoder), the
generator, and the document store as buffers: the documents' embeddings (computed once when the
module is built) and their token ids in the generator's vocabulary. Moving the module to a
device moves all of it, so a backend's ``place_model`` and ``place_inputs`` are all it needs.

One call embeds the questions, scores every document, keeps the ``top_k`` best (sorted by score,
descending), writes each question's prompt from the retrieved documents' tokens followed by the
question's tokens, and runs the generator on it. Prompts are left-padded: the padding of the
documents and the question moves to the front, real tokens keep their order.

Modes:

* ``causal``: one prompt per question, ``document 1 ... document k question``; cosine scores of
  mean-pooled, L2-normalised embeddings.
* ``seq2seq``: the same prompt goes to the encoder; the decoder reads ``decoder_input_ids``.
* ``rag``: transformers' RAG-token model: one context per retrieved document,
  ``document question``, with inner-product ``doc_scores`` of the question encoder's pooled
  output, as RAG's own retriever computes them; the logits are marginalised over the documents.
"""

from __future__ import annotations

from typing import Any

import torch

MODES = ("causal", "seq2seq", "rag")


def left_pack(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the padding (``mask == 0``) of each row to the front, keeping the tokens' order.

    Each position's place is counted (padding first, then tokens, each in order) and the row
    scattered there: the same as a stable sort of the mask, in operators every ONNX exporter
    converts (a stable ``argsort`` is a ``Sort`` with an out parameter, which it refuses).
    """
    real = (mask != 0).long()
    padding = 1 - real
    place = torch.where(real.bool(), padding.sum(-1, keepdim=True) + real.cumsum(-1) - 1,
                        padding.cumsum(-1) - 1)
    return (torch.zeros_like(ids).scatter(-1, place, ids),
            torch.zeros_like(mask).scatter(-1, place, mask))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over the attention mask, L2-normalised."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


class RetrieveThenGenerate(torch.nn.Module):
    """A retriever, a generator and an in-memory document store in one module.

    :param retriever: the text encoder that embeds questions (``None`` in ``rag`` mode, where
        the Rag model's own question encoder is used).
    :param generator: the language model (or the ``RagTokenForGeneration`` in ``rag`` mode).
    :param doc_embeddings: ``(documents, width)`` embeddings of the documents.
    :param doc_ids: ``(documents, length)`` token ids of the documents for the generator.
    :param doc_mask: the attention mask of ``doc_ids``.
    :param top_k: documents retrieved per question (at most the number of documents).
    :param mode: one of :data:`MODES`.
    """

    def __init__(self, retriever: Any, generator: Any, doc_embeddings: torch.Tensor,
                 doc_ids: torch.Tensor, doc_mask: torch.Tensor, *, top_k: int, mode: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not 0 < top_k <= doc_embeddings.shape[0]:
            raise ValueError(f"top_k={top_k} must be between 1 and the number of documents "
                             f"({doc_embeddings.shape[0]})")
        self.retriever = retriever
        self.generator = generator
        self.top_k = top_k
        self.mode = mode
        self.register_buffer("doc_embeddings", doc_embeddings)
        self.register_buffer("doc_ids", doc_ids)
        self.register_buffer("doc_mask", doc_mask)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embed token ids as the document store's embeddings were made."""
        if self.mode == "rag":
            return self.generator.question_encoder(input_ids, attention_mask=attention_mask)[0]
        hidden = self.retriever(input_ids=input_ids, attention_mask=attention_mask)[0]
        return mean_pool(hidden, attention_mask)

    def similarities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                     ) -> torch.Tensor:
        """``(batch, documents)`` scores of every document for every question."""
        return self.embed(input_ids, attention_mask) @ self.doc_embeddings.T

    def retrieve(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``top_k`` scores and document indices per question, best first."""
        scores = self.similarities(input_ids, attention_mask)
        values, indices = torch.topk(scores, self.top_k, dim=-1, largest=True, sorted=True)
        return values, indices

    def prompt(self, indices: torch.Tensor, question_ids: torch.Tensor,
               question_attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's input for retrieved ``indices`` ``(batch, k)`` and the questions.

        ``causal``/``seq2seq``: ``(batch, k * doc_length + question_length)``, the documents
        then the question. ``rag``: ``(batch * k, doc_length + question_length)``, one
        document then the question per row, as RAG's retriever lays out its contexts.
        """
        docs, docs_mask = self.doc_ids[indices], self.doc_mask[indices]  # (batch, k, length)
        if self.mode == "rag":
            k = indices.shape[1]
            ids = torch.cat([docs, question_ids.unsqueeze(1).expand(-1, k, -1)], dim=-1)
            mask = torch.cat([docs_mask, question_attention_mask.unsqueeze(1).expand(-1, k, -1)],
                             dim=-1)
            ids, mask = ids.flatten(0, 1), mask.flatten(0, 1)
        else:
            ids = torch.cat([docs.flatten(1), question_ids], dim=-1)
            mask = torch.cat([docs_mask.flatten(1), question_attention_mask], dim=-1)
        return left_pack(ids, mask)

    def answer(self, scores: torch.Tensor, indices: torch.Tensor, question_ids: torch.Tensor,
               question_attention_mask: torch.Tensor,
               decoder_input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The generator's logits for questions given retrieved documents and their scores."""
        ids, mask = self.prompt(indices, question_ids, question_attention_mask)
        if self.mode == "rag":
            return self.generator(context_input_ids=ids, context_attention_mask=mask,
                                  doc_scores=scores, decoder_input_ids=decoder_input_ids,
                                  n_docs=indices.shape[1], do_marginalize=True,
                                  use_cache=False).logits
        extra = {"decoder_input_ids": decoder_input_ids} if self.mode == "seq2seq" else {}
        return self.generator(input_ids=ids, attention_mask=mask, use_cache=False,
                              **extra).logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                question_ids: torch.Tensor, question_attention_mask: torch.Tensor,
                decoder_input_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Retrieve, then generate: logits, retrieval scores and retrieved document indices.

        :param input_ids: the questions in the retriever's vocabulary.
        :param question_ids: the same questions in the generator's vocabulary.
        :param decoder_input_ids: the decoder's input (``seq2seq`` and ``rag`` modes).
        """
        scores, indices = self.retrieve(input_ids, attention_mask)
        logits = self.answer(scores, indices, question_ids, question_attention_mask,
                             decoder_input_ids)
        return {"logits": logits, "retrieval_scores": scores, "retrieved_indices": indices}

    def generate_rag(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     question_ids: torch.Tensor, question_attention_mask: torch.Tensor,
                     new_tokens: int, **options: Any) -> torch.Tensor:
        """``rag`` mode: retrieve, then greedy RAG-token generation of ``new_tokens`` tokens.

        RAG's ``generate`` starts from the decoder start token and ignores ``max_new_tokens``,
        so the length is set as ``max_length = min_length = 1 + new_tokens``.
        """
        scores, indices = self.retrieve(input_ids, attention_mask)
        ids, mask = self.prompt(indices, question_ids, question_attention_mask)
        return self.generator.generate(
            context_input_ids=ids, context_attention_mask=mask, doc_scores=scores,
            n_docs=indices.shape[1], max_length=1 + new_tokens, min_length=1 + new_tokens,
            do_sample=False, num_beams=1, **options)
