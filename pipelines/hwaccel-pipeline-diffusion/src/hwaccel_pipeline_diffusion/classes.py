"""What counts as diffusers: the installed diffusers' exported classes, and well-known names.

The class names come from ``diffusers/__init__.py`` read as text: its ``_import_structure``
lists every pipeline and model class the package exports, so parsing it with :mod:`ast`
finds them without importing diffusers (which costs seconds). The result is cached per
diffusers version in the hwaccel cache folder, so a new diffusers release is read afresh and
its new classes are claimed without a code change. Without diffusers the set is empty.

Hub names with no config on this machine are matched against :data:`NAME_PATTERNS`, the
naming of well-known diffusion checkpoints.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from hwaccel.kit import jsoncache, paths

_FORMAT = 1
# Names exported under "models" that are helpers, not models.
_NOT_MODELS = re.compile(r"(Config|Mixin|Name|Output)$|^AutoModel$")
# Names exported under "pipelines" that are outputs, mixins or modular building blocks.
_NOT_PIPELINES = re.compile(r"(Output|Mixin|Blocks)$")
# Well-known diffusion checkpoint naming, matched against the lower-cased hub id.
NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    ("stable diffusion", r"stable-?diffusion"),
    ("Stable Diffusion XL", r"(?<![a-z])sd-?xl(?![a-z])"),
    ("SD Turbo", r"(?<![a-z])sd-?turbo(?![a-z])"),
    ("Stable Diffusion 1-3.5", r"(?<![a-z])sd-?(v?[123](\.\d)?|vae)(?![a-z0-9])"),
    ("FLUX", r"(?<![a-z])flux(?![a-z])"),
    ("Kandinsky", r"kandinsky"),
    ("PixArt", r"pixart"),
    ("ControlNet", r"controlnet"),
    ("DDPM/DDIM", r"(?<![a-z])dd[pi]m(?![a-z])"),
    ("latent consistency", r"latent-consistency|(?<![a-z])lcm(?![a-z])"),
    ("Stable Cascade", r"stable-?cascade"),
    ("Wuerstchen", r"w(ue|u|\u00fc)rstchen"),
    ("AnimateDiff", r"animatediff"),
    ("Stable Video Diffusion", r"stable-?video-?diffusion|(?<![a-z])svd-?xt(?![a-z])"),
    ("DeepFloyd IF", r"deepfloyd|(?<![a-z0-9])if-i+-"),
    ("latent diffusion", r"(?<![a-z])ldm(?![a-z])|latent-?diffusion"),
    ("T2I-Adapter", r"t2i-?adapter"),
    ("a diffusion model", r"diffusion"),
)


@dataclass(frozen=True)
class DiffusersClasses:
    """The pipeline and model class names the installed diffusers exports."""

    version: str | None
    pipelines: frozenset[str]
    models: frozenset[str]

    def kind_of(self, name: str | None) -> str | None:
        """Return ``"pipeline"``, ``"model"`` or ``None`` for a class name."""
        if not name:
            return None
        if name in self.pipelines:
            return "pipeline"
        if name in self.models:
            return "model"
        return None


def diffusers_version() -> str | None:
    """Return the installed diffusers version, or ``None`` when diffusers is absent."""
    try:
        return importlib.metadata.version("diffusers")
    except importlib.metadata.PackageNotFoundError:
        return None


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return [e.value for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    return []


def _structure_key(node: ast.AST) -> str | None:
    """The key of ``_import_structure["key"]``, else ``None``."""
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id == "_import_structure" and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)):
        return node.slice.value
    return None


def parse_import_structure(source: str) -> dict[str, list[str]]:
    """Return the names ``_import_structure`` collects per submodule in an ``__init__.py``.

    Handles the literal dict, ``_import_structure[k] = [...]`` and ``.extend``/``.append``.
    """
    out: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (isinstance(target, ast.Name) and target.id == "_import_structure"
                        and isinstance(node.value, ast.Dict)):
                    for key, value in zip(node.value.keys, node.value.values, strict=True):
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            out.setdefault(key.value, []).extend(_strings(value))
                key = _structure_key(target)
                if key:
                    out.setdefault(key, []).extend(_strings(node.value))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("extend", "append")):
            key = _structure_key(node.func.value)
            if key:
                for arg in node.args:
                    out.setdefault(key, []).extend(_strings(arg))
    return out


def _read_classes(init_file: Path) -> dict[str, object]:
    structure = parse_import_structure(init_file.read_text(encoding="utf-8"))
    pipelines = {n for key in ("pipelines", "modular_pipelines") for n in structure.get(key, ())
                 if n[:1].isupper() and "Pipeline" in n and not _NOT_PIPELINES.search(n)}
    models = {n for n in structure.get("models", ())
              if n[:1].isupper() and not _NOT_MODELS.search(n)}
    return {"format": _FORMAT, "pipelines": sorted(pipelines), "models": sorted(models)}


@functools.cache
def installed() -> DiffusersClasses:
    """Return the installed diffusers' classes (from the disk cache when fresh)."""
    version = diffusers_version()
    spec = importlib.util.find_spec("diffusers") if version else None
    if version is None or spec is None or not spec.origin:
        return DiffusersClasses(version=None, pipelines=frozenset(), models=frozenset())
    cache_file = paths.cache_dir() / f"diffusers-classes-{version}.json"
    data = jsoncache.read(cache_file)
    if not (isinstance(data, dict) and data.get("format") == _FORMAT
            and isinstance(data.get("pipelines"), list) and isinstance(data.get("models"), list)):
        try:
            data = _read_classes(Path(spec.origin))
        except (OSError, SyntaxError, ValueError):
            return DiffusersClasses(version=version, pipelines=frozenset(), models=frozenset())
        jsoncache.write(cache_file, data)
    return DiffusersClasses(version=version, pipelines=frozenset(data["pipelines"]),
                            models=frozenset(data["models"]))


def name_pattern(spec: str) -> str | None:
    """Return the well-known diffusion family a hub id's name matches, else ``None``."""
    text = spec.lower().replace("_", "-")
    for family, pattern in NAME_PATTERNS:
        if re.search(pattern, text):
            return family
    return None
