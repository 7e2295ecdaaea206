"""The predecessor-compatible APIs: the compatibility reporter, the hardware-aware
classifier and the global resource pool."""
