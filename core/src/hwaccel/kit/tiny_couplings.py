"""Sizes a tiny config must keep consistent with one another beyond what the key names say.

Each rule reads one (sub-)config's default values and the overrides the name rules of
:mod:`hwaccel.kit.tiny` made so far, and adds overrides of its own:

* :func:`attention_heads`: a config whose key/value heads equal its query heads (plain
  multi-head or latent attention, whose code expands keys to every head) keeps them equal;
* :func:`mamba2_heads`: Mamba2-style mixers keep ``heads * head_dim == expand * width`` with
  their groups dividing the heads;
* :func:`rope_sections`: multimodal rotary sections (``mrope_section``) sum to the rotary
  half of the tiny head, sections that were equal staying equal;
* :func:`width_named_hidden_dim`: a config whose only width is ``hidden_dim`` (a speech
  encoder's) shrinks it as a width, not as the inner size the name usually means;
* :func:`chained_block_channels`: per-stage lists of block rows (``block_configs``: a row
  ``[kernel, in, out, stride, se]`` per block) narrow the channels their rows chain (one
  block's output the next one's input, across stages), every channel value alike, so the
  chain still holds and a depthwise convolution's groups (its input) follow; the config's
  other channel keys holding those values (the stem that feeds the first block) follow too.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

# (heads, head size, groups, expand) keys of Mamba2-style mixers
MAMBA2_HEAD_KEYS = (("num_heads", "head_dim", "n_groups", "expand"),
                    ("mamba_n_heads", "mamba_d_head", "mamba_n_groups", "mamba_expand"),
                    ("mamba_num_heads", "mamba_head_dim", "n_groups", "expand"),
                    ("n_mamba_heads", "mamba_headdim", "mamba_ngroups", "mamba_expand"))
_QUERY_HEADS = ("num_attention_heads", "n_head", "n_heads", "encoder_attention_heads")
_KV_HEADS = ("num_key_value_heads", "num_kv_heads", "multi_query_group_num")
_SEARCHED_TOTAL = 64  # larger totals split in proportion (their rounding keeps equalities)
_WIDTHS = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim", "embedding_size")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def attention_heads(values: dict[str, Any], out: dict[str, Any]) -> None:
    """Key/value heads that equalled the query heads still do."""
    for heads_key, kv_key in itertools.product(_QUERY_HEADS, _KV_HEADS):
        heads, kv = _int(values.get(heads_key)), _int(values.get(kv_key))
        if heads is not None and heads == kv and heads_key in out:
            out[kv_key] = out[heads_key]


def mamba2_heads(values: dict[str, Any], out: dict[str, Any], max_heads: int) -> None:
    """Mamba2-style heads, head size and groups that fit the shrunk width."""
    merged = {**values, **out}
    hidden = _int(merged.get("hidden_size"))
    for heads_key, dim_key, groups_key, expand_key in MAMBA2_HEAD_KEYS:
        heads, dim = _int(merged.get(heads_key)), _int(merged.get(dim_key))
        groups, expand = _int(merged.get(groups_key)), _int(merged.get(expand_key))
        if None in (heads, dim, expand, hidden):
            continue
        inner = _int(merged.get("mamba_d_ssm")) or expand * hidden
        if heads * dim == inner and (not groups or heads % groups == 0):
            continue
        heads = max(1, min(heads, max_heads))
        while inner % heads:
            heads -= 1
        out[heads_key], out[dim_key] = heads, inner // heads
        if groups:
            out[groups_key] = math.gcd(groups, heads)


def split_keeping_equal(total: int, weights: list[int]) -> list[int]:
    """``total`` split in positive parts near proportion to ``weights``, parts whose weights
    are equal kept equal (a model that stacks its height and width sections needs them so);
    without such a split, the proportional one."""
    distinct = list(dict.fromkeys(weights))
    if total > _SEARCHED_TOTAL or len(distinct) == len(weights) and total >= len(weights):
        return _proportional(total, weights)
    counts = [weights.count(w) for w in distinct]
    scale = total / max(sum(weights), 1)
    best: tuple[float, list[int]] | None = None
    for values in itertools.product(range(1, total + 1), repeat=len(distinct)):
        if sum(v * c for v, c in zip(values, counts, strict=True)) != total:
            continue
        error = sum((v - w * scale) ** 2 for v, w in zip(values, distinct, strict=True))
        if best is None or error < best[0]:
            best = (error, [values[distinct.index(w)] for w in weights])
    return best[1] if best else _proportional(total, weights)


def _proportional(total: int, weights: list[int]) -> list[int]:
    """``total`` split in ``len(weights)`` parts in proportion to ``weights``, each at least
    one while ``total`` allows."""
    count = len(weights)
    if total < count:  # too few to give every part one: the last parts get them
        return [0] * (count - total) + [1] * total
    scale = (total - count) / max(sum(weights), 1)
    parts = [1 + int(w * scale) for w in weights]
    # the largest remainders first; on a tie the later part (the last sections of a rotary
    # split are the ones a model may stack and need equal)
    order = sorted(range(count), key=lambda i: (weights[i] * scale - int(weights[i] * scale),
                                                i), reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def rotary_half(values: dict[str, Any], out: dict[str, Any]) -> int | None:
    """Half the rotary part of the tiny head: head size times the partial rotary factor."""
    merged = {**values, **out}
    head_dim = _int(merged.get("head_dim"))
    width, heads = _int(merged.get("hidden_size")), _int(merged.get("num_attention_heads"))
    if head_dim is None and width and heads:
        head_dim = width // heads
    if head_dim is None:
        return None
    rope = merged.get("rope_parameters") if isinstance(merged.get("rope_parameters"), dict) \
        else {}
    factor = rope.get("partial_rotary_factor", merged.get("partial_rotary_factor")) or 1.0
    return int(head_dim * float(factor)) // 2


def rope_sections(values: dict[str, Any], out: dict[str, Any],
                  declared: tuple[str, ...] = ()) -> None:
    """Sections of the rotary frequencies (time, height, width) that fit the tiny head, when
    the rope parameters name them or the config class ``declared`` them (its modeling code
    then assumes defaults made for full-size heads)."""
    rope = values.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_type" not in rope:  # not one flat set of them
        return
    keys = {k for k in declared if isinstance(k, str) and k.endswith("section")}
    keys |= {k for k, v in rope.items() if k.endswith("section") and isinstance(v, list)}
    half = rotary_half(values, out)
    if not keys or not half:
        return
    sections = dict(rope)
    for key in keys:
        current = rope.get(key)
        weights = current if isinstance(current, list) and current else [1, 1, 1]
        sections[key] = split_keeping_equal(half, weights)
    out["rope_parameters"] = sections


def width_named_hidden_dim(values: dict[str, Any], out: dict[str, Any], width: int) -> None:
    """``hidden_dim`` as the width of a config that names no other width."""
    if _int(values.get("hidden_dim")) and not any(k in values for k in _WIDTHS):
        out["hidden_dim"] = min(values["hidden_dim"], width)


def chained_block_channels(values: dict[str, Any], out: dict[str, Any], cap: int) -> None:
    """Channel columns of per-stage block rows capped at ``cap``, each value alike (see the
    module docstring); other columns (kernels, strides, flags) keep their values. The
    config's other ``*channels`` keys (a stem's ``[3, 48, 96]`` that feeds the first block,
    per-stage output channels) map the chain's values alike."""
    for key, stages in list(values.items()):
        rows = _block_rows(stages)
        columns = _chained_columns(rows) if rows else set()
        if not columns:
            continue
        out[key] = [[[min(v, cap) if i in columns else v for i, v in enumerate(row)]
                     for row in stage] for stage in stages]
        narrowed = {row[i]: cap for row in rows for i in columns if row[i] > cap}
        for name, value in values.items():
            if name.endswith("channels") and name not in out:
                _map_ints(name, value, narrowed, out)


def _map_ints(name: str, value: Any, mapping: dict[int, int], out: dict[str, Any]) -> None:
    """``out[name]``: ``value`` (an int or a sequence of ints) with ``mapping`` applied, when
    that changes it."""
    if _int(value) is not None and value in mapping:
        out[name] = mapping[value]
    elif isinstance(value, (list, tuple)) and value and all(_int(v) is not None for v in value) \
            and set(value) & set(mapping):
        out[name] = [mapping.get(v, v) for v in value]


def _block_rows(stages: Any) -> list[list[Any]] | None:
    """The block rows of a per-stage list of them, in order (every stage a non-empty list of
    rows of one length), else ``None``."""
    if not (isinstance(stages, list) and stages and all(
            isinstance(stage, list) and stage for stage in stages)):
        return None
    rows = [row for stage in stages for row in stage]
    if not all(isinstance(row, list) and row and len(row) == len(rows[0]) for row in rows):
        return None
    return rows


def _chained_columns(rows: list[list[Any]]) -> set[int]:
    """The columns ``i`` and ``j`` of every pair in which each row's ``j`` is the next row's
    ``i`` (a block's output channels the next block's input), over integer columns."""
    if len(rows) < 2:
        return set()
    integer = [i for i in range(len(rows[0])) if all(_int(row[i]) is not None for row in rows)]
    return {column for i, j in itertools.permutations(integer, 2)
            if all(a[j] == b[i] for a, b in itertools.pairwise(rows)) for column in (i, j)}
