"""The in-memory document store of the ``rag`` pipeline and its fallback tokenizer.

Every retrieve-then-generate workload searches the same fixed store: :data:`DOCUMENTS`, eight
short sentences about running models on hardware. :data:`QUESTIONS` are the queries the
workload's inputs cycle through; each one is answered by one document (with a real sentence
embedder such as ``minilm`` the question ``QUESTIONS[i]`` retrieves ``DOCUMENTS[ANSWERS[i]]``
first). :data:`TOP_K` documents are retrieved per question for a composition; transformers'
Rag models retrieve their config's ``n_docs``.

Models whose folder ships no tokenizer (``tiny:`` builds) still see real text: :func:`hash_ids`
maps every word and punctuation mark to a token id by a stable hash (BLAKE2b, so the same in
every process), inside the model's own vocabulary. Different documents and questions therefore
give different, deterministic token ids. This module imports neither torch nor transformers.
"""

from __future__ import annotations

import hashlib
import re

DOCUMENTS: tuple[str, ...] = (
    "GPUs run thousands of threads in parallel and excel at dense matrix multiplication.",
    "A CPU has a few fast cores with large caches and handles branchy serial code well.",
    "TPUs are accelerators built around systolic arrays for large tensor operations.",
    "An NPU is a low-power neural processing unit found in phones and laptops.",
    "ONNX Runtime executes exported models with graph optimisations on many backends.",
    "OpenVINO compiles models for Intel CPUs, integrated GPUs and Intel NPUs.",
    "Quantization stores weights in 8 or 4 bits to cut memory use and speed up inference.",
    "A fair benchmark needs warm-up runs, many timed iterations and latency percentiles.",
)
QUESTIONS: tuple[str, ...] = (
    "Which processor is best at large matrix multiplications?",
    "How can a model use less memory?",
    "What should a fair latency measurement include?",
    "Which toolkit targets Intel hardware?",
)
# The index in DOCUMENTS of the document that answers each of QUESTIONS.
ANSWERS: tuple[int, ...] = (0, 6, 7, 5)
TOP_K = 3
# Documents are truncated to this many tokens (all of DOCUMENTS are shorter).
DOC_MAX_TOKENS = 48
# Hashed ids start here: ids below are left to the special tokens most vocabularies begin with.
FIRST_HASHED_ID = 4

_WORDS = re.compile(r"\w+|[^\w\s]")


def hash_ids(text: str, vocab_size: int) -> list[int]:
    """Token ids of ``text`` for a model without a tokenizer: one stable hash per word.

    Words and punctuation marks (lower-cased) map to ids in
    ``[min(FIRST_HASHED_ID, vocab_size - 1), vocab_size)``.
    """
    first = min(FIRST_HASHED_ID, vocab_size - 1)
    span = vocab_size - first
    return [first + int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(),
                                   "little") % span
            for word in _WORDS.findall(text.lower())]
