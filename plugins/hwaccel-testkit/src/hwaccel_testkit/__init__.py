"""hwaccel-testkit: the contract every hwaccel plugin passes, as pytest classes to subclass.

In a plugin's own tests::

    from hwaccel_testkit import BackendContract, PipelineContract

    class TestAcme(BackendContract):
        plugin = "acme"                  # the entry-point name in group ``hwaccel``
        vendor_modules = ("acme_sdk",)   # the SDK the module must import without

    class TestTimeseries(PipelineContract):
        plugin = "timeseries"

The tests run against the installed distributions (entry points), take seconds and run no
benchmark unless ``run_benchmark = True`` asks for one on an available device.
"""

from hwaccel_testkit.backend import BackendContract
from hwaccel_testkit.pipeline import PipelineContract

__all__ = ["BackendContract", "PipelineContract"]
