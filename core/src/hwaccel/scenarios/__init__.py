"""Scenario files: a benchmark sweep described in YAML and kept beside its results.

:mod:`~hwaccel.scenarios.schema` says what a file may hold, :mod:`~hwaccel.scenarios.load`
reads and checks one (every error names the file, the line and the key), and
:mod:`~hwaccel.scenarios.expand` turns it, with the command line over it, into the sweep.
``hwaccel run FILE`` runs one; ``hwaccel benchmark --config FILE`` and ``hwaccel matrix
--config FILE`` take one as their defaults. See docs/scenarios.md.
"""
