"""hwaccel pipeline ``diffusion``: diffusers models and pipelines (UNet denoising loops, DDPM,
Stable Diffusion).
"""
