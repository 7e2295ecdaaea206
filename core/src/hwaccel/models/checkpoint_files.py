"""Which weight files make up a model folder's checkpoint, each counted once.

A folder often holds one checkpoint several times: shards and a ``consolidated.safetensors``,
``model.safetensors`` beside ``pytorch_model.bin``, ``tf_model.h5`` and
``flax_model.msgpack``. As transformers loads it, one format counts, the first of
:data:`WEIGHT_SUFFIXES` the folder holds (safetensors first); when that
format has an index (``model.safetensors.index.json``, ``pytorch_model.bin.index.json``),
the shards its ``weight_map`` names count, once each, and nothing else; without an index, a
variant (``model.fp16.safetensors``) beside the plain file does not count.

The weights are in the folder itself, or (a diffusers pipeline, whose folder holds none) in
its component subfolders, each chosen alike.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hwaccel.errors import ModelReferenceError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")
"""Files that hold a checkpoint's weights (one or several shards), the preferred format first."""


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The weight files of the checkpoint in ``folder``, sorted; empty when it holds none.

    :raises ModelReferenceError: an index is not valid JSON, or names a shard outside the
        folder or missing from it (one line).
    """
    root = Path(folder)
    chosen = _folder_files(root)
    if chosen:
        return chosen
    return [path for sub in _subfolders(root) for path in _folder_files(sub)]


def unusable_checkpoint(folder: str | Path) -> str | None:
    """Why the checkpoint in ``folder`` cannot be loaded as it is (a broken index, a missing
    shard, a broken safetensors header), in one line; ``None`` when its files read (or when
    there are none, which :func:`checkpoint_files` reports as an empty list)."""
    try:
        for path in checkpoint_files(folder):
            if path.suffix == ".safetensors":
                read_safetensors_header(path)
    except ModelReferenceError as exc:
        return str(exc)
    except ValueError as exc:
        return f"unusable checkpoint: {exc}"
    return None


#: the largest header a safetensors file may declare (safetensors' own limit)
MAX_SAFETENSORS_HEADER = 100_000_000


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensors of a ``.safetensors`` file: name -> ``{"dtype", "shape"}``, read from the
    file's header (an 8-byte little-endian length, then that many bytes of JSON) with the
    checks ``safetensors.safe_open`` makes on it: no tensor is loaded, and no array library
    is imported.

    :raises ValueError: the file is not a valid safetensors file (the reason in one line).
    """
    import struct

    def invalid(reason: str) -> ValueError:
        return ValueError(f"{path} is not a valid safetensors file: {reason}")

    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise invalid("the file is shorter than its 8-byte header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
                raise invalid(f"its header length {length} exceeds the file or the limit")
            header = json.loads(handle.read(length).decode("utf-8"))
    except OSError as exc:
        raise invalid(" ".join(str(exc).split()) or type(exc).__name__) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise invalid("its header is not a JSON object")
    tensors: dict[str, dict[str, Any]] = {}
    data = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(entry.get("dtype") if isinstance(entry, dict) else None, str)
                or not isinstance(shape, list)
                or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not (isinstance(offsets, list) and len(offsets) == 2
                        and all(isinstance(o, int) for o in offsets)
                        and 0 <= offsets[0] <= offsets[1] <= data)):
            raise invalid(f"tensor {name!r} has no valid dtype, shape and data offsets")
        tensors[name] = {"dtype": entry["dtype"], "shape": list(shape)}
    return tensors


def _subfolders(root: Path) -> list[Path]:
    try:
        return sorted(entry for entry in root.iterdir() if entry.is_dir())
    except OSError:
        return []


def _folder_files(folder: Path) -> list[Path]:
    """The checkpoint files directly in ``folder``: one format, its index's shards if any."""
    try:
        files = [entry for entry in folder.iterdir() if entry.is_file()]
    except OSError:
        return []
    for suffix in WEIGHT_SUFFIXES:
        weights = sorted(p for p in files if p.suffix == suffix)
        if not weights:
            continue
        indexes = sorted(p for p in files if p.name.endswith(f"{suffix}.index.json"))
        if not indexes:
            return _without_variants(weights)
        return sorted({shard for index in indexes for shard in _shards(index, folder)})
    return []


def _without_variants(weights: list[Path]) -> list[Path]:
    """The files less the variants of another (``model.fp16.safetensors`` beside
    ``model.safetensors``): diffusers and transformers load the plain one unless asked."""
    names = {p.name for p in weights}
    return [p for p in weights
            if Path(p.stem).suffix == "" or f"{Path(p.stem).stem}{p.suffix}" not in names]


def _shards(index: Path, folder: Path) -> list[Path]:
    """The shard files an index's ``weight_map`` names, each checked to be in ``folder``."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelReferenceError(f"malformed checkpoint index {index}: "
                                  f"{' '.join(str(exc).split())}") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()):
        raise ModelReferenceError(f"malformed checkpoint index {index}: weight_map must map "
                                  "tensor names to shard file names")
    shards = []
    for name in sorted(set(weight_map.values())):
        relative = os.path.normpath(name)
        if os.path.isabs(relative) or relative.split(os.sep)[0] == os.pardir:
            raise ModelReferenceError(f"malformed checkpoint index {index}: shard {name!r} "
                                      "lies outside its folder")
        shard = folder / relative
        if not shard.is_file():
            raise ModelReferenceError(f"incomplete checkpoint in {folder}: {index.name} names "
                                      f"{name!r}, which is missing")
        shards.append(shard)
    return shards
