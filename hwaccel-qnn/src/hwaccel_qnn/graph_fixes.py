"""Graph rewrites that keep the HTP computing what the exported graph says.

**Batch broadcast before a normalisation.** QNN's HTP (onnxruntime-qnn 2.7.0, QNN 2.51, the
x86_64 simulator) computes ``LayerNormalization(Add(x[B, S, H], c[1, S, H]))`` wrongly for
B >= 2 at many shapes (2x16x32, 4x32x32; not 2x8x32 nor 8x16x32): rows after the first come
out as ``LayerNorm(x[b])``, without the added term. Each op alone is right, the same Add
before any other op is right, ORT's own optimisations are not involved (it persists with
them off), and the decomposed layer norm (ReduceMean, Sub, ...) goes wrong the same way. This
is the pattern of a transformer's embeddings (token embeddings plus position embeddings,
then a layer norm): tiny BERT's rows after the first differed from PyTorch by 2.25 and GPT-2's
by 2.30, against 0.004 for the first. :func:`materialize_batch_broadcast` gives such an
operand its full batch (a tiled constant, or ``Tile`` of a computed tensor: ``Expand`` of a
computed tensor crashes the simulator), after which every row agrees to fp16's precision.

**Gathers of five or more dimensions.** A ``Gather`` whose output has rank 5 or more and
more than one leading row gives every row the first row's result on the HTP (a boolean
``[32, 1]`` table gathered with ``[2, 1, 1, 16]`` indices: rows 1.. equal row 0, at every
batch 2-8 and length 8-128 tried; rank 4, or a leading 1, is right). transformers builds a
padding mask that way, so a batch of texts of different lengths attended with the first
text's mask: MiniLM's second row was off by 0.82 where its own fp16 error is 0.15-0.23.
:func:`flatten_gather_indices` gathers with flattened indices and restores the shape.

**Long batched products with one weight.** ``MatMul(A[B, M, K], W[K, N])`` with B >= 2 is
wrong on the HTP when M > 1024 and M is not a multiple of 8 (2x1025, 2x1500, 3x1500; right at
M <= 1024, at 1056 or 1504, and at B = 1): the first row is right for about M/8 positions, the
others are mostly zeros. Whisper's 1,500 encoder frames go through every projection that way,
so its encoder states were off by 0.11 in both rows and its logits by 0.14 in the second;
:func:`batch_matmul_weights` gives such a weight the batch (``W[B, K, N]``), after which they
are off by 0.003 and 0.001, as PyTorch's own fp16 is. Flattening ``A`` to ``[B*M, K]``
instead was tried and does not help after a transpose.

``benchmarks/qnn_batch_rows.py`` measures them per row, with and without the rewrites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NORMALISATIONS = ("LayerNormalization", "ReduceMean")
"""Consumers after which a batch-broadcast Add/Sub goes wrong (ReduceMean: the decomposed
layer norm of older opsets)."""
BROADCAST_OPS = ("Add", "Sub")
HIGH_RANK = 5
"""The output rank from which the HTP's Gather repeats its first row."""
LONG_ROWS, ROW_TILE = 1024, 8
"""A batched MatMul with a shared weight goes wrong above LONG_ROWS rows per batch entry
unless the row count is a multiple of ROW_TILE (the boundary measured with weights up to
64 x 64 and batches of 2 and 3)."""
REWRITE_VERSION = 3  # part of the rewritten file's name: bump when a rewrite changes


def _dims(value: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim]


def _graph_shapes(model: Any) -> tuple[dict[str, list[int | None]], dict[str, Any],
                                        dict[str, Any]]:
    """Inferred shapes of every value, and the initializers and Constant nodes by name."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: _dims(v) for v in (*graph.value_info, *graph.input, *graph.output)}
    initializers = {init.name: init for init in model.graph.initializer}
    shapes.update({name: list(init.dims) for name, init in initializers.items()})
    constants = {node.output[0]: node for node in model.graph.node if node.op_type == "Constant"
                 and node.attribute and node.attribute[0].name == "value"}
    shapes.update({name: list(node.attribute[0].t.dims) for name, node in constants.items()})
    return shapes, initializers, constants


def _replace_nodes(model: Any, nodes: list[Any], rewritten: int) -> int:
    """Make ``nodes`` the graph's nodes when a rewrite changed any; return ``rewritten``."""
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return rewritten


def flatten_gather_indices(model: Any) -> int:
    """Rewrite every Gather with an output of rank :data:`HIGH_RANK` or more (and indices of
    rank 2 or more) as a Gather with flattened indices followed by a Reshape to its output
    shape, in place; return how many were rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    shapes, initializers, constants = _graph_shapes(model)
    nodes, rewritten = [], 0
    for node in model.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        indices = shapes.get(node.input[1]) if len(node.input) == 2 else None
        if (node.op_type != "Gather" or not out or None in out or len(out) < HIGH_RANK
                or not indices or len(indices) < 2):
            nodes.append(node)
            continue
        name, source = node.output[0], node.input[1]
        flat = f"{name}__flat_indices"
        if source in initializers or source in constants:
            array = numpy_helper.to_array(initializers[source] if source in initializers
                                          else constants[source].attribute[0].t)
            model.graph.initializer.append(numpy_helper.from_array(array.reshape(-1), flat))
        else:
            model.graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64),
                                                                   f"{flat}__shape"))
            nodes.append(helper.make_node("Reshape", [source, f"{flat}__shape"], [flat],
                                          name=flat))
        axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 0)
        nodes.append(helper.make_node("Gather", [node.input[0], flat], [f"{name}__flat"],
                                      name=f"{name}__flat", axis=axis))
        model.graph.initializer.append(numpy_helper.from_array(np.array(out, np.int64),
                                                               f"{name}__shape"))
        nodes.append(helper.make_node("Reshape", [f"{name}__flat", f"{name}__shape"], [name],
                                      name=f"{name}__shaped"))
        rewritten += 1
    return _replace_nodes(model, nodes, rewritten)


def batch_matmul_weights(model: Any) -> int:
    """Give the 2-D weight of every MatMul whose first operand has a batch of 2 or more and
    a row count the HTP computes wrongly (:data:`LONG_ROWS`, :data:`ROW_TILE`) that batch, in
    place (a tiled constant, or ``Tile`` of a computed weight); return how many were
    rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    shapes, initializers, constants = _graph_shapes(model)
    nodes, rewritten, made = [], 0, set()
    for node in model.graph.node:
        a = shapes.get(node.input[0]) if node.op_type == "MatMul" else None
        w = shapes.get(node.input[1]) if node.op_type == "MatMul" else None
        if (not a or not w or None in a or None in w or len(a) < 3 or len(w) != 2
                or int(np.prod(a[:-2])) <= 1 or a[-2] <= LONG_ROWS or a[-2] % ROW_TILE == 0):
            nodes.append(node)
            continue
        source, batch = node.input[1], list(a[:-2])
        batched = f"{source}__batch{'x'.join(map(str, batch))}"
        if batched in made:
            pass
        elif source in initializers or source in constants:
            array = numpy_helper.to_array(initializers[source] if source in initializers
                                          else constants[source].attribute[0].t)
            model.graph.initializer.append(numpy_helper.from_array(
                np.ascontiguousarray(np.broadcast_to(array, [*batch, *array.shape])), batched))
        else:
            ranked = f"{batched}__ranked"
            model.graph.initializer.extend([
                numpy_helper.from_array(np.array([1] * len(batch) + w, np.int64),
                                        f"{ranked}__shape"),
                numpy_helper.from_array(np.array(batch + [1, 1], np.int64),
                                        f"{batched}__repeats")])
            nodes += [helper.make_node("Reshape", [source, f"{ranked}__shape"], [ranked],
                                       name=ranked),
                      helper.make_node("Tile", [ranked, f"{batched}__repeats"], [batched],
                                       name=batched)]
        made.add(batched)
        node.input[1] = batched
        nodes.append(node)
        rewritten += 1
    return _replace_nodes(model, nodes, rewritten)


def materialize_batch_broadcast(model: Any) -> int:
    """Give every batch-1 operand of an Add/Sub that feeds a normalisation the full batch of
    the Add's output, in place; return how many operands were rewritten (0: untouched)."""
    import numpy as np
    from onnx import helper, numpy_helper

    shapes, initializers, constants = _graph_shapes(model)
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    nodes, rewritten = [], 0
    for node in model.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if (node.op_type in BROADCAST_OPS and out and None not in out and out[0] > 1
                and consumers.get(node.output[0], set()) & set(NORMALISATIONS)):
            for position, name in enumerate(node.input):
                dims = shapes.get(name)
                if dims is None or None in dims:
                    continue
                full = [1] * (len(out) - len(dims)) + list(dims)
                if full[0] != 1:
                    continue
                batched = f"{name}__batch{out[0]}"
                if name in initializers or name in constants:
                    if batched not in initializers:
                        array = numpy_helper.to_array(initializers[name] if name in initializers
                                                      else constants[name].attribute[0].t)
                        tiled = np.ascontiguousarray(np.broadcast_to(
                            array.reshape(full), [out[0], *full[1:]]))
                        initializers[batched] = numpy_helper.from_array(tiled, batched)
                        model.graph.initializer.append(initializers[batched])
                else:
                    source = name
                    if len(dims) < len(out):
                        source = f"{name}__rank{len(out)}"
                        model.graph.initializer.append(numpy_helper.from_array(
                            np.array(full, np.int64), f"{source}__shape"))
                        nodes.append(helper.make_node("Reshape", [name, f"{source}__shape"],
                                                      [source], name=source))
                    repeats = f"{batched}__repeats"
                    model.graph.initializer.append(numpy_helper.from_array(
                        np.array([out[0]] + [1] * (len(out) - 1), np.int64), repeats))
                    nodes.append(helper.make_node("Tile", [source, repeats], [batched],
                                                  name=batched))
                node.input[position] = batched
                rewritten += 1
        nodes.append(node)
    return _replace_nodes(model, nodes, rewritten)


def prepared_for_htp(path: Path) -> Path:
    """The graph at ``path`` with :func:`materialize_batch_broadcast`,
    :func:`flatten_gather_indices` and :func:`batch_matmul_weights` applied, written beside
    it once
    (``<name>.htp<version>.onnx``); ``path`` itself when nothing needs rewriting."""
    import os

    import onnx

    target = path.with_name(f"{path.stem}.htp{REWRITE_VERSION}.onnx")
    marker = target.with_suffix(".unchanged")
    if target.is_file():
        return target
    if marker.is_file():
        return path
    model = onnx.load(str(path))
    if not (materialize_batch_broadcast(model) + flatten_gather_indices(model)
            + batch_matmul_weights(model)):
        marker.touch()
        return path
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        onnx.save(model, str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
