"""Model references for workloads: what a pipeline needs of hwaccel's model resolution.

A composition pipeline (retrieve-then-generate) classifies its parts; a workload that finds
no local copy of a hub model raises the one-line message hwaccel gives everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwaccel.kit.taxonomy import Label
    from hwaccel.types import Classification, ModelRef


def not_cached_message(spec: str) -> str:
    """The one-line error for a hub id that is not in the local Hugging Face cache."""
    from hwaccel.models.resolve import not_cached_message as message

    return message(spec)


def label_of(part: ModelRef) -> Label:
    """The TAXONOMY.md labels of one part of a composition, from its strongest evidence."""
    from hwaccel.models.classify import gather_evidence, reference_of

    return reference_of(gather_evidence(part))


def classify_part(part: ModelRef) -> Classification:
    """Classify one part of a composition with the installed pipeline plugins."""
    from hwaccel.models.classify import classify_ref
    from hwaccel.plugins import get_plugins

    return classify_ref(part, get_plugins()).classification
