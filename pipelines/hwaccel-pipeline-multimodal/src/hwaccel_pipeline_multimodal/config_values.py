"""Values a multimodal config declares, read through its nested sub-configs.

A vision-language config keeps its sizes in sub-configs (``vision_config``, ``audio_config``,
``encoder``, ``vlm_config`` ...) and its special tokens at the top or in the text config.
These helpers look a key up in the config first, then in its sub-configs, depth first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TOKEN_SUFFIXES = ("_token_id", "_token_index")


def sub_configs(config: Any) -> list[Any]:
    """The nested configs of ``config`` (those its class declares, then any other attribute
    that holds a config), in declaration order."""
    from transformers import PretrainedConfig

    names = list(getattr(config, "sub_configs", {}) or {})
    names += [name for name, value in vars(config).items()
              if isinstance(value, PretrainedConfig) and name not in names]
    nested = [getattr(config, name, None) for name in names]
    return [sub for sub in nested if isinstance(sub, PretrainedConfig)]


def walk(config: Any) -> Iterator[Any]:
    """``config`` and every config nested in it, depth first."""
    yield config
    for sub in sub_configs(config):
        yield from walk(sub)


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def find(config: Any, *keys: str) -> Any:
    """The first value other than ``None`` the config holds under one of ``keys``: its own,
    else the first nested config's (depth first) that has one; ``None`` when none does."""
    for scope in walk(config):
        for key in keys:
            value = getattr(scope, key, None)
            if value is not None:
                return value
    return None


def find_int(config: Any, *keys: str) -> int | None:
    """Like :func:`find`, for positive integer values only."""
    for scope in walk(config):
        for key in keys:
            value = getattr(scope, key, None)
            if is_int(value) and value > 0:
                return value
    return None


def token_id(config: Any, *names: str, nested: bool = False) -> int | None:
    """The id the config gives the token ``<name>_token_id`` (or ``<name>_token_index``) for
    the first of ``names`` it declares: its own, else its text config's, else (``nested``) any
    nested config's (a policy's vision-language model); ``None`` when none does."""
    scopes = [config]
    text = text_config(config)
    if text is not config:
        scopes.append(text)
    if nested:
        scopes += [scope for scope in walk(config) if all(scope is not s for s in scopes)]
    for name in names:
        for scope in scopes:
            for suffix in TOKEN_SUFFIXES:
                value = getattr(scope, name + suffix, None)
                if is_int(value) and value >= 0:
                    return value
    return None


def special_token_ids(config: Any) -> set[int]:
    """Every token id any (sub-)config declares (``*_token_id``, ``*_token_index``)."""
    ids: set[int] = set()
    for scope in walk(config):
        for key, value in vars(scope).items():
            if key.endswith(TOKEN_SUFFIXES):
                values = value if isinstance(value, (list, tuple)) else [value]
                ids.update(v for v in values if is_int(v))
    return ids


def text_config(config: Any) -> Any:
    """The config of the language model that reads the prompt (the decoder's for an
    encoder-decoder), else the config itself."""
    for decoder in (True, False):
        try:
            return config.get_text_config(decoder=decoder)
        except (ValueError, AttributeError):
            continue
    return config


def vocab_size(config: Any) -> int | None:
    """The vocabulary of the text model's token ids."""
    value = getattr(text_config(config), "vocab_size", None)
    if is_int(value) and value > 0:
        return value
    return find_int(config, "vocab_size")
