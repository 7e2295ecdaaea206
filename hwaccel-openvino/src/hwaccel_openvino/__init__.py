"""hwaccel backend ``openvino``: Intel OpenVINO (CPU, integrated GPU, NPU) via
openvino.convert_model.
"""
