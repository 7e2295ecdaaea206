"""hwaccel pipeline ``moe``: mixture-of-experts language models (Mixtral, Qwen2-MoE, DeepSeek).
"""
