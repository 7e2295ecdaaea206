"""hwaccel pipeline ``multimodal``: generative vision-language models (LLaVA, PaliGemma, Idefics,
Qwen2-VL).
"""
