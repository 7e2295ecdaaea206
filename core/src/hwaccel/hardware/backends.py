"""What the loaded backend plugins declare about themselves (``hwaccel_backend_info``).

The core names no backend: the default device order, the last resort, which backends run
PyTorch modules, the advice for an absent backend, the library versions a result records
and the predecessor's platform constants (``from hwaccel import CUDA``) all come from the
:class:`~hwaccel.types.BackendInfo` records collected here, once per
:class:`~hwaccel.plugins.Plugins` object.

A record that breaks the contract (no name, a name another plugin already declared, a
priority that is not a whole number) is left out and reported in :attr:`Backends.errors`
against its plugin, like an exception its hook raised.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

from hwaccel.kit.failures import BACKEND
from hwaccel.plugins import HookError, Plugins
from hwaccel.types import BackendInfo

HOOK = "hwaccel_backend_info"
GENERIC_ADVICE = ("install the plugin that provides it (`hwaccel list-plugins` shows the "
                  "loaded ones and why any failed)")
_CACHE: weakref.WeakKeyDictionary[Plugins, Backends] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Backends:
    """The backends the loaded plugins declare, by name, and the declarations refused."""

    infos: dict[str, BackendInfo] = field(default_factory=dict)
    errors: tuple[HookError, ...] = ()

    def known_names(self) -> list[str]:
        """Every declared backend name, sorted."""
        return sorted(self.infos)

    def default_priority(self) -> tuple[str, ...]:
        """The backends that declare a priority, lowest first; a last resort comes after
        every other backend whatever its number."""
        ordered = [i for i in self.infos.values() if i.priority is not None]
        ordered.sort(key=lambda i: (i.last_resort, i.priority, i.name))
        return tuple(i.name for i in ordered)

    def torch_priority(self) -> tuple[str, ...]:
        """:meth:`default_priority` without the backends whose devices run no PyTorch
        module: every device string it leads to is a ``torch.device`` string."""
        torch = self.torch_backends()
        return tuple(name for name in self.default_priority() if name in torch)

    def last_resort_names(self) -> tuple[str, ...]:
        """The backends tried after every other one (the host CPU), sorted."""
        return tuple(sorted(n for n, i in self.infos.items() if i.last_resort))

    def torch_backends(self) -> frozenset[str]:
        """The backends whose devices run PyTorch modules."""
        return frozenset(n for n, i in self.infos.items() if i.runs_torch)

    def runs_torch(self, name: str) -> bool:
        """Whether backend ``name`` runs PyTorch modules (``False`` when not declared)."""
        info = self.infos.get(name)
        return bool(info and info.runs_torch)

    def advice(self, name: str) -> str:
        """What a machine needs for backend ``name``: the advice it declares (empty when it
        declares none), or, for a backend no loaded plugin declares, to install the plugin
        that provides it."""
        info = self.infos.get(name)
        if info is not None:
            return info.advice
        return f"{name}: {GENERIC_ADVICE}"

    def versions(self, name: str | None = None) -> tuple[str, ...]:
        """The distributions whose versions results on backend ``name`` record; every
        backend's, without repeats, when ``name`` is ``None``."""
        infos = self.infos.values() if name is None else \
            [self.infos[name]] if name in self.infos else []
        return tuple(dict.fromkeys(v for info in infos for v in info.versions))

    def alias_of(self, name: str) -> str | None:
        """The backend whose devices ``name`` addresses: itself when it is a backend, the
        backend that declares it among its ``aliases``, else ``None`` (case-insensitive)."""
        wanted = name.strip().lower()
        if wanted in self.infos:
            return wanted
        return next((n for n, i in self.infos.items() if wanted in i.aliases), None)

    def constant(self, name: str) -> str | None:
        """The predecessor's platform constant ``name`` (``CUDA``, ``WEBNN``): the lower-case
        backend name or alias it stands for, or ``None`` when no backend declares it."""
        wanted = name.lower()
        return wanted if name.isupper() and self.alias_of(wanted) is not None else None


def collect(plugins: Plugins) -> Backends:
    """Call every plugin's ``hwaccel_backend_info`` and check the records (uncached)."""
    results, errors = plugins.call_each(HOOK)
    infos: dict[str, BackendInfo] = {}
    refused = list(errors)
    for plugin, info in results:
        problem = _problem(info, infos)
        if problem:
            refused.append(HookError(plugin, HOOK, problem, BACKEND))
        else:
            infos[info.name] = info
    return Backends(infos=infos, errors=tuple(refused))


def backends_of(plugins: Plugins) -> Backends:
    """The declared backends of ``plugins``, collected once per :class:`Plugins` object."""
    found = _CACHE.get(plugins)
    if found is None:
        found = _CACHE[plugins] = collect(plugins)
    return found


def installed() -> Backends:
    """The declared backends of the process-wide plugins (loaded on first use)."""
    from hwaccel.plugins import get_plugins

    return backends_of(get_plugins())


def _problem(info: BackendInfo, seen: dict[str, BackendInfo]) -> str | None:
    """Why a declaration is refused, or ``None``."""
    if not isinstance(info.name, str) or not info.name or info.name != info.name.lower():
        return f"backend name {info.name!r} must be a non-empty lower-case string"
    if info.name in seen:
        return (f"backend {info.name!r} is already declared by plugin "
                f"{seen[info.name].plugin!r}")
    if info.priority is not None and (isinstance(info.priority, bool)
                                      or not isinstance(info.priority, int)):
        return f"backend {info.name!r}: priority {info.priority!r} is not a whole number"
    if not _strings(info.aliases) or not _strings(info.versions):
        return f"backend {info.name!r}: aliases and versions must be tuples of strings"
    if any(a != a.lower() or not a for a in info.aliases):
        return f"backend {info.name!r}: aliases must be non-empty lower-case names"
    return None


def _strings(values: Iterable[object]) -> bool:
    return isinstance(values, tuple) and all(isinstance(v, str) for v in values)
