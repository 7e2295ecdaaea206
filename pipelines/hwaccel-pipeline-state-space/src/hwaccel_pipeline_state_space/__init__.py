"""hwaccel pipeline ``state-space``: recurrent-state sequence models (Mamba, Mamba2, Jamba, RWKV).
"""
