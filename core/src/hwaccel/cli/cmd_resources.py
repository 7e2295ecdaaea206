"""``hwaccel resources``: memory by phase, disk, cores and batch size per device."""

from __future__ import annotations

import argparse
from typing import Any

from hwaccel.cli.estimate_options import add_estimate_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    parser = sub.add_parser(
        "resources", help="memory, disk, cores, batch size per device; resource-pool config",
        description="Estimate what each model needs on each detected device: peak memory of "
                    "loading, of one call and of generating (parameters counted on the meta "
                    "device, KV cache and activations from the config, the runtime's own "
                    "memory measured once per device), disk, CPU cores and the largest batch "
                    "that fits. Measured peaks in the history replace estimates.")
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--resource-config", action="store_true",
                        help="print the resource-pool configuration for holding the models "
                             "together instead")
    parser.add_argument("--explain", action="store_true",
                        help="print how every figure was obtained")
    add_estimate_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Estimate and print; exit 2 for bad input."""
    from hwaccel.cli.estimate_options import estimator_from, mb
    from hwaccel.cli.output import console, print_json, table

    estimator = estimator_from(args)
    backends = estimator.report.check_backends(args.backends) if args.backends else None
    if args.resource_config:
        return _resource_config(args, estimator, backends)
    devices = estimator.devices(backends)
    estimates = estimator.estimate_all(list(dict.fromkeys(args.models)), devices,
                                       batch_size=args.batch_size, seq_len=args.seq_len,
                                       precision=args.precision)
    if args.json:
        print_json({"estimates": [e.to_dict() for e in estimates],
                    "footprints": {m: estimator.footprint(m, args.seq_len).to_dict()
                                   for m in dict.fromkeys(args.models)}})
        return 0
    table(f"Resources (batch {args.batch_size}, sequence {args.seq_len}, {args.precision} asked; "
          "MiB)",
          ["model", "device", "ran as", "params", "weights", "runtime", "load", "inference",
           "generation", "device mem", "KV cache", "disk", "cores", "max batch", "fits",
           "source"],
          [[e.model, e.device, e.precision, f"{e.parameters:,}", mb(e.weights_mb),
            mb(e.runtime_mb), mb(e.load_peak_mb), mb(e.inference_peak_mb),
            mb(e.generation_peak_mb), mb(e.device_peak_mb), f"{e.kv_cache_mb:,.1f}",
            mb(e.disk_mb), e.cpu_cores, e.max_batch_size,
            {True: "yes", False: "no", None: "?"}[e.fits], e.source] for e in estimates])
    for estimate in estimates:
        if estimate.fits is not True:
            console.print(f"{estimate.model} on {estimate.device}: {estimate.reason}",
                          highlight=False, soft_wrap=True)
    if args.explain:
        for estimate in estimates:
            console.print(f"[bold]{estimate.model} on {estimate.device}[/bold]", highlight=False)
            for line in estimate.basis:
                console.print(f"  - {line}", highlight=False, soft_wrap=True)
    return 0


def _resource_config(args: argparse.Namespace, estimator: Any,
                     backends: list[str] | None) -> int:
    """Print the pool configuration of the models held together."""
    from hwaccel.cli.estimate_options import mb
    from hwaccel.cli.output import console, print_json, table
    from hwaccel.compat.hardware_model_integration import HardwareAwareModelClassifier

    classifier = HardwareAwareModelClassifier(estimator=estimator)
    config = classifier.get_optimal_resource_pool_config(list(dict.fromkeys(args.models)),
                                                         backends=backends)
    if args.json:
        print_json(config)
        return 0
    table("Resource pool: models held together (MiB)",
          ["model", "family", "device", "torch device", "peak", "resident", "source"],
          [[m, e["family"], e["device"], e["torch_device"], mb(e["peak_mb"]),
            mb(e["resident_mb"]), e["source"]] for m, e in config["models"].items()])
    needs = config["resource_requirements"]
    pool = config["resource_pool_config"]
    console.print(f"total {mb(needs['total_memory_mb'])} MiB, largest single peak "
                  f"{mb(needs['max_memory_mb'])} MiB; low-memory mode "
                  f"{'advised' if pool['low_memory_mode'] else 'not needed'}: {pool['reason']}; "
                  f"preferred hardware "
                  f"{config['hardware_recommendations']['preferred_hardware']}",
                  highlight=False, soft_wrap=True)
    return 0
