"""The conversions hwaccel registers with torch's ONNX exporter: each exported graph loads in
ONNX Runtime and computes what torch computes."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

from hwaccel.kit.onnx_export import OPSET
from hwaccel.kit.onnx_symbolics import register


class Diff(torch.nn.Module):
    """transformers' packed-sequence check: a difference with a prepended column."""

    def forward(self, positions):
        return torch.diff(positions, prepend=positions[:, :1] - 1, dim=-1)


class TwiceDiff(torch.nn.Module):
    def forward(self, x):
        return torch.diff(x, n=2, dim=0, append=x[-1:] * 3)


class BoolCumsum(torch.nn.Module):
    """A cumulative count of a comparison: torch sums booleans into int64."""

    def forward(self, positions):
        return (positions != 1).cumsum(-1)


class CumsumAs(torch.nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 0, dtype=torch.float32)


def run_both(module: torch.nn.Module, example: torch.Tensor, path) -> tuple[np.ndarray, ...]:
    register(OPSET)
    torch.onnx.export(module, (example,), str(path), opset_version=OPSET, dynamo=False,
                      input_names=["x"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return module(example).numpy(), session.run(None, {"x": example.numpy()})[0]


@pytest.mark.parametrize("module, example", [
    (Diff(), torch.tensor([[0, 1, 2, 0, 1], [3, 4, 5, 6, 9]])),
    (TwiceDiff(), torch.tensor([[1.0, 4.0], [2.0, 8.0], [7.0, 1.0], [0.5, 2.0]])),
    (BoolCumsum(), torch.tensor([[0, 1, 1, 5], [1, 1, 2, 1]])),
    (BoolCumsum(), torch.tensor([[0, 1, 1, 5]], dtype=torch.int32)),
    (CumsumAs(), torch.tensor([1, 2, 3], dtype=torch.int32)),
], ids=["diff-prepend", "diff-twice-append", "cumsum-bool", "cumsum-int32", "cumsum-dtype"])
def test_the_exported_graph_computes_what_torch_computes(module, example, tmp_path):
    expected, got = run_both(module, example, tmp_path / "m.onnx")
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
