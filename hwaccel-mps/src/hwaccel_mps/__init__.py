"""hwaccel backend ``mps``: Apple silicon GPUs via torch's Metal Performance Shaders backend.
"""
