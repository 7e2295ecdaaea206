"""hwaccel backend ``cuda``: NVIDIA GPUs via torch.cuda, with NVML when nvidia-ml-py is installed.
"""
