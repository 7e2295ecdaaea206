"""What a plugin may know about the job process a benchmark or generated test runs in.

hwaccel runs every job in a child forked by one job zygote per run (``python -m`` of
:data:`ZYGOTE_MODULE`); a plugin that keeps something alive across the jobs of a run (a
browser) ties its life to that zygote with :func:`job_owner`.
"""

from __future__ import annotations

import os

ZYGOTE_MODULE = "hwaccel.running.zygote"
"""The module the job zygote runs as: the parent process of every job."""


def job_owner() -> int | None:
    """The pid of the job zygote that forked this process; ``None`` outside a job."""
    import psutil

    try:
        parent = psutil.Process(os.getppid())
        return parent.pid if ZYGOTE_MODULE in parent.cmdline() else None
    except psutil.Error:
        return None
