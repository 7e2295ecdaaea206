"""The test session never reads the user's cache or a model hub."""

import os


def test_session_uses_isolated_folders():
    assert "hwaccel-session" in os.environ["HWACCEL_CACHE_DIR"]
    assert os.environ["HF_HUB_OFFLINE"] == "1"
