"""What one page costs in a browser's memory, from the kernel's high-water marks (Linux).

A page's work lands in two places: its renderer processes (a page in a browser context of its
own gets renderers of its own, started after it opens, since the browser keeps no spare
renderer: :data:`hwaccel_web.chromium.FLAGS`) and the GPU process, which every page shares
(WebGPU's buffers and shaders live there). :class:`PageMemory` notes the renderers that exist
before the page opens and resets the GPU process's high-water mark (``/proc/PID/clear_refs``);
:meth:`PageMemory.peaks` then reads the peak of the page's own renderers and the GPU process's
peak since then. The browser's main and utility processes are shared by every page of the
run and barely move with one model, so they are left out.
"""

from __future__ import annotations

from typing import Any

from hwaccel_web.chromium import process_tree

RENDERER = "--type=renderer"
GPU_PROCESS = "--type=gpu-process"
MIB = 1024.0  # VmHWM is in KiB


def _of_type(processes: list[Any], flag: str) -> list[Any]:
    import psutil

    found = []
    for process in processes:
        try:
            if flag in process.cmdline():
                found.append(process)
        except psutil.Error:
            continue
    return found


def high_water_kib(pid: int) -> int | None:
    """The kernel's high-water mark of ``pid``'s resident memory (``VmHWM``, KiB)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def reset_high_water(pid: int) -> bool:
    """Start ``pid``'s ``VmHWM`` afresh at its current size; False where not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


class PageMemory:
    """The memory a page is charged with in the browser whose main process is ``browser_pid``.

    Create it just before the page's browser context opens.
    """

    def __init__(self, browser_pid: int | None):
        self.browser_pid = browser_pid
        tree = process_tree(browser_pid)
        self._before = {process.pid for process in _of_type(tree, RENDERER)}
        gpu = _of_type(tree, GPU_PROCESS)
        self.gpu_reset = bool(gpu) and all(reset_high_water(p.pid) for p in gpu)

    def peaks(self) -> dict[str, Any]:
        """``renderer_peak_mb`` (the page's renderers, summed), ``gpu_peak_mb`` (the GPU
        process since the page opened, or since its start when ``gpu_peak_reset`` is False)
        and their sum ``page_peak_mb``, in MiB; None where a figure is not readable."""
        tree = process_tree(self.browser_pid)
        own = [p for p in _of_type(tree, RENDERER) if p.pid not in self._before]
        renderer = [high_water_kib(p.pid) for p in own]
        gpu = [high_water_kib(p.pid) for p in _of_type(tree, GPU_PROCESS)]
        renderer_mb = sum(k for k in renderer if k) / MIB if any(renderer) else None
        gpu_mb = sum(k for k in gpu if k) / MIB if any(gpu) else None
        total = (renderer_mb or 0.0) + (gpu_mb or 0.0)
        return {"renderer_peak_mb": renderer_mb, "gpu_peak_mb": gpu_mb,
                "gpu_peak_reset": self.gpu_reset,
                "page_peak_mb": total if renderer_mb is not None or gpu_mb is not None
                else None}
