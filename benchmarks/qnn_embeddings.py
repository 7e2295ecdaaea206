"""MiniLM's sentence embeddings on QNN's HTP (Qualcomm's x86_64 simulator here) against fp32.

Run: .venv/bin/python benchmarks/qnn_embeddings.py [--model minilm] [--precision int8 fp16]

Each of the rag pipeline's shipped documents and questions is embedded (mean pooling over the
attention mask, as sentence-transformers does) by the model in fp32 with PyTorch on the CPU
and by the qnn backend's graph at each precision, one text per call at 32 tokens. It prints
the cosine similarity of every text's two embeddings and the lowest. int8 is calibrated on the
text workload's own sentences, none of which is among these texts.
"""

from __future__ import annotations

import argparse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--precision", nargs="+", default=["int8", "fp16"])
    parser.add_argument("--seq-len", type=int, default=32)
    args = parser.parse_args()

    import torch

    from hwaccel.kit.workloads import load_workload
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load
    from hwaccel_pipeline_rag.documents import DOCUMENTS, QUESTIONS
    from hwaccel_qnn.runtime import default_device, load_on_qnn

    workload = load_workload(args.model, classify(args.model, load()).classification)
    workload.prepare()
    if workload.tokenizer is None:
        parser.error(f"{args.model} has no tokenizer: its embeddings of text mean nothing")
    model = workload.load_model()
    hardware = default_device()
    texts = DOCUMENTS + QUESTIONS
    encoded = [dict(workload.tokenizer([text], padding="max_length", truncation=True,
                                       max_length=args.seq_len, return_tensors="pt"))
               for text in texts]
    feeds = [{name: value for name, value in inputs.items()
              if name in ("input_ids", "attention_mask", "token_type_ids")}
             for inputs in encoded]
    reference = [workload.embeddings(workload.forward(model, feed), feed) for feed in feeds]
    print(f"{args.model} on {hardware.name}: cosine similarity to fp32 PyTorch, "
          f"{len(texts)} texts ({len(DOCUMENTS)} documents, {len(QUESTIONS)} questions)")
    for precision in args.precision:
        placed = load_on_qnn(model, workload, 1, args.seq_len, model_ref=args.model,
                             hardware=hardware, precision=precision)
        similarities = [float(torch.nn.functional.cosine_similarity(
            workload.embeddings(workload.forward(placed, feed), feed).float(), expected))
            for feed, expected in zip(feeds, reference, strict=True)]
        print(f"  {placed.precision:5s} (asked {precision}): lowest {min(similarities):.4f}, "
              f"mean {sum(similarities) / len(similarities):.4f}; per text "
              f"{' '.join(f'{value:.4f}' for value in similarities)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
