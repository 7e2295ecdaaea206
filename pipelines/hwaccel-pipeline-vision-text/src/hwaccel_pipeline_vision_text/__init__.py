"""hwaccel pipeline ``vision-text``: image-text dual encoders (CLIP, SigLIP, BLIP, OWL-ViT).
"""
