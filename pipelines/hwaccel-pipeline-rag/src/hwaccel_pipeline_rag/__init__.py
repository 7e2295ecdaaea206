"""hwaccel pipeline ``rag``: retrieve-then-generate compositions and transformers' Rag models.
"""
