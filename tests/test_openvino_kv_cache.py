"""OpenVINO generation with the KV cache in a stateful graph: the same greedy tokens as
transformers' generate, the logits of each step, the streamer's calls, the IR cache, and the
re-run loop for what the stateful export does not cover (with the reason in ``kv_cache``).

Every conversion and inference is real (OpenVINO's CPU device, tiny models).
"""

from __future__ import annotations

import pytest

from conftest import workload_and_model

NEW_TOKENS = 16
FALLBACK_TOKENS = 2  # the re-run loop converts a graph per sequence length: few steps


@pytest.fixture(scope="module")
def decoders(plugins):
    """Model type -> (PyTorch model, its OpenVINOModel) for tiny gpt2, llama and qwen2."""
    from hwaccel_openvino.convert import OpenVINOModel

    built = {}
    for model_type in ("gpt2", "llama", "qwen2"):
        _, model = workload_and_model(f"tiny:{model_type}", plugins, prepare=True)
        built[model_type] = model, OpenVINOModel(model, model_ref=f"tiny:{model_type}",
                                                 threads=1)
    return built


def prompt(model, batch: int, length: int, padded: bool = False) -> dict:
    """Seeded random prompt ids; with ``padded``, the second row left-padded by 5 tokens."""
    import torch

    generator = torch.Generator().manual_seed(batch * 100 + length)
    ids = torch.randint(4, model.config.vocab_size, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    if padded:
        mask[1, :5] = 0
    return {"input_ids": ids, "attention_mask": mask}


def reference(model, inputs: dict, new_tokens: int = NEW_TOKENS):
    """transformers' greedy generate of exactly ``new_tokens`` tokens on the fp32 model."""
    import torch

    with torch.inference_mode():
        return model.generate(**inputs, do_sample=False, min_new_tokens=new_tokens,
                              max_new_tokens=new_tokens, pad_token_id=0)


def generate(wrapper, inputs: dict, new_tokens: int = NEW_TOKENS, **options):
    """The OpenVINOModel's greedy generate with the options of :func:`reference`."""
    return wrapper.generate(**inputs, do_sample=False, min_new_tokens=new_tokens,
                            max_new_tokens=new_tokens, pad_token_id=0, **options)


class RecordingStreamer:
    """A BaseStreamer that keeps what each ``put`` received and counts ``end`` calls."""

    def __init__(self):
        self.puts: list = []
        self.ends = 0

    def put(self, value) -> None:
        """Keep a copy of ``value``."""
        self.puts.append(value.clone())

    def end(self) -> None:
        """Count the end of the stream."""
        self.ends += 1


CASES = [(model_type, batch, length, padded) for model_type in ("gpt2", "llama")
         for batch, length, padded in ((1, 8, False), (1, 32, False), (2, 8, True),
                                       (2, 32, False))] + [("qwen2", 2, 8, True)]


@pytest.mark.parametrize(("model_type", "batch", "length", "padded"), CASES)
def test_stateful_tokens_are_transformers_greedy_tokens(decoders, model_type, batch, length,
                                                        padded):
    model, wrapper = decoders[model_type]
    inputs = prompt(model, batch, length, padded)

    tokens = generate(wrapper, inputs)

    assert wrapper.kv_cache == "stateful"
    assert tokens.shape == (batch, length + NEW_TOKENS)
    assert tokens.equal(reference(model, inputs))


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_each_step_gives_the_logits_of_the_whole_sequence(decoders, model_type):
    """Prefill and every cached step answer what a forward of the whole sequence does at
    its last position, for a left-padded batch."""
    import torch

    from hwaccel_openvino.stateful import stateful_decoder

    model, wrapper = decoders[model_type]
    inputs = prompt(model, 2, 8, padded=True)
    decoder = stateful_decoder(wrapper, model)
    assert decoder.compiled.get_property("KV_CACHE_PRECISION").get_type_name() == "f32"
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    got = decoder.prefill(ids, mask)
    for step in range(3):
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        with torch.inference_mode():
            expected = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                             use_cache=False).logits[:, -1]
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), step
        token = torch.tensor([step + 7, step + 11])
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones(2, 1)], dim=1)
        got = decoder.step(token)


@pytest.mark.parametrize("use_cache", [True, False])
def test_streamer_gets_the_prompt_then_each_token_then_end(decoders, use_cache):
    import torch

    model, wrapper = decoders["gpt2"]
    inputs = prompt(model, 2, 8)
    streamer = RecordingStreamer()
    new_tokens = 4 if use_cache else FALLBACK_TOKENS

    tokens = generate(wrapper, inputs, new_tokens, streamer=streamer, use_cache=use_cache)

    assert wrapper.kv_cache == ("stateful" if use_cache else
                                "none: generate was called with use_cache=False")
    assert streamer.ends == 1 and len(streamer.puts) == 1 + new_tokens
    assert streamer.puts[0].equal(inputs["input_ids"])
    assert all(put.shape == (2,) and put.dtype == torch.long for put in streamer.puts[1:])
    assert torch.cat([streamer.puts[0], torch.stack(streamer.puts[1:], dim=1)], 1).equal(tokens)
    assert tokens.equal(reference(model, inputs, new_tokens))


def test_the_stateful_ir_is_read_from_the_cache_without_converting(decoders, monkeypatch):
    import openvino

    from hwaccel_openvino.convert import OpenVINOModel

    model, wrapper = decoders["gpt2"]
    inputs = prompt(model, 1, 8)
    generate(wrapper, inputs, 2)  # the IR is stored by then

    def refuse(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    again = OpenVINOModel(model, model_ref="tiny:gpt2", threads=1)
    assert generate(again, inputs).equal(reference(model, inputs))
    assert again.kv_cache == "stateful"


def test_a_failed_export_decodes_without_a_cache_and_says_why(decoders, monkeypatch):
    from hwaccel_openvino import stateful
    from hwaccel_openvino.convert import OpenVINOModel

    def fail(load_source, identity, precision):
        raise RuntimeError("the tracer gave up")

    monkeypatch.setattr(stateful, "load_or_convert_stateful", fail)
    model, _ = decoders["gpt2"]
    wrapper = OpenVINOModel(model, model_ref="tiny:gpt2", threads=1)
    inputs = prompt(model, 2, 8)  # the re-run graphs the streamer test converted

    tokens = generate(wrapper, inputs, FALLBACK_TOKENS)

    assert wrapper.kv_cache == ("none: the stateful graph failed to convert: "
                                "RuntimeError: the tracer gave up")
    assert tokens.equal(reference(model, inputs, FALLBACK_TOKENS))


def test_encoder_decoder_models_decode_without_a_cache(plugins):
    from hwaccel_openvino.convert import OpenVINOModel

    workload, model = workload_and_model("tiny:t5", plugins, prepare=True)
    wrapper = OpenVINOModel(model, model_ref="tiny:t5", threads=1)
    inputs = workload.make_inputs(1, 6)
    streamer = RecordingStreamer()

    tokens = wrapper.generate(input_ids=inputs["input_ids"],
                              attention_mask=inputs["attention_mask"], max_new_tokens=1,
                              min_new_tokens=1, streamer=streamer)

    assert wrapper.kv_cache == "none: encoder-decoder models decode without a cache on OpenVINO"
    assert tokens.equal(workload.generate(model, inputs, new_tokens=1))
    assert [put.tolist() for put in streamer.puts] == [tokens[:, :1].tolist(),
                                                       tokens[:, 1].tolist()]
    assert streamer.ends == 1


def test_sliding_window_caches_and_extra_inputs_are_not_exported(plugins, decoders):
    from hwaccel_openvino.stateful import unsupported_reason

    _, mistral = workload_and_model("tiny:mistral", plugins)
    gpt2, _ = decoders["gpt2"]

    assert unsupported_reason(mistral) == (
        "MistralForCausalLM's cache has DynamicSlidingWindowLayer layers; only "
        "full-attention DynamicLayer caches are exported statefully")
    assert unsupported_reason(gpt2, ("input_ids", "attention_mask", "token_type_ids")) == (
        "the stateful graph takes input_ids and attention_mask only, not token_type_ids")
    assert unsupported_reason(gpt2) is None


def test_int8_generation_runs_the_stateful_graph_with_compressed_weights(decoders):
    from hwaccel_openvino.convert import OpenVINOModel, model_identity
    from hwaccel_openvino.stateful import load_or_convert_stateful

    model, _ = decoders["gpt2"]
    wrapper = OpenVINOModel(model, model_ref="tiny:gpt2", threads=1, precision="int8")
    inputs = prompt(model, 1, 8)

    tokens = generate(wrapper, inputs, 4)

    def refuse():
        raise AssertionError("the int8 IR was not cached by generate")

    stored = load_or_convert_stateful(refuse, model_identity(model, "tiny:gpt2"), "int8")
    weight_types = {op.get_output_element_type(0).get_type_name() for op in stored.get_ops()
                    if op.get_type_name() == "Constant" and op.get_output_size() == 1}
    assert wrapper.kv_cache == "stateful" and tokens.shape == (1, 12)
    assert "u8" in weight_types or "i8" in weight_types


def test_forget_drops_the_compiled_decoder_and_the_next_one_reads_the_cache(decoders):
    from hwaccel_openvino.stateful import forget, stateful_decoder

    model, wrapper = decoders["gpt2"]
    first = stateful_decoder(wrapper, model)
    assert stateful_decoder(wrapper, model) is first

    forget(wrapper)

    again = stateful_decoder(wrapper, model)
    assert again is not first and again.compiled is not first.compiled
