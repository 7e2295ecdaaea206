"""Helpers for pipeline plugins: the template part, the subfamily table, the tasks of a model.

Every pipeline answers ``hwaccel_template`` the same way (its Jinja2 test body, the imports the
body needs, the backend slots it uses) and most derive their subfamily from a model's
auto-model tasks by a table of rows; this module is that shared code. Importing it is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

from hwaccel.types import ModelRef, TemplatePart

# What a workload-based test body imports, and the backend slots it calls.
WORKLOAD_IMPORTS = """\
import torch
from hwaccel.kit import failures
from hwaccel.kit.failures import stage
from hwaccel.types import Classification
from hwaccel.kit.workloads import load_workload"""
BACKEND_SLOTS = ("imports", "availability", "placement", "synchronize", "cleanup", "tolerance")


def template_part(name: str, package: str, template_file: str) -> TemplatePart:
    """The pipeline half of a generated test: ``template_file`` shipped in ``package``."""
    template = files(package).joinpath(template_file).read_text(encoding="utf-8")
    return TemplatePart(owner="pipeline", name=name, template=template,
                        snippets={"imports": WORKLOAD_IMPORTS}, required_slots=BACKEND_SLOTS,
                        source=f"{package}/{template_file}")


def model_tasks(model: ModelRef) -> frozenset[str]:
    """The auto-model tasks of a reference: its model type's tables, else its explicit tasks."""
    from hwaccel.kit import autotables
    from hwaccel.kit.taxonomy import task_names

    if model.model_type:
        return autotables.load().tasks(model.model_type)
    return task_names(model.tasks)


def subfamily_by_tasks(tasks: Iterable[str],
                       table: Iterable[tuple[str, Iterable[str]]]) -> str | None:
    """The first subfamily of ``table`` (rows of subfamily, TASK names) that ``tasks`` meet."""
    tasks = set(tasks)
    for subfamily, names in table:
        if tasks.intersection(names):
            return subfamily
    return None
