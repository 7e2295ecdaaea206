"""The plugin author's kit: what backend and pipeline plugins share.

A plugin imports the plugin API (``hwaccel``, ``hwaccel.hookspecs``, ``hwaccel.types``,
``hwaccel.plugins``, ``hwaccel.errors``) and modules of this package, nothing else of
hwaccel: measurement (:mod:`~hwaccel.kit.measure`), workloads
(:mod:`~hwaccel.kit.workloads`), template parts (:mod:`~hwaccel.kit.pipeline_parts`),
failure categories (:mod:`~hwaccel.kit.failures`), tiny models (:mod:`~hwaccel.kit.tiny`),
the TAXONOMY rule (:mod:`~hwaccel.kit.taxonomy`), torch-GPU helpers
(:mod:`~hwaccel.kit.torchgpu`) and ONNX export and sessions (:mod:`~hwaccel.kit.onnx_export`).
"""
