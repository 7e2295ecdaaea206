"""The generation measurement: time to first token, per-token latency and tokens per second.

A generation benchmark (``BenchmarkSettings.new_tokens > 0``) times whole greedy generations
of exactly ``new_tokens`` tokens per row (``min_new_tokens = max_new_tokens``, so every call
decodes the same count) after a prompt of ``seq_len`` tokens, by the method every benchmark
uses (:func:`hwaccel.kit.measure.time_calls`: a cold call, warm-up calls, then timed calls
until both the minimum count and the minimum seconds have passed).

Inside each call a :class:`TokenClock` is handed to the workload's ``generate`` as its
``streamer`` (transformers' streamer interface, which OpenVINO's decoding loop honours too):
``generate`` calls ``put`` with the prompt, then with each new token as soon as it is known,
so the clock's time stamps give

* ``ttft_ms``: the time from the call's start to its first new token (the prefill and the
  first decoding step), the median over the timed calls;
* ``tpot_p50_ms`` / ``tpot_p90_ms``: the time between consecutive new tokens, over every
  decode step of every timed call (``new_tokens - 1`` steps per call);
* ``tokens_per_s``: the new tokens of the whole batch per second at the mean call time.

A ``generate`` that never calls its streamer (a model's own decoding loop that takes none)
leaves the first two unmeasured (``None``) and says so in ``details``, rather than dividing
the call time by the token count.

The tokens are compared with those of the CPU PyTorch fp32 reference (a separately loaded
copy, transformers' ``generate`` with its default cache): ``token_match`` is the share of
new tokens identical at the same position. How the device kept past keys and values
(``kv_cache``) is observed, not assumed (``settings.cache_implementation`` asks transformers
for another cache, e.g. ``static``: a device model that cannot honour it refuses the
option): the cache object transformers passed to the model's first forward call
(``DynamicCache`` -> ``dynamic``, ``StaticCache`` -> ``static``, another cache class by its
name, none -> ``none: ...``), or what a converted model's ``generate`` says it did (its
``kv_cache`` attribute, e.g. OpenVINO's ``stateful``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwaccel.errors import HwaccelError
from hwaccel.kit.measure import percentile, time_calls
from hwaccel.types import BenchmarkSettings


class TokenClock:
    """A streamer that time-stamps every new token ``generate`` hands it.

    ``generate`` calls :meth:`put` first with the prompt (ignored), then once per decoding
    step with that step's tokens; :meth:`start` begins a call.
    """

    def __init__(self) -> None:
        self.started = 0.0
        self.stamps: list[float] = []
        self._prompt_pending = True

    def start(self) -> None:
        """Begin timing one ``generate`` call."""
        self.stamps = []
        self._prompt_pending = True
        self.started = time.perf_counter()

    def put(self, value: Any) -> None:
        """Record a new token's time (the first call, with the prompt, is not a token)."""
        if self._prompt_pending:
            self._prompt_pending = False
            return
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        """The end of generation (nothing to record)."""


@dataclass(frozen=True)
class GenerationTiming:
    """The raw outcome of :func:`time_generation`: per-call times (ms), the token time
    stamps of each timed call (ms from its start), the last call's tokens and the cache the
    device used."""

    cold_ms: float
    times_ms: tuple[float, ...]
    last_output: Any
    token_ms: tuple[tuple[float, ...], ...]
    kv_cache: str | None
    new_tokens: int
    batch_size: int


def check_generates(workload: Any, model: str) -> None:
    """Raise an ``unsupported`` :class:`~hwaccel.kit.failures.AttributedError` when
    ``model``'s workload does not generate (an encoder, an image classifier): there is no
    generation to measure, which is nobody's failure."""
    from hwaccel.kit.failures import AttributedError

    if getattr(workload, "generate", None) is None or not getattr(workload, "generative", True):
        raise AttributedError("unsupported", f"{model} does not generate tokens (its "
                              "pipeline runs one forward call): drop --new-tokens to "
                              "benchmark that call", stage="prepare")


def cache_label(cache: Any) -> str:
    """The ``kv_cache`` label of the cache object ``generate`` passed to a forward call."""
    if cache is None:
        return "none: generate passed no cache to the model"
    name = type(cache).__name__
    if "Static" in name:
        return "static"
    if "Dynamic" in name or name == "EncoderDecoderCache":
        return "dynamic"
    return name


class _CacheWatcher:
    """Notes the cache object of the first forward call of a PyTorch module (a pre-hook)."""

    KEYS = ("cache", "past_key_values", "cache_params", "past_key_value")

    def __init__(self, model: Any):
        self.seen: str | None = None
        self.handle = None
        register = getattr(model, "register_forward_pre_hook", None)
        if register is not None and callable(register):
            try:
                self.handle = register(self._hook, with_kwargs=True)
            except TypeError:  # a wrapper with torch's method name but not its keywords
                self.handle = None

    def _hook(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if self.seen is None:
            found = next((kwargs[k] for k in self.KEYS if kwargs.get(k) is not None), None)
            self.seen = cache_label(found)

    def remove(self) -> None:
        """Stop watching."""
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def time_generation(workload: Any, model: Any, inputs: dict[str, Any],
                    settings: BenchmarkSettings,
                    in_context: Callable[[Callable[[], Any]], Any]) -> GenerationTiming:
    """Time greedy generations of ``settings.new_tokens`` tokens by the common method.

    :param in_context: runs one call inside the backend's call context and synchronisation
        (see :func:`hwaccel.kit.measure.benchmark_workload`).
    """
    clock = TokenClock()
    new_tokens = settings.new_tokens
    calls: list[tuple[float, ...]] = []
    options: dict[str, Any] = {"streamer": clock}
    if settings.cache_implementation:
        options["cache_implementation"] = settings.cache_implementation

    def one_generation() -> Any:
        clock.start()
        tokens = in_context(lambda: workload.generate(model, inputs, new_tokens, **options))
        calls.append(tuple((stamp - clock.started) * 1000.0 for stamp in clock.stamps))
        return tokens

    watcher = _CacheWatcher(model)
    watching = watcher.handle is not None
    try:
        timing = time_calls(one_generation, warmup=settings.warmup,
                            min_iterations=settings.min_iterations,
                            min_seconds=settings.min_seconds, max_seconds=settings.max_seconds)
    finally:
        watcher.remove()
    kv_cache = watcher.seen if watching else getattr(model, "kv_cache", None)
    if not isinstance(kv_cache, str):
        kv_cache = None  # a module whose generate calls a submodule: not observed
    tokens = timing.last_output
    got = int(tokens.shape[-1]) - int(workload.generated_length(inputs, 0)) \
        if hasattr(workload, "generated_length") else new_tokens
    if got != new_tokens:
        raise HwaccelError(f"generate returned {got} new tokens, not the {new_tokens} asked "
                           "for (min_new_tokens = max_new_tokens)")
    timed = tuple(calls[-len(timing.times_ms):])
    return GenerationTiming(cold_ms=timing.cold_ms, times_ms=timing.times_ms,
                            last_output=tokens, token_ms=timed, kv_cache=kv_cache,
                            new_tokens=new_tokens, batch_size=int(tokens.shape[0]))


def token_match(reference: Any, tokens: Any, new_tokens: int) -> float:
    """The share of the last ``new_tokens`` tokens of each row identical to the reference's
    at the same position."""
    import torch

    expected = torch.as_tensor(reference)[:, -new_tokens:].cpu()
    got = torch.as_tensor(tokens)[:, -new_tokens:].cpu()
    if expected.shape != got.shape:
        raise HwaccelError(f"the device generated {tuple(got.shape)} tokens, the reference "
                           f"{tuple(expected.shape)}")
    return float((expected == got).float().mean())


def generation_fields(timing: GenerationTiming, reference: Any) -> dict[str, Any]:
    """The generation fields of a :class:`~hwaccel.types.BenchmarkResult` (and ``details``)
    from a timing and the reference's tokens (``None`` when there is none)."""
    details: dict[str, Any] = {}
    counted = [stamps for stamps in timing.token_ms if len(stamps) == timing.new_tokens]
    ttft = tpot50 = tpot90 = None
    if counted and len(counted) == len(timing.token_ms):
        ttft = percentile(sorted(stamps[0] for stamps in counted), 50)
        steps = sorted(b - a for stamps in counted for a, b in itertools.pairwise(stamps))
        if steps:
            tpot50, tpot90 = percentile(steps, 50), percentile(steps, 90)
    else:
        details["token_times"] = ("not measured: the model's generate did not report each "
                                  "new token to its streamer")
    mean_s = sum(timing.times_ms) / len(timing.times_ms) / 1000.0
    return {
        "new_tokens": timing.new_tokens, "ttft_ms": ttft, "tpot_p50_ms": tpot50,
        "tpot_p90_ms": tpot90,
        "tokens_per_s": timing.batch_size * timing.new_tokens / mean_s if mean_s else None,
        "token_match": (token_match(reference, timing.last_output, timing.new_tokens)
                        if reference is not None else None),
        "kv_cache": timing.kv_cache, "details": details,
    }
