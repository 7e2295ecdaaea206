"""The auto tables read from transformers' source agree with the ones read by importing it."""

from __future__ import annotations

import ast

import pytest

from hwaccel.kit import autotables, autotables_source
from hwaccel.kit.taxonomy import EXPERT_KEYS


@pytest.fixture(scope="module")
def both():
    from_source = autotables_source.read(EXPERT_KEYS, autotables._text_tasks())
    assert from_source is not None, "the installed transformers' source was not readable"
    return from_source, autotables.read_by_import()


@pytest.mark.slow
def test_tasks_by_type_agree(both):
    from_source, imported = both
    normalise = lambda tables: {k: sorted(set(v)) for k, v in tables.items()}  # noqa: E731
    assert normalise(from_source["tasks_by_type"]) == normalise(imported["tasks_by_type"])


@pytest.mark.slow
def test_config_types_and_classes_agree(both):
    from_source, imported = both
    assert from_source["config_types"] == imported["config_types"]
    assert {k: sorted(v) for k, v in from_source["types_by_class"].items()} == \
        {k: sorted(v) for k, v in imported["types_by_class"].items()}


@pytest.mark.slow
def test_default_expert_counts_agree_with_built_configs(both):
    from_source, imported = both
    assert from_source["experts_by_type"] == imported["experts_by_type"]
    assert imported["experts_by_type"].get("mixtral", 0) > 1


def test_mapping_literals_follow_updates_and_splices():
    tree = ast.parse(
        "from collections import OrderedDict\n"
        "A = OrderedDict([('x', 'X'), ('y', ['Y1', 'Y2'])])\n"
        "A.update({'z': 'Z'})\n"
        "B = OrderedDict([*list(A.items()), ('w', 'W')])\n"
        "C = OrderedDict(**{'v': 'V'}, **A)\n"
        "D = OrderedDict(make())\n")
    known = autotables_source.module_mappings(tree)
    assert known["A"] == {"x": "X", "y": ["Y1", "Y2"], "z": "Z"}
    assert list(known["B"]) == ["x", "y", "z", "w"]
    assert list(known["C"]) == ["v", "x", "y", "z"]
    assert "D" not in known  # not a literal: left to the import fallback


def test_unreadable_source_falls_back_to_none(monkeypatch, tmp_path):
    monkeypatch.setattr(autotables_source, "transformers_root", lambda: tmp_path)
    assert autotables_source.read(EXPERT_KEYS, autotables._text_tasks()) is None
