"""QNN's HTP (Qualcomm's x86_64 simulator here) against PyTorch, batch row by batch row.

Run: .venv/bin/python benchmarks/qnn_batch_rows.py [--model tiny:bert] [--shapes 1x16,2x8,...]

For each (batch, length) the model's workload call is exported to a fixed-shape ONNX graph
and run on the HTP in fp16 (as the qnn backend runs it) and on ONNX Runtime's CPU provider;
it prints the largest absolute difference to PyTorch of each batch row's outputs. A
difference of fp16's size (~1e-3) in every row is the precision; a row far off while the
first agrees is not.
"""

from __future__ import annotations

import argparse

DEFAULT_SHAPES = "1x16,2x8,2x12,4x8,2x16,2x32,3x16"


def row_diffs(model_ref: str, batch: int, length: int) -> tuple[list[float], float]:
    """Per-row max abs difference HTP vs PyTorch, and the CPU provider's overall one."""
    import onnxruntime as ort
    import torch

    from hwaccel.classify import classify
    from hwaccel.plugins import load
    from hwaccel.workloads import load_workload
    from hwaccel_qnn.runtime import default_device, load_on_qnn

    workload = load_workload(model_ref, classify(model_ref, load()).classification)
    workload.prepare()
    model = workload.load_model()
    inputs = workload.make_inputs(batch, length)
    reference = workload.forward(model, inputs)
    on_htp = load_on_qnn(model, workload, batch, length, model_ref=model_ref,
                         hardware=default_device())
    outputs = workload.forward(on_htp, inputs)
    cpu = ort.InferenceSession(str(on_htp.exported.path), providers=["CPUExecutionProvider"])
    feed = {name: tensor.numpy() for name, tensor in on_htp.exported.feeds(inputs).items()}
    cpu_first = torch.from_numpy(cpu.run(None, feed)[0])
    name = next(iter(reference))
    diff = (outputs[name].float() - reference[name].float()).abs()
    rows = [float(diff[row].max()) for row in range(batch)]
    return rows, float((cpu_first - reference[name].float()).abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:bert")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="BATCHxLENGTH,...")
    args = parser.parse_args()
    print(f"{args.model}: max |HTP fp16 - PyTorch| per batch row (ORT CPU - PyTorch)")
    for shape in args.shapes.split(","):
        batch, length = (int(part) for part in shape.split("x"))
        rows, cpu = row_diffs(args.model, batch, length)
        print(f"  batch {batch} x length {length:3d}: "
              f"{'  '.join(f'{d:.4f}' for d in rows)}   (cpu provider {cpu:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
