"""What every benchmark records about the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine(device: torch.device | None = None, load: bool = True) -> str:
    """CPU model, cores, torch version and threads, the GPU where used, and the load
    average at the start: these machines are shared, and the load says how much."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device is not None and device.type == "cuda":
        text = f"{torch.cuda.get_device_name(device)}; {text}"
    if not load or not hasattr(os, "getloadavg"):
        return text
    return text + f", load average {os.getloadavg()[0]:.1f} at start"
