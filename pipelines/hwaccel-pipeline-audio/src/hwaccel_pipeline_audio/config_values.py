"""Values an audio model's config declares, read through its nested sub-configs.

Composite audio configs keep their sizes in sub-configs: an ASR model's mel bins in its
``encoder_config`` or ``audio_config``, a text-to-music model's token vocabularies in its
``text_encoder`` and ``decoder``. These helpers look a key up in the config first, then in
its sub-configs in the order the config class declares them.
"""

from __future__ import annotations

from typing import Any


def sub_configs(config: Any) -> list[Any]:
    """The nested configs of ``config``, in the order its class declares them."""
    from transformers import PretrainedConfig

    nested = [getattr(config, name, None) for name in getattr(config, "sub_configs", {})]
    return [sub for sub in nested if isinstance(sub, PretrainedConfig)]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def find_int(config: Any, *keys: str) -> int | None:
    """The first integer the config holds under one of ``keys``: its own, else the first
    sub-config's (depth first) that has one."""
    for key in keys:
        value = _int(getattr(config, key, None))
        if value is not None:
            return value
    for sub in sub_configs(config):
        value = find_int(sub, *keys)
        if value is not None:
            return value
    return None


def decoder_config(config: Any) -> Any:
    """The config of the text or audio-token decoder (the config itself when it has none)."""
    try:
        return config.get_text_config(decoder=True)
    except ValueError:  # several candidates and none named a decoder
        return config


def input_vocab_size(config: Any) -> int | None:
    """The vocabulary of the token ids a text-taking model reads (its encoder's).

    ``text_vocab_size`` when the config declares one (models whose ``vocab_size`` counts audio
    codes), else ``vocab_size``, else that of the first sub-config named as an encoder, else
    that of the first sub-config that has a vocabulary.
    """
    own = _int(getattr(config, "text_vocab_size", None)) or _int(getattr(config, "vocab_size",
                                                                         None))
    if own is not None:
        return own
    names = list(getattr(config, "sub_configs", {}))
    encoders = [getattr(config, name) for name in names if "encoder" in name]
    for sub in encoders + sub_configs(config):
        value = input_vocab_size(sub)
        if value is not None:
            return value
    return None


ROWS, CHANNELS = "rows", "channels"


def codebook_layout(config: Any) -> tuple[int, str]:
    """How a decoder of audio codes takes its parallel token streams, from its config.

    ``num_codebooks`` (MusicGen's documented layout): one row per codebook of each example,
    ``(batch * count, length)``, ``(count, "rows")``; ``num_channels`` (channels of audio
    codes, Dia's): the last dimension, ``(batch, length, count)``, ``(count, "channels")``.
    A text decoder has one stream: ``(1, "rows")``.
    """
    for key, layout in (("num_codebooks", ROWS), ("num_channels", CHANNELS)):
        value = _int(getattr(config, key, None))
        if value is not None and value > 1:
            return value, layout
    return 1, ROWS
