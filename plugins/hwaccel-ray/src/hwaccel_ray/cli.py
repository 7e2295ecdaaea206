"""``hwaccel-ray node``: start this machine's Ray node with its detected devices as resources.

Ray fixes a node's resources when it starts, so each machine joins the cluster through this
command: it runs hwaccel's detection with the plugins loaded here (``HWACCEL_LOAD_PLUGINS``,
``HWACCEL_DISABLE_PLUGINS`` apply), turns the available devices into Ray custom resources
(:mod:`hwaccel_ray.resources`) and then becomes ``ray start`` with them, so ``--block``
and every other ``ray start`` option behave as usual::

    hwaccel-ray node --head --node-ip-address 10.0.0.5 --port 6379
    hwaccel-ray node --address 10.0.0.5:6379 --node-ip-address 10.0.0.7
    hwaccel-ray node --address 10.0.0.5:6379 --dry-run      # print what it would start

Options after ``--`` go to ``ray start`` unchanged. ``--node-name`` defaults to the host
name, which is the node name hwaccel records with every cell that ran there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"hwaccel-ray: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``hwaccel-ray`` parser."""
    parser = _Parser(prog="hwaccel-ray", description="Ray nodes for hwaccel's matrix.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    node = sub.add_parser("node", help="detect this machine's hardware and start its Ray "
                                       "node with the devices as resources")
    where = node.add_mutually_exclusive_group(required=True)
    where.add_argument("--head", action="store_true", help="start the cluster's head node")
    where.add_argument("--address", metavar="HOST:PORT", help="join the cluster of this head")
    node.add_argument("--node-ip-address", metavar="IP",
                      help="this node's address as the other nodes reach it")
    node.add_argument("--port", type=int, help="the head's port (ray's default: 6379)")
    node.add_argument("--node-name", default=socket.gethostname(),
                      help="the name recorded with cells run here (default: the host name)")
    node.add_argument("--refresh", action="store_true",
                      help="detect again instead of using the cached detection")
    node.add_argument("--dry-run", action="store_true",
                      help="print the resources and the ray start command; start nothing")
    node.add_argument("--json", action="store_true", help="with --dry-run: print JSON")
    node.add_argument("ray_args", nargs=argparse.REMAINDER,
                      help="after '--': more ray start options (e.g. --block)")
    return parser


def ray_command(args: argparse.Namespace, resources: dict[str, float], gpus: int) -> list[str]:
    """The ``ray start`` command line that starts this node with ``resources``."""
    ray = Path(sys.executable).with_name("ray")
    cmd = [str(ray) if ray.is_file() else (shutil.which("ray") or "ray"), "start"]
    cmd += ["--head"] if args.head else ["--address", args.address]
    if args.port is not None:
        cmd += ["--port", str(args.port)]
    if args.node_ip_address:
        cmd += ["--node-ip-address", args.node_ip_address]
    cmd += ["--node-name", args.node_name, "--num-gpus", str(gpus),
            "--resources", json.dumps(resources, sort_keys=True)]
    extra = list(args.ray_args)
    return cmd + (extra[1:] if extra[:1] == ["--"] else extra)


def node(args: argparse.Namespace) -> int:
    """Detect, print what this node offers, then become ``ray start`` (unless dry-run)."""
    from hwaccel.cli.output import warn_errors
    from hwaccel.hardware.detection import detect
    from hwaccel.plugins import load
    from hwaccel_ray.resources import gpu_count, node_resources

    report = detect(load(), refresh=args.refresh)
    warn_errors(report.errors)
    resources = node_resources(report.hardware)
    gpus = gpu_count(report.hardware)
    cmd = ray_command(args, resources, gpus)
    offered = sorted({f"{h.backend}:{h.device}" for h in report.hardware if h.available})
    absent = sorted({f"{h.backend} ({h.reason})" for h in report.hardware if not h.available})
    if args.dry_run and args.json:
        print(json.dumps({"node_name": args.node_name, "resources": resources,
                          "num_gpus": gpus, "offers": offered, "absent": absent,
                          "command": cmd}, indent=2))
        return 0
    print(f"hwaccel-ray: node {args.node_name} offers {', '.join(offered) or 'no device'}"
          + (f"; absent: {'; '.join(absent)}" if absent else ""), file=sys.stderr)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.execv(cmd[0], cmd)  # becomes ray start: signals and --block behave as ray's own


def main(argv: list[str] | None = None) -> int:
    """Run ``hwaccel-ray``; expected failures are one line and a non-zero exit."""
    from hwaccel.errors import HwaccelError

    args = build_parser().parse_args(argv)
    try:
        return node(args)
    except HwaccelError as exc:
        print(f"hwaccel-ray: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"hwaccel-ray: error: cannot start ray: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
