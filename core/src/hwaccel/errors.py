"""Exceptions that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class HwaccelError(Exception):
    """Base class: an expected failure whose message is shown to the user as is."""

    exit_code = 1


class UsageError(HwaccelError):
    """Bad input from the user: an unknown model, a malformed config, a missing path."""

    exit_code = 2


class ModelReferenceError(UsageError):
    """A model reference that cannot be resolved or read."""


class PluginLoadError(HwaccelError):
    """A plugin failed to load while strict plugin loading was requested."""

    exit_code = 3


class MissingSlotError(HwaccelError):
    """A backend does not provide a template slot that a pipeline requires."""


class PluginHookError(HwaccelError):
    """A plugin's hook implementation failed while strict plugin mode was requested (or
    outside any caller that could record the failure against the plugin)."""

    exit_code = 3
