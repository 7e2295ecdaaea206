"""QNN's HTP (Qualcomm's x86_64 simulator here) against PyTorch, batch row by batch row.

Run: .venv/bin/python benchmarks/qnn_batch_rows.py [--model tiny:bert] [--shapes 1x16,2x8,...]

For each (batch, length) the model's workload call is exported to a fixed-shape ONNX graph
and run on the HTP in fp16 as the qnn backend runs it (with :mod:`hwaccel_qnn.graph_fixes`'
rewrite), as exported (without it), and on ONNX Runtime's CPU provider; it prints the largest
absolute difference to PyTorch of each batch row's outputs. A difference of fp16's size
(~1e-3) in every row is the precision; a row far off while the first agrees is not.
"""

from __future__ import annotations

import argparse

DEFAULT_SHAPES = "1x16,2x8,2x12,4x8,2x16,2x32,3x16"


def row_diffs(model_ref: str, batch: int, length: int
              ) -> tuple[list[float], list[float], float]:
    """Per-row max abs difference HTP vs PyTorch with and without the rewrite, and the CPU
    provider's overall one."""
    import onnxruntime as ort
    import torch

    from hwaccel.kit.workloads import load_workload
    from hwaccel.models.classify import classify
    from hwaccel.plugins import load
    from hwaccel_qnn.runtime import create_session, default_device, load_on_qnn, provider_options

    workload = load_workload(model_ref, classify(model_ref, load()).classification)
    workload.prepare()
    model = workload.load_model()
    inputs = workload.make_inputs(batch, length)
    reference = workload.forward(model, inputs)
    hardware = default_device()
    on_htp = load_on_qnn(model, workload, batch, length, model_ref=model_ref,
                         hardware=hardware)
    name = next(iter(reference))
    expected = reference[name].float()
    fixed = (workload.forward(on_htp, inputs)[name].float() - expected).abs()
    feed = {key: tensor.numpy() for key, tensor in on_htp.exported.feeds(inputs).items()}
    raw_session = create_session(on_htp.exported.path, provider_options(hardware))
    raw = (torch.from_numpy(raw_session.run(None, feed)[0]) - expected).abs()
    cpu = ort.InferenceSession(str(on_htp.exported.path), providers=["CPUExecutionProvider"])
    cpu_first = torch.from_numpy(cpu.run(None, feed)[0])
    return ([float(fixed[row].max()) for row in range(batch)],
            [float(raw[row].max()) for row in range(batch)],
            float((cpu_first - expected).abs().max()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:bert")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="BATCHxLENGTH,...")
    args = parser.parse_args()
    print(f"{args.model}: max |HTP fp16 - PyTorch| per batch row, rewritten | as exported "
          "(ORT CPU - PyTorch)")
    for shape in args.shapes.split(","):
        batch, length = (int(part) for part in shape.split("x"))
        fixed, raw, cpu = row_diffs(args.model, batch, length)
        print(f"  batch {batch} x length {length:3d}: {'  '.join(f'{d:.4f}' for d in fixed)}"
              f"  |  {'  '.join(f'{d:.4f}' for d in raw)}   (cpu provider {cpu:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
