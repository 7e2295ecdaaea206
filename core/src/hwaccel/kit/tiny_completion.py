"""Values a type's default config lacks but its model reads, taken from the config itself.

Some default configs of the installed transformers leave out a value their modeling code
reads (``DbrxAttentionConfig`` has no ``rope_theta``: real checkpoints set it), so not even the
default builds. When building fails with ``'<SomeConfig>' object has no attribute '<name>'``,
:func:`completion_for` looks for the same quantity elsewhere in the config, in this order:

1. the same key in another (sub-)config of the tree (a decoder's ``num_key_value_heads``
   from its encoder's);
2. an entry of that name inside a mapping-valued key of the config or of a config above it
   (``rope_theta`` inside ``rope_parameters``);
3. a key of the same config whose name ends with the most words of ``<name>`` (a talker's
   ``shared_expert_intermediate_size`` from its ``moe_intermediate_size``), unless it is a
   token id (an identity, not a size: filled as below).

Other default configs declare a value but leave it ``None`` where the modeling code needs one
(``layer_types``, ``sliding_window``, ``clip_qkv``: real checkpoints set them), and building
or running fails on the ``None``. :func:`completion_for` then finds, in the innermost frames
of the model's code that raised, the config values the failing statement (or the message) reads
that are ``None`` (``self.x`` set from ``config.y`` in the same module counts as ``y``) and
fills each by the type its config class declares (:func:`filled_value`):

* a token id (``*_token_id``, also one the config lacks altogether, as the
  ``vision_start_token_id`` a thinker's rope index reads): the highest id of the vocabulary
  no other token id of the config holds;
* a number: the same config's number whose name ends with the most of its words, else
  :data:`FILL_INT` (:data:`FILL_FLOAT`);
* a list of strings (one per layer): as many entries as the config has layers, cycling
  through the string values the modeling module compares or indexes it with
  (``config.mlp_layer_types[i] == "sparse"``), then the ones its docstring quotes;
* a list of numbers one per class (``class_thresholds``, ``class_order``: a name with
  ``class``/``label`` in it): one entry per label of the config, the labels' own order
  for integers, :data:`FILL_FLOAT` for floats.

A completion is written into ``keep`` as ``<set TARGET from DONOR>`` (dotted paths; ``/`` for
a mapping's entry) or ``<fill TARGET,...>``, so the tiny-config cache remembers it, and
:func:`apply_completions` sets it on the built config.
"""

from __future__ import annotations

import inspect
import linecache
import re
import sys
import traceback
from typing import Any

_MISSING = re.compile(r"'(\w+Config)' object has no attribute '(\w+)'")
_MARKER = re.compile(r"^<set (\S+) from (\S+)>$")
_FILL = re.compile(r"^<fill (\S+)>$")
_TOKEN = re.compile(r"_token_(id|index)$")
_PER_LABEL = re.compile(r"(^|_)(class|classes|label|labels)(_|$)")
_NONE = re.compile(r"NoneType|None\b|not set")
_LAYER_COUNTS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers")
FILL_INT = 4
"""An integer a default config leaves ``None`` with nothing of its kind in the config: small,
and below the tiny sequence length (a sliding window, a token budget)."""
FILL_FLOAT = 1.0
"""A float a default config leaves ``None`` with nothing of its kind in the config."""


def _configs(config: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, config object) of ``config`` and every sub-config in it, outermost first."""
    from transformers import PretrainedConfig

    found = [(prefix, config)]
    for key, value in vars(config).items():
        if isinstance(value, PretrainedConfig):
            found.extend(_configs(value, f"{prefix}{key}."))
    return found


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _suffix_words(a: str, b: str) -> int:
    """How many trailing ``_``-separated words two names share."""
    count = 0
    for x, y in zip(reversed(a.split("_")), reversed(b.split("_")), strict=False):
        if x != y:
            break
        count += 1
    return count


def completion_for(error: BaseException, default: Any) -> str | None:
    """The ``keep`` marker that supplies the attribute ``error`` says a config lacks (or the
    ``None`` values it failed on), or ``None`` when the error is not such, or nothing in
    ``default`` (the type's default config object) holds the quantity."""
    found = _MISSING.search(str(error))
    if not isinstance(error, AttributeError) or found is None:
        return _fill_for(error, default)
    class_name, name = found.groups()
    configs = [(path, vars(config)) for path, config in _configs(default)]
    targets = [path for path, config in _configs(default) if type(config).__name__ == class_name]
    for path in targets:
        donor = _donor(name, path, dict(configs)[path], configs)
        if donor is not None:
            return f"<set {path}{name} from {donor}>"
    if _TOKEN.search(name) and targets:
        return f"<fill {targets[0]}{name}>"
    return None


def _donor(name: str, path: str, values: dict[str, Any],
           configs: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The path of the value that stands for ``name`` missing at ``path`` (see the module)."""
    for other_path, other in configs:  # 1. the same key in another config
        if other_path != path and _number(other.get(name)):
            return f"{other_path}{name}"
    for above_path, above in [(p, v) for p, v in configs if path.startswith(p)][::-1]:
        for key, value in above.items():  # 2. an entry of a mapping-valued key
            if isinstance(value, dict) and _number(value.get(name)):
                return f"{above_path}{key}/{name}"
    if _TOKEN.search(name):  # an identity, not a size: no other token stands for it
        return None
    scored = [(_suffix_words(name, key), key) for key, value in values.items()
              if _number(value) and not isinstance(value, float)]
    best = max(scored, default=(0, ""))
    return f"{path}{best[1]}" if best[0] else None  # 3. the key ending in most of its words


def _fill_for(error: BaseException, default: Any) -> str | None:
    """``<fill PATHS>`` for the ``None`` config values the innermost frame of the model's
    code (not hwaccel's) that raised ``error`` reads and :func:`filled_value` can fill, else
    ``None``."""
    if not _NONE.search(str(error)):
        return None
    paths = {type(config).__name__: path for path, config in _configs(default)}
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)
              if not frame.f_globals.get("__name__", "").startswith("hwaccel")]
    for frame in reversed(frames):
        targets = [f"{paths[type(config).__name__]}{name}"
                   for config, name in _none_values_read(frame, str(error))
                   if type(config).__name__ in paths and filled_value(config, name) is not None]
        if targets:
            return f"<fill {','.join(sorted(set(targets)))}>"
    return None


def _none_values_read(frame: Any, message: str) -> list[tuple[Any, str]]:
    """(config, name) of the ``None`` values of the configs a frame holds that its current
    line or the error message names (``self.x`` assigned from ``config.y``: ``y``)."""
    from transformers import PretrainedConfig

    line = _statement(frame.f_code.co_filename, frame.f_lineno)
    names = set(re.findall(r"\.(\w+)", line)) | set(re.findall(r"`(\w+)`", message))
    module = sys.modules.get(frame.f_globals.get("__name__", ""))
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        source = ""
    for name in list(names):  # self.index_head_dim = config.indexer_head_dim
        names |= set(re.findall(rf"self\.{name}\s*=\s*(?:self\.)?\w*config\.(\w+)\b",
                                source))
    holders = list(frame.f_locals.values())
    holders += [getattr(frame.f_locals.get("self"), "config", None)]
    configs = {id(sub): sub for held in holders if isinstance(held, PretrainedConfig)
               for _, sub in _configs(held)}
    return [(config, name) for config in configs.values() for name in sorted(names)
            if name in vars(config) and vars(config)[name] is None]


def _statement(filename: str, lineno: int, most: int = 12) -> str:
    """The source statement that starts at a line: the lines until its brackets close (a
    call whose arguments span lines), at most ``most``."""
    text, depth = "", 0
    for number in range(lineno, lineno + most):
        line = linecache.getline(filename, number)
        text += line
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
        if depth <= 0 or not line:
            break
    return text


def _union_members(declared: str) -> set[str]:
    """The members of a declared type as written (``"list[int] | None"``: ``list[int]`` and
    ``None``), without spaces; a type inside brackets is no member."""
    members, depth, current = set(), 0, ""
    for char in declared.replace(" ", ""):
        depth += (char == "[") - (char == "]")
        if char == "|" and depth == 0:
            members.add(current)
            current = ""
        else:
            current += char
    return members | {current} if current else members


def _annotation(config: Any, name: str) -> str:
    """The type a config class declares for ``name``, as written (``""`` when it declares
    none)."""
    for cls in type(config).__mro__:
        declared = vars(cls).get("__annotations__", {}).get(name)
        if declared is not None:
            return declared if isinstance(declared, str) else repr(declared)
    return ""


def filled_value(config: Any, name: str) -> Any:
    """The value that fills ``config.name`` where the default leaves it ``None`` (see the
    module docstring), or ``None`` when its declared type is none of those filled."""
    if _TOKEN.search(name):
        return _free_token_id(config)
    declared = _union_members(_annotation(config, name))
    values = {key: value for key, value in vars(config).items() if key != name}
    if "list[str]" in declared:
        layers = next((values[k] for k in _LAYER_COUNTS if isinstance(values.get(k), int)), None)
        kinds = _compared_strings(config, name)
        return [kinds[i % len(kinds)] for i in range(layers)] if layers and kinds else None
    numbers = [kind for kind in ("int", "float") if f"list[{kind}]" in declared]
    if numbers and _PER_LABEL.search(name):
        labels = len(getattr(config, "id2label", None) or {})
        return list(range(labels)) if numbers[0] == "int" else [FILL_FLOAT] * labels
    for kind, fallback in ((float, FILL_FLOAT), (int, FILL_INT)):  # float | int: a float
        if kind.__name__ in declared:
            scored = [(_suffix_words(name, key), key) for key, value in values.items()
                      if isinstance(value, kind) and not isinstance(value, bool)]
            best = max(scored, default=(0, ""))
            return values[best[1]] if best[0] else fallback
    return None


def _free_token_id(config: Any) -> int | None:
    """The highest id of the config's (else its text config's) vocabulary that no token id
    of the config tree holds."""
    vocab = getattr(config, "vocab_size", None)
    text = getattr(config, "text_config", None)
    vocab = vocab if isinstance(vocab, int) else getattr(text, "vocab_size", None)
    if not isinstance(vocab, int):
        return None
    from hwaccel.kit.tiny import token_ids

    taken = set().union(*(token_ids(vars(sub)) for _, sub in _configs(config)))
    return next((i for i in range(vocab - 1, -1, -1) if i not in taken), None)


def _compared_strings(config: Any, name: str) -> list[str]:
    """The strings the config's modeling module compares ``name``'s entries with or indexes
    a mapping by, then those its config class's docstring quotes for it, in order."""
    from hwaccel.kit.tiny import modeling_source

    source = modeling_source(type(config))
    found = re.findall(rf"{name}\[[^\]]*\]\s*[!=]=\s*[\"'](\w+)[\"']", source)
    found += re.findall(rf"[\"'](\w+)[\"']\s*[!=]=\s*\S*{name}\[", source)
    doc = type(config).__doc__ or ""
    entry = re.search(rf"^\s*{name} \(.*?(?=^\s*\w+ \(|\Z)", doc, re.M | re.S)
    found += re.findall(r'`"(\w+)"`', entry.group(0)) if entry else []
    return list(dict.fromkeys(found))


def _resolve(config: Any, path: str) -> tuple[Any, str]:
    """The (sub-)config object a dotted path's last key belongs to, and that key."""
    *parents, key = path.split(".")
    for parent in parents:
        config = getattr(config, parent)
    return config, key


def completions_in(keep: frozenset[str]) -> frozenset[str]:
    """The completion markers among ``keep`` (not the key paths and relaxations)."""
    return frozenset(marker for marker in keep if _MARKER.match(marker) or _FILL.match(marker))


def apply_completions(config: Any, keep: frozenset[str]) -> None:
    """Set on ``config`` every ``<set TARGET from DONOR>`` and ``<fill TARGET,...>``
    completion ``keep`` names."""
    for marker in sorted(keep):
        filled = _FILL.match(marker)
        for target in filled.group(1).split(",") if filled else []:
            owner, key = _resolve(config, target)
            setattr(owner, key, filled_value(owner, key))
        found = _MARKER.match(marker)
        if found is None:
            continue
        target, donor = found.groups()
        owner, key = _resolve(config, donor.split("/")[0])
        value = getattr(owner, key)
        if "/" in donor:
            value = value[donor.split("/", 1)[1]]
        owner, key = _resolve(config, target)
        setattr(owner, key, value)
