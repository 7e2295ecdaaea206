"""Estimates and recommendations: footprints, resource needs, calibration, recommendations."""
