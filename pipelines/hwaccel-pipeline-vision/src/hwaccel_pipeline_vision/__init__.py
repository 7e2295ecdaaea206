"""hwaccel pipeline ``vision``: image models (classification, detection, segmentation, backbones).
"""
