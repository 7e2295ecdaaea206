"""Inputs a text model takes beside its token ids, shaped from its config.

Some text models need more than token ids in their forward call: layout models a box per
token (``bbox``), vision-and-language encoders region features and their positions
(``visual_feats``, ``visual_pos``), language-adapter models the language of each token
(``lang_ids``). :func:`side_inputs` builds, for every such argument the model's ``forward``
names, seeded values of the shape and range its config declares.
"""

from __future__ import annotations

from typing import Any

from hwaccel.kit.tiny import TINY_SEED

REGIONS = 4  # image regions given to a vision-and-language encoder
BOX_CORNERS = 4  # (x0, y0, x1, y1)


def _int(config: Any, name: str, default: int) -> int:
    value = getattr(config, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def token_boxes(config: Any, batch: int, seq: int) -> Any:
    """One box per token, top-left corner before bottom-right.

    Coordinates are integers below the config's ``max_2d_position_embeddings`` when it has
    one (LayoutLM-style position tables), else fractions of the page. A config whose
    ``dim_bbox`` is 8 takes the four corners of each box (BROS).
    """
    import torch

    generator = torch.Generator().manual_seed(TINY_SEED)
    corners = torch.rand(batch, seq, 2, 2, generator=generator).sort(dim=2).values
    x0, x1 = corners[..., 0, 0], corners[..., 1, 0]
    y0, y1 = corners[..., 0, 1], corners[..., 1, 1]
    if _int(config, "dim_bbox", BOX_CORNERS) == 2 * BOX_CORNERS:
        boxes = torch.stack([x0, y0, x1, y0, x1, y1, x0, y1], dim=-1)
    else:
        boxes = torch.stack([x0, y0, x1, y1], dim=-1)
    limit = _int(config, "max_2d_position_embeddings", 0)
    return (boxes * (limit - 1)).long() if limit else boxes


def region_features(config: Any, batch: int) -> dict[str, Any]:
    """``visual_feats`` (regions x ``visual_feat_dim``) and ``visual_pos`` (their boxes)."""
    import torch

    generator = torch.Generator().manual_seed(TINY_SEED)
    feats = torch.randn(batch, REGIONS, _int(config, "visual_feat_dim", 1), generator=generator)
    pos = torch.rand(batch, REGIONS, _int(config, "visual_pos_dim", BOX_CORNERS),
                     generator=generator)
    return {"visual_feats": feats, "visual_pos": pos}


def side_inputs(config: Any, parameters: frozenset[str], batch: int, seq: int
                ) -> dict[str, Any]:
    """The side inputs of :mod:`this module <hwaccel_pipeline_text.side_inputs>` that a
    ``forward`` with these ``parameters`` takes, for ``batch`` rows of ``seq`` tokens."""
    import torch

    out: dict[str, Any] = {}
    if "bbox" in parameters:
        out["bbox"] = token_boxes(config, batch, seq)
    if {"visual_feats", "visual_pos"} <= parameters:
        out.update(region_features(config, batch))
    if "lang_ids" in parameters:  # the first of the config's languages
        out["lang_ids"] = torch.zeros(batch, seq, dtype=torch.long)
    return out
