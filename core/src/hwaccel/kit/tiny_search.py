"""The tiny config of a ``tiny:`` model that really runs: shrink, check, relax, remember.

:func:`find_tiny_config` asks the workload for candidate tiny configs
(:meth:`hwaccel.kit.workloads.TransformersWorkload.tiny_config`) and checks each the way a job
uses it: the model is built on the meta device first (a candidate above
:data:`MAX_PARAMETERS` is never allocated), then built for real from the fixed seed, given
the workload's own inputs and run once. The first candidate is everything shrunk. When it
fails, the search relaxes it step by step: it keeps the type's default for one more key
path (or one whole sub-config) at a time, suspects first: keys the error names, keys whose
default value the error quotes, then every sub-config, then the other shrunk keys. A
relaxation that moves the failure elsewhere is kept and the search goes on from the new
failure; one that changes nothing is dropped. Last comes the type's default config itself
(with the values it lacks that the search completed), when it is small enough to build.

The working set of kept keys is remembered per (workload class, model type, transformers
version, hwaccel version) in the cache folder, so the check runs once per machine. When no
candidate runs, the failure is hwaccel's (``harness``), with the first error (the one left
after the values the search completed, when it completed some) and what was tried, unless
the type's own default config fails the same way on inputs its processor made (``model``);
a default config too large to build is named with its parameter count. A failure that no
relaxation can help (hwaccel's own inputs, a missing library) stops the search wherever it
appears.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from dataclasses import dataclass
from typing import Any

from hwaccel.kit import jsoncache, paths
from hwaccel.kit.failures import (
    HARNESS,
    MODEL,
    AttributedError,
    attribute,
    missing_dependency,
    one_line,
    raised_by_hwaccel,
    where,
)
from hwaccel.kit.tiny import FIRST_LAYERS, refusal_of, without_kind
from hwaccel.kit.tiny_completion import completion_for, completions_in

MAX_PARAMETERS = 60_000_000
"""A relaxed candidate with more parameters than this is not built (about 240 MB in fp32)."""
MAX_SHRUNK_PARAMETERS = 300_000_000
"""Above this, even the fully shrunk candidate is not built: a size the shrinker missed."""
MAX_ATTEMPTS = 16
"""Candidates built and run at most, the default config included."""
PROBE_BATCH, PROBE_SEQ = 2, 16
_CACHE_FORMAT = 1
_NUMBER = re.compile(r"\d+")


@dataclass
class Attempt:
    """How one candidate fared: ``error`` is ``None`` when it built and ran."""

    keep: frozenset[str]
    config: Any = None
    stage: str = ""
    error: BaseException | None = None
    parameters: int | None = None
    inputs: frozenset[str] = frozenset()
    forward_parameters: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        """True when the candidate built and ran."""
        return self.error is None and self.config is not None

    @property
    def signature(self) -> tuple[str, str]:
        """Where and how it failed, to tell whether a relaxation moved the failure."""
        if self.error is None:
            return ("", "")
        message = re.sub(r"\d+", "#", str(self.error))[:120]  # not moved by sizes alone
        return (where(self.error), f"{type(self.error).__name__}: {message}")


def _cache_file(workload: Any) -> Any:
    import transformers

    core = importlib.metadata.version("hwaccel-core")
    cls = type(workload)
    name = f"{cls.__module__}.{cls.__qualname__}-{workload.ref.model_type}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return (paths.cache_dir() / "tiny-configs" /
            f"transformers-{transformers.__version__}-hwaccel-{core}" / f"{safe}.json")


def find_tiny_config(workload: Any) -> Any:
    """Return the tiny config of ``workload``'s model type that builds and runs.

    :raises AttributedError: when no candidate runs (see the module docstring).
    """
    cache = _cache_file(workload)
    found = jsoncache.read(cache)
    if isinstance(found, dict) and found.get("format") == _CACHE_FORMAT and isinstance(
            found.get("keep"), list):
        return workload.tiny_config(frozenset(found["keep"]))
    attempt = _Search(workload).run()
    jsoncache.write(cache, {"format": _CACHE_FORMAT, "keep": sorted(attempt.keep),
                            "parameters": attempt.parameters})
    return attempt.config


def _count_parameters(model: Any) -> int:
    """Parameters of a model, tied ones once."""
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total


class _Search:
    """One search over the candidates of one workload (see the module docstring)."""

    def __init__(self, workload: Any):
        from hwaccel.kit.tiny import (
            changed_paths,
            default_config,
            default_values,
            layer_kinds,
            shrunk_values,
            subconfig_paths,
        )

        self.workload = workload
        self.default = default_values(workload.ref.model_type)
        self.default_config = default_config(workload.ref.model_type)
        self.changed = changed_paths(self.default, shrunk_values(self.default))
        self.subconfigs = subconfig_paths(self.default)
        self.kinds = layer_kinds(self.default)
        self.attempts: list[Attempt] = []

    def probe(self, keep: frozenset[str], limit: int = MAX_PARAMETERS) -> Attempt:
        """Build the candidate that keeps ``keep`` at its defaults and run it once, unless
        it has more than ``limit`` parameters."""
        attempt = Attempt(keep)
        self.attempts.append(attempt)
        workload = self.workload
        probe = type(workload)(workload.ref, workload.classification)
        try:
            attempt.stage = "config"
            attempt.config = workload.tiny_config(keep)
            probe.__dict__["config"] = attempt.config
            attempt.stage = "build"
            attempt.parameters = _count_parameters(probe.skeleton())
            if attempt.parameters > limit:
                attempt.config = None
                return attempt
            model = probe.load_model()
            attempt.stage = "inputs"
            inputs = probe.make_inputs(PROBE_BATCH, PROBE_SEQ)
            attempt.inputs = frozenset(inputs)
            attempt.forward_parameters = _forward_parameters(model)
            attempt.stage = "forward"
            probe.forward(model, inputs)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding of the search
            attempt.error = exc
        self.input_source = probe.input_source
        return attempt

    def suspects(self, attempt: Attempt, kept: frozenset[str]) -> list[str]:
        """Key paths (and sub-configs) to keep at their defaults next, likeliest first: a
        value the config lacks (:mod:`hwaccel.kit.tiny_completion`), keys the error names, keys
        whose default it quotes, fewer kinds of layers, keys one of whose words it uses,
        sub-configs, the rest."""
        message = f"{attempt.error} {refusal_of(attempt.config) or ''}"  # and the validators'
        numbers = {int(n) for n in _NUMBER.findall(message)}
        words = set(re.findall(r"[a-z]{4,}", message.lower()))
        named, quoted, worded, rest = [], [], [], []
        for path in self.changed:
            if path in kept or any(path.startswith(k + ".") for k in kept):
                continue
            leaf = path.rsplit(".", 1)[-1]
            if re.search(rf"\b{re.escape(leaf)}\b", message):
                named.append(path)
            elif numbers & _ints(_lookup(self.default, path)) - {0, 1, 2}:
                quoted.append(path)
            elif words & set(leaf.lower().split("_")):  # "layers.1" for layers_block_type
                worded.append(path)
            else:
                rest.append(path)
        subconfigs = [p for p in self.subconfigs if p not in kept]
        layers = [k for k in self.layer_relaxations if k not in kept]
        completion = completion_for(attempt.error, self.default_config) \
            if attempt.error else None
        completions = [completion] if completion and completion not in kept else []
        return list(dict.fromkeys(completions + named + quoted + layers + worded +
                                  subconfigs + rest))

    @property
    def layer_relaxations(self) -> list[str]:
        """Fewer kinds of layers: each kind left out in turn, then the first layers only."""
        return [*(without_kind(kind) for kind in self.kinds), FIRST_LAYERS] if self.kinds \
            else []

    def run(self) -> Attempt:
        """Search the candidates; return the first that runs or raise the failure."""
        kept: frozenset[str] = frozenset()
        current = self.probe(kept, MAX_SHRUNK_PARAMETERS)
        first = current
        if first.error is None and first.config is None:
            raise AttributedError(HARNESS, (
                f"the shrunk config of {self.workload.ref.model_type!r} still has "
                f"{first.parameters:,} parameters: a size key the shrinker does not know"),
                stage="tiny-config")
        if first.error is not None and self._hopeless(first):
            raise _attributed(first)
        default: Attempt | None = None
        if (first.stage in ("config", "build") and first.error is not None
                and completion_for(first.error, self.default_config) is None):
            default = self.probe(self.default_keep)  # on the meta device first: cheap
            if default.error is not None and self._same_failure(first, default):
                for relaxed in self.layer_relaxations:  # a kind of layer that cannot build
                    fewer = self.probe(frozenset({relaxed}))
                    if fewer.ok:
                        return fewer
                raise self._failure(first, default)
        queue = self.suspects(current, kept) if not current.ok else []
        while not current.ok and queue and len(self.attempts) < MAX_ATTEMPTS - 1:
            candidate = self.probe(kept | {queue.pop(0)})
            if candidate.ok:
                return candidate
            moved = candidate.error is not None and candidate.signature != current.signature
            if moved:  # the relaxation got past the failure: keep it, follow the new one
                kept, current = candidate.keep, candidate
                if self._hopeless(current):
                    raise _attributed(current)
                queue = self.suspects(current, kept)
        if current.ok:
            return current
        default = default or self.probe(self.default_keep | completions_in(kept))
        if default.ok:
            return default
        # with values completed, the failure to show is the one left after them
        raise self._failure(current if completions_in(kept) else first, default)

    @property
    def default_keep(self) -> frozenset[str]:
        """Keep everything: the type's default config itself."""
        return frozenset(self.subconfigs + self.changed)

    def _hopeless(self, attempt: Attempt) -> bool:
        """True when relaxing sizes cannot help: hwaccel's own code failed to make inputs,
        the model asks for an input hwaccel did not give it (its message names one of its
        forward arguments that the inputs lack), or a library the model needs is missing."""
        assert attempt.error is not None
        message = str(attempt.error)
        asked = [name for name in attempt.forward_parameters - attempt.inputs
                 if len(name) > 3 and re.search(rf"\b{re.escape(name)}\b", message)]
        return (attempt.stage == "inputs" and raised_by_hwaccel(attempt.error)) or bool(
            asked and attempt.stage == "forward") or missing_dependency(
            attempt.error) is not None

    @staticmethod
    def _same_failure(first: Attempt, default: Attempt) -> bool:
        """True when the default config fails where and how the shrunk one did, in the
        model's code (not hwaccel's)."""
        return (default.stage == first.stage and default.signature == first.signature
                and default.error is not None and not raised_by_hwaccel(default.error))

    def _failure(self, first: Attempt, default: Attempt) -> AttributedError:
        """The error of a search that found nothing, attributed; ``first`` is the attempt
        whose failure it reports (the first one, or the one left after the values the
        search completed).

        The model's failure when the type's own default config fails the same way: while
        building it (before any input), or in its forward call on inputs a processor made.
        """
        model_type = self.workload.ref.model_type
        tried = len(self.attempts)
        reason = f"{first.stage}: {one_line(first.error)} (at {where(first.error)})" \
            if first.error is not None else "no candidate ran"
        if default.error is None:  # it was too large to build
            size = f"{default.parameters:,}" if default.parameters is not None else "?"
            return AttributedError(HARNESS, (
                f"no tiny config of {model_type!r} builds and runs ({tried} candidates tried, "
                f"the type's default config has {size} parameters, too large to build "
                f"here): {reason}"), stage="tiny-config")
        if self._same_failure(first, default) and (
                first.stage in ("config", "build") or self.input_source != "synthetic"):
            return AttributedError(MODEL, (
                f"{model_type!r} fails with transformers' own default config too: "
                f"{reason}"), stage=first.stage)
        return AttributedError(HARNESS, (
            f"no tiny config of {model_type!r} builds and runs ({tried} candidates tried, "
            f"the default config included): {reason}"), stage="tiny-config")


def _forward_parameters(model: Any) -> frozenset[str]:
    """The names of the arguments of a model's ``forward`` (none when it has no signature)."""
    try:
        return frozenset(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError, AttributeError):
        return frozenset()


def _attributed(attempt: Attempt) -> AttributedError:
    """The failure of one attempt, attributed by its stage (hwaccel's inputs are harness)."""
    assert attempt.error is not None
    category, message = attribute(attempt.error, HARNESS)
    return AttributedError(category, f"{attempt.stage}: {message}", stage=attempt.stage)


def _lookup(tree: dict[str, Any], path: str) -> Any:
    """The value at a dotted key path of a values tree (``None`` when absent)."""
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _ints(value: Any) -> set[int]:
    """The integers a config value holds (itself, or the members of a list)."""
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int) and not isinstance(v, bool)}
    return set()
