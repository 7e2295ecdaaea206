"""hwaccel pipeline ``audio``: speech and audio models (Whisper, wav2vec2, audio classifiers).
"""
