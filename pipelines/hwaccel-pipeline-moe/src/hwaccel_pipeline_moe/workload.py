"""The mixture-of-experts workload: the text workload plus experts, top-k and routing.

Loading, inputs and generation are the text workload's (a causal or sequence-to-sequence LM).
What this class adds:

* ``num_experts`` and ``top_k`` read from the config (the same expert keys the taxonomy uses;
  ``num_experts_per_tok`` and its synonyms for k);
* :meth:`forward` asks the model for its router logits (``output_router_logits=True``) where
  the model supports it (:attr:`MoeWorkload.router_logits_supported`) and returns them next to
  the LM outputs, stacked per
  stack as ``router_logits`` (decoder-only) or ``encoder_router_logits`` /
  ``decoder_router_logits`` (encoder-decoder) with shape ``(batch, moe_layers, seq, experts)``,
  so that the shared checks (batch first, shapes, CPU agreement) cover the routing too. The
  scalar training losses the model adds when asked for router logits (``aux_loss``,
  ``z_loss``) are not inference outputs and are dropped;
* :meth:`routing` runs one forward with hooks on the model's router modules and returns, per
  router call, its logits and the experts the model actually chose for every token;
* :meth:`moe_layer_indices`: which layers hold experts, from the config's layer-placement keys.

``tiny:`` configs get MoE-specific fixes, named in :meth:`MoeWorkload.tiny_config`.
"""

from __future__ import annotations

import inspect
from functools import cached_property, partial
from typing import Any

from hwaccel.kit.taxonomy import max_experts
from hwaccel_pipeline_text.workload import TextWorkload

# config keys holding k (experts per token), first match wins
TOP_K_KEYS = ("num_experts_per_tok", "num_experts_per_token", "moe_topk", "moe_top_k", "moe_k",
              "top_k", "router_top_k")
# routers whose k is fixed by the architecture (the class is a top-1 / top-2 router) and that
# have no config key for it
FIXED_TOP_K = {"switch_transformers": 1, "nllb-moe": 2}
ROUTER_OUTPUTS = ("router_logits", "encoder_router_logits", "decoder_router_logits")
# config keys that make a router pick among groups of experts first (not plain top-k)
GROUP_KEYS = ("n_group", "num_expert_group")
# parameter/buffer names of routers that add a learned bias before choosing experts
BIAS_NAMES = ("e_score_correction_bias", "expert_bias")
_DEPTH_KEYS = {"decoder": ("num_decoder_layers", "decoder_layers", "num_hidden_layers",
                           "num_layers", "n_layer", "n_layers"),
               "encoder": ("num_layers", "encoder_layers", "num_hidden_layers")}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _moe_fixes(values: dict[str, Any], default: dict[str, Any],
               overrides: dict[str, Any]) -> None:
    """Fixes 2-4 of :meth:`MoeWorkload.tiny_config`, added to ``overrides``."""
    depth = next((values[k] for k in _DEPTH_KEYS["decoder"] if _int(values.get(k))), 1)
    heads, kv_heads = values.get("num_attention_heads"), values.get("num_key_value_heads")
    if (_int(heads) and _int(kv_heads) and kv_heads != heads
            and default.get("num_key_value_heads") == default.get("num_attention_heads")):
        overrides["num_key_value_heads"] = heads
    last = max(depth - 1, 0)
    for key in ("first_k_dense_replace", "num_dense_layers", "moe_layer_start_index",
                "moe_layer_end_index"):
        if _int(values.get(key)) is not None and values[key] > last:
            overrides[key] = last
    for key in ("encoder_sparse_step", "decoder_sparse_step"):
        if _int(values.get(key)) and values[key] > depth:
            overrides[key] = depth
    for key in values:  # counts of sparse layers a class spreads over the depth (Switch)
        if key.startswith("num_sparse") and _int(values[key]) and values[key] > depth:
            overrides[key] = depth
    if isinstance(values.get("mlp_only_layers"), list) and last in values["mlp_only_layers"]:
        overrides["mlp_only_layers"] = [i for i in values["mlp_only_layers"] if i < last]
    if max_experts(values) > 1:  # a default config that leaves top-k unset cannot route
        for key in TOP_K_KEYS:
            if key in values and values[key] is None:
                overrides[key] = min(2, max_experts(values))
    kinds = values.get("mlp_layer_types")
    if (isinstance(kinds, list) and 0 < len(kinds) and "sparse" not in kinds
            and "sparse" in (default.get("mlp_layer_types") or ())):
        overrides["mlp_layer_types"] = kinds[:-1] + ["sparse"]


class MoeWorkload(TextWorkload):
    """Workload of the ``moe`` pipeline (see :class:`hwaccel.kit.workloads.Workload`)."""

    def tiny_config(self, keep: frozenset[str]) -> Any:
        """The core's tiny config of the model type with the fixes an MoE model needs to run.

        1. Rebuilt through the config class (as the core does), so that sizes the class
           derives from others (DeepSeek's ``qk_head_dim``) follow the shrunk ones.
        2. Multi-head latent attention (DeepSeek) expands keys to every query head, so a
           default config with as many key/value heads as query heads keeps that equality.
        3. At least one layer keeps its experts: layer-placement keys
           (``first_k_dense_replace``, ``num_dense_layers``, ``*_sparse_step``,
           ``num_sparse_*_layers``, ``mlp_only_layers``, ``moe_layer_*_index``,
           ``mlp_layer_types``) are capped to the tiny depth; otherwise two layers could all
           be dense.
        4. A default config that leaves the experts per token unset (``None``, which no
           router can take) routes every token to two experts.

        (Hybrids with linear-attention layers keep one layer of every kind their default
        ``layer_types`` has: the core's shrinker does that for every model.)
        """
        from hwaccel.kit.tiny import tiny_config

        return tiny_config(self.ref.model_type or "", keep, _moe_fixes)

    @cached_property
    def num_experts(self) -> int:
        """Routed experts per MoE layer (the largest expert count the config declares)."""
        return max_experts(self.text_config.to_dict())

    @cached_property
    def top_k(self) -> int | None:
        """Experts each token is routed to, from the config (``None`` when it has no key)."""
        for key in TOP_K_KEYS:
            value = _int(getattr(self.text_config, key, None))
            if value:
                return value
        return FIXED_TOP_K.get(self.ref.model_type or self.config.model_type)

    @cached_property
    def capacity_limited(self) -> bool:
        """True when the config caps tokens per expert, so a router may drop a token."""
        return _int(getattr(self.text_config, "expert_capacity", None)) is not None

    @cached_property
    def router_logits_supported(self) -> bool:
        """True when the model returns router logits on ``output_router_logits=True``.

        Either its forward names the argument, or (transformers 5) a model class of its
        modeling module records ``router_logits`` from its routers (``_can_record_outputs``)
        and takes the flag through ``**kwargs``.
        """
        if "output_router_logits" in inspect.signature(self.model_class.forward).parameters:
            return True
        module = inspect.getmodule(self.model_class)
        return any("router_logits" in (getattr(cls, "_can_record_outputs", None) or {})
                   for cls in vars(module).values() if isinstance(cls, type))

    def _depth(self, stack: str) -> int:
        for key in _DEPTH_KEYS[stack]:
            value = _int(getattr(self.text_config, key, None))
            if value is not None:
                return value
        return 0

    def moe_layer_indices(self, stack: str = "decoder") -> tuple[int, ...]:
        """Indices of the layers of ``stack`` (``decoder`` or ``encoder``) that hold experts.

        Read from the config's placement keys: ``mlp_layer_types`` (``"sparse"`` entries);
        an explicit ``moe_layers`` list;
        ``<stack>_sparse_step`` (Switch: every step-th layer from layer 1; others: every
        step-th layer, 1-based); ``first_k_dense_replace`` / ``num_dense_layers`` (dense
        first layers); ``moe_layer_start_index`` / ``moe_layer_end_index`` /
        ``moe_layer_interval``; else every layer. Layers ``mlp_only_layers`` names are dense.
        """
        dense = set(getattr(self.text_config, "mlp_only_layers", None) or ())
        return tuple(i for i in self._sparse_layers(stack) if i not in dense)

    def _sparse_layers(self, stack: str) -> tuple[int, ...]:
        """The layers the placement keys give experts, before ``mlp_only_layers``."""
        cfg = self.text_config
        depth = self._depth(stack)
        layers = range(depth)
        kinds = getattr(cfg, "mlp_layer_types", None)
        if isinstance(kinds, (list, tuple)) and stack == "decoder":
            return tuple(i for i in layers if i < len(kinds) and kinds[i] == "sparse")
        explicit = getattr(cfg, "moe_layers", None)
        if isinstance(explicit, (list, tuple)):
            return tuple(i for i in explicit if _int(i) is not None and i < depth)
        step = _int(getattr(cfg, f"{stack}_sparse_step", None))
        if step is not None:
            if step <= 0:
                return ()
            if (self.ref.model_type or cfg.model_type) == "switch_transformers":
                chosen = [i for i in layers if step == 1 or i % step == 1]
            else:
                chosen = [i for i in layers if (i + 1) % step == 0]
            return tuple(chosen)
        for key in ("first_k_dense_replace", "num_dense_layers"):
            first = _int(getattr(cfg, key, None))
            if first is not None:
                return tuple(i for i in layers if i >= first)
        start = _int(getattr(cfg, "moe_layer_start_index", None))
        if start is not None:
            end = _int(getattr(cfg, "moe_layer_end_index", None))
            end = depth - 1 if end is None or end < 0 else end
            interval = _int(getattr(cfg, "moe_layer_interval", None)) or 1
            return tuple(i for i in layers if start <= i <= end and (i + 1) % interval == 0)
        return tuple(layers)

    @property
    def moe_layer_count(self) -> int:
        """Router calls in one forward: MoE layers of the encoder (if any) and decoder."""
        count = len(self.moe_layer_indices("decoder"))
        if self.encoder_decoder:
            count += len(self.moe_layer_indices("encoder"))
        return count

    def forward(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """One forward without a KV cache; LM outputs plus the stacked router logits."""
        import torch

        extra: dict[str, Any] = {"use_cache": False}
        if self.router_logits_supported:
            extra["output_router_logits"] = True
        with torch.inference_mode():
            outputs = model(**inputs, **extra)
        batch = int(inputs["input_ids"].shape[0])
        result = {}
        for name, value in outputs.items():
            if name in ROUTER_OUTPUTS:
                layers = [t for t in (value or ()) if torch.is_tensor(t)]
                if layers:
                    result[name] = torch.stack(
                        [t.reshape(batch, -1, t.shape[-1]) for t in layers], dim=1)
            elif torch.is_tensor(value) and value.dim() > 0:
                result[name] = value
        return result

    def expected_shapes(self, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """LM logits over the vocabulary and, where returned, router logits per MoE layer."""
        shapes = super().expected_shapes(inputs)
        if not self.router_logits_supported:
            return shapes
        batch, seq = (int(n) for n in inputs["input_ids"].shape)
        if self.encoder_decoder:
            stacks = {"encoder": seq, "decoder": int(inputs["decoder_input_ids"].shape[1])}
            for stack, length in stacks.items():
                count = len(self.moe_layer_indices(stack))
                if count:
                    shapes[f"{stack}_router_logits"] = (batch, count, length, self.num_experts)
        else:
            count, width = self.router_layout
            shapes["router_logits"] = (batch, count or len(self.moe_layer_indices("decoder")),
                                       seq, width or self.num_experts)
        return shapes

    @cached_property
    def router_layout(self) -> tuple[int, int | None]:
        """(routers, logits per token) of the model's own router modules, read from the
        model built on the meta device: the layers that really route (a config may count
        sub-layers) and the columns they score (routed experts plus, in some models, the
        "zero" experts that skip computation). ``(0, None)`` when no router is found."""
        routers = router_modules(self.skeleton())
        hidden = int(self.text_config.hidden_size)
        widths = {int(p.shape[0]) for router in routers for p in router.parameters()
                  if p.dim() == 2 and p.shape[1] == hidden}  # the scoring projection
        return len(routers), (widths.pop() if len(widths) == 1 else None)

    def routes_by_top_logits(self, model: Any) -> bool:
        """True when each token's experts are the top-k of its router logits.

        False for group-limited routing (DeepSeek-V3's ``n_group`` > 1) and for routers that
        add a learned bias before choosing (``e_score_correction_bias``, ``expert_bias``).
        """
        if any((_int(getattr(self.text_config, key, None)) or 1) > 1 for key in GROUP_KEYS):
            return False
        names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
        return not any(name.endswith(BIAS_NAMES) for name in names)

    def routing(self, model: Any, inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """Per router call, in call order: ``logits`` (tokens, experts) and ``experts``.

        ``experts`` is (tokens, k) with the expert indices the model routed each token to,
        taken from the router module's own output (hooks on the router classes the model
        declares in ``_can_record_outputs["router_logits"]``); ``-1`` marks a slot a
        capacity-limited router left empty. An empty list means no router module was found.
        """
        import torch

        specs = _router_specs(model)
        calls: list[tuple[Any, int]] = []

        def record(index: int, module: Any, args: Any, output: Any) -> None:
            calls.append((output, index))

        handles = [module.register_forward_hook(partial(record, index))
                   for module, index in _routers_with_index(model, specs)]
        try:
            with torch.inference_mode():
                model(**inputs, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        return [self._route(output, index) for output, index in calls]

    def _route(self, output: Any, index: int) -> dict[str, Any]:
        """Split one router output into its logits and the chosen experts per token."""
        import torch

        items = list(output) if isinstance(output, (tuple, list)) else [output]
        logits = items[index]
        experts_total = int(logits.shape[-1])
        flat = logits.reshape(-1, experts_total)
        others = [item for i, item in enumerate(items) if i != index and torch.is_tensor(item)]
        # expert indices (tokens, k), as Mixtral-style routers return them
        indices = [t for t in others if not t.is_floating_point() and t.shape != logits.shape]
        if indices:
            return {"logits": flat, "experts": indices[0].reshape(flat.shape[0], -1).long()}
        # else a (tokens, experts) dispatch matrix: combine weights (NLLB-MoE's gates) first,
        # then a one-hot mask (Switch); its non-zero columns are the chosen experts
        masks = sorted((t for t in others if t.shape == logits.shape),
                       key=lambda t: not t.is_floating_point())
        chosen = None
        if masks:
            mask = masks[0].reshape(-1, experts_total) != 0
            values, picked = mask.to(torch.float32).topk(self.top_k or 1, dim=-1)
            chosen = torch.where(values > 0, picked, torch.full_like(picked, -1))
        return {"logits": flat, "experts": chosen}


def _routers_with_index(model: Any, specs: list[tuple[Any, str | None, int]]
                        ) -> list[tuple[Any, int]]:
    """The modules of ``model`` that ``specs`` name as routers, each with its logits index."""
    found = []
    for name, module in model.named_modules():
        for target, class_name, index in specs:
            if ((target is not None and isinstance(module, target))
                    or (class_name is not None and name.endswith(class_name))):
                found.append((module, index))
                break
    return found


def router_modules(model: Any) -> list[Any]:
    """The router modules of ``model`` (those its classes record router logits from)."""
    return [module for module, _ in _routers_with_index(model, _router_specs(model))]


def _router_specs(model: Any) -> list[tuple[Any, str | None, int]]:
    """(router class, class-name suffix, logits index) from every submodel's record table."""
    specs = []
    for module in model.modules():
        table = getattr(type(module), "_can_record_outputs", None) or {}
        entries = table.get("router_logits")
        if entries is None:
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, str):
                spec = (None, entry, 1)
            elif isinstance(entry, type):
                spec = (entry, None, 1)  # transformers' default index for non-hidden outputs
            else:
                spec = (entry.target_class, entry.class_name, entry.index)
            if spec not in specs:
                specs.append(spec)
    return specs
