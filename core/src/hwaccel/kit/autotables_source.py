"""Read transformers' auto-model tables and default expert counts from its source, not by import.

Importing ``transformers.models.auto.modeling_auto`` costs ~2.4 s (it imports torch) and
building every text model's default config ~3.4 s more. The tables are plain literals in
``models/auto/auto_mappings.py``, ``configuration_auto.py`` and ``modeling_auto.py``, and the
expert counts are literal defaults of the config classes, so :mod:`ast` reads them in a small
fraction of that. :func:`read` returns ``None`` when the source does not have the expected
shape (a future transformers may change it); the caller then falls back to importing.
``tests/test_autotables.py`` checks that both ways agree for the installed transformers.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

_LITERAL_TYPES = (str, int, float, bool, type(None), list, tuple, dict)
_MIN_TABLES = 20  # fewer MODEL_*_MAPPING_NAMES than this means the source changed shape


def transformers_root() -> Path | None:
    """The installed transformers package folder, found without importing it."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _mapping(node: ast.AST, known: dict[str, dict]) -> dict | None:
    """Evaluate ``OrderedDict([...])``, ``OrderedDict(**{...}, **NAME)`` or ``{...}``."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("OrderedDict", "dict"):
        out: dict = {}
        for arg in node.args:
            items = _items(arg, known)
            if items is None:
                return None
            out.update(items)
        for keyword in node.keywords:
            if keyword.arg is not None:
                return None
            if isinstance(keyword.value, ast.Name) and keyword.value.id in known:
                out.update(known[keyword.value.id])
            else:
                value = _mapping(keyword.value, known)
                if value is None:
                    return None
                out.update(value)
        return out
    if isinstance(node, ast.Dict):
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError):
            return None
        return value if isinstance(value, dict) else None
    return None


def _items(node: ast.AST, known: dict[str, dict]) -> list | dict | None:
    """A literal list of pairs, where ``*list(NAME.items())`` splices a known mapping in."""
    if not isinstance(node, ast.List):
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError):
            return None
    items: list = []
    for element in node.elts:
        if isinstance(element, ast.Starred):
            source = ast.unparse(element.value)
            name = source.removeprefix("list(").removesuffix(".items())")
            if name not in known or source != f"list({name}.items())":
                return None
            items.extend(known[name].items())
            continue
        try:
            items.append(ast.literal_eval(element))
        except (ValueError, TypeError, SyntaxError):
            return None
    return items


def module_mappings(tree: ast.Module, known: dict[str, dict] | None = None) -> dict[str, dict]:
    """Top-level ``NAME = <mapping literal>`` and ``NAME.update(<literal>)`` of a module, in order.

    :param known: mappings imported from other modules, updated in place by the module's
        statements as Python would.
    """
    known = known if known is not None else {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and \
                isinstance(statement.targets[0], ast.Name):
            value = _mapping(statement.value, known)
            if value is not None:
                known[statement.targets[0].id] = value
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            call = statement.value
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "update" and \
                    isinstance(func.value, ast.Name) and func.value.id in known and \
                    len(call.args) == 1:
                value = _mapping(call.args[0], known)
                if value is not None:
                    known[func.value.id].update(value)
    return known


class _ConfigSource:
    """Finds config classes in transformers' source and reads their literal defaults."""

    def __init__(self, root: Path, config_names: dict[str, str], module_names: dict[str, str]):
        self.root = root
        self.config_names = config_names
        self.module_names = module_names
        self._trees: dict[Path, ast.Module | None] = {}

    def _tree(self, path: Path) -> ast.Module | None:
        if path not in self._trees:
            self._trees[path] = _parse(path)
        return self._trees[path]

    def config_file(self, model_type: str) -> Path:
        """The ``configuration_<module>.py`` of a model type."""
        module = self.module_names.get(model_type, model_type.replace("-", "_"))
        return self.root / "models" / module / f"configuration_{module}.py"

    def find_class(self, path: Path, name: str, depth: int = 0
                   ) -> tuple[Path, ast.ClassDef] | None:
        """The class ``name`` defined in, or imported by, the module at ``path``."""
        tree = self._tree(path)
        if tree is None or depth > 4:
            return None
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return path, node
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and \
                    any((a.asname or a.name) == name for a in node.names):
                original = next(a.name for a in node.names if (a.asname or a.name) == name)
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                target = base.joinpath(*(node.module or "").split(".")).with_suffix(".py")
                return self.find_class(target, original, depth + 1)
        return None

    def defaults(self, path: Path, cls: ast.ClassDef, keys: tuple[str, ...],
                 depth: int = 0) -> dict[str, Any]:
        """Literal defaults of ``keys`` for the class, its bases and its ``text_config``."""
        found: dict[str, Any] = {}
        if depth > 4:
            return found
        for base in cls.bases:
            if isinstance(base, ast.Name):
                located = self.find_class(path, base.id)
                if located is not None:
                    found.update(self.defaults(*located, keys, depth + 1))
        for node in cls.body:
            target, value = None, None
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                target, value = node.target.id, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                    isinstance(node.targets[0], ast.Name):
                target, value = node.targets[0].id, node.value
            if target in keys and value is not None:
                found[target] = _literal(value)
            elif isinstance(node, ast.FunctionDef) and node.name == "__init__":
                args = node.args.args[len(node.args.args) - len(node.args.defaults):]
                pairs = list(zip(args, node.args.defaults, strict=True))
                pairs += [(a, d) for a, d in zip(node.args.kwonlyargs,
                                                         node.args.kw_defaults, strict=True)
                          if d is not None]
                for arg, default in pairs:
                    if arg.arg in keys:
                        found[arg.arg] = _literal(default)
        class_name, model_type, overrides = _sub_config(cls, "text_config")
        located = None
        if class_name is not None:
            located = self.find_class(path, class_name)
        elif model_type in self.config_names:
            located = self.find_class(self.config_file(model_type), self.config_names[model_type])
        inner = self.defaults(*located, keys, depth + 1) if located is not None else {}
        inner.update({k: v for k, v in overrides.items() if k in keys})
        if inner:
            found["text_config"] = inner
        return found


def _literal(node: ast.AST) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None
    return value if isinstance(value, _LITERAL_TYPES) else None


def _sub_config(cls: ast.ClassDef, key: str) -> tuple[str | None, str | None, dict]:
    """How a config class builds its ``key`` sub-config: (class name, model type, overrides).

    Read from ``sub_configs``/``sub_configs_defaults``: either a class name, or
    ``SubConfigSpec(config_class=..., model_type=..., init_kwargs={...})``.
    """
    names = ("sub_configs", "sub_configs_defaults")
    for node in cls.body:
        value = None
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names
                                                for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) in names:
            value = node.value
        if not isinstance(value, ast.Dict):
            continue
        for k, v in zip(value.keys, value.values, strict=True):
            if not (isinstance(k, ast.Constant) and k.value == key):
                continue
            if isinstance(v, ast.Name):
                return v.id, None, {}
            if isinstance(v, ast.Call):
                spec = {kw.arg: kw.value for kw in v.keywords if kw.arg}
                class_node = spec.get("config_class", v.args[0] if v.args else None)
                class_name = class_node.id if isinstance(class_node, ast.Name) else None
                model_type = _literal(spec["model_type"]) if "model_type" in spec else None
                overrides = _literal(spec["init_kwargs"]) if "init_kwargs" in spec else {}
                return (None if class_name == "AutoConfig" else class_name,
                        model_type if isinstance(model_type, str) else None,
                        overrides if isinstance(overrides, dict) else {})
    return None, None, {}


def read(expert_keys: tuple[str, ...], text_tasks: set[str]) -> dict[str, Any] | None:
    """Return the raw tables (see :func:`hwaccel.kit.autotables._read_tables`) or ``None``.

    :param expert_keys: config keys that count experts.
    :param text_tasks: tasks whose model types get an expert count.
    """
    from hwaccel.kit.taxonomy import max_experts

    root = transformers_root()
    if root is None:
        return None
    auto = root / "models" / "auto"
    trees = [_parse(auto / name) for name in
             ("auto_mappings.py", "configuration_auto.py", "modeling_auto.py")]
    if any(tree is None for tree in trees):
        return None
    known: dict[str, dict] = {}
    for tree in trees:
        module_mappings(tree, known)  # type: ignore[arg-type]
    config_names = known.get("CONFIG_MAPPING_NAMES")
    tables = {k: v for k, v in known.items()
              if k.startswith("MODEL_") and k.endswith("_MAPPING_NAMES")}
    if not config_names or len(tables) < _MIN_TABLES:
        return None
    tasks_by_type: dict[str, list[str]] = {}
    types_by_class: dict[str, list[str]] = {}
    for attr in sorted(tables):
        task = attr[len("MODEL_FOR_"):-len("_MAPPING_NAMES")] if attr.startswith(
            "MODEL_FOR_") else "BASE"
        for model_type, classes in tables[attr].items():
            tasks_by_type.setdefault(model_type, []).append(task)
            for name in classes if isinstance(classes, (list, tuple)) else [classes]:
                types_by_class.setdefault(name, []).append(model_type)
    source = _ConfigSource(root, config_names,
                           known.get("SPECIAL_MODEL_TYPE_TO_MODULE_NAME", {}))
    experts = {}
    for model_type, tasks in tasks_by_type.items():
        if not text_tasks & set(tasks) or model_type not in config_names:
            continue
        located = source.find_class(source.config_file(model_type), config_names[model_type])
        if located is None:
            continue
        count = max_experts(source.defaults(*located, expert_keys))
        if count > 1:
            experts[model_type] = count
    return {"tasks_by_type": tasks_by_type, "types_by_class": types_by_class,
            "config_types": sorted(config_names), "experts_by_type": experts}
