"""hwaccel backend ``rocm``: AMD GPUs via HIP builds of torch, with amdsmi when installed.
"""
