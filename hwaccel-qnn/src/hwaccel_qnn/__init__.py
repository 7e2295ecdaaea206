"""hwaccel backend ``qnn``: Qualcomm NPUs via ONNX Runtime's QNN execution provider.
"""
