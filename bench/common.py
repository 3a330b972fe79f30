"""What every benchmark records about the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from pixelwise.runtime import cpu_flags


def machine(device: torch.device | None = None, load: bool = True) -> str:
    """CPU model, its widest vector unit, cores, torch version and threads, the GPU where
    used, and the load average at the start: these machines are shared, and the load says
    how much. The same model name comes with and without AVX-512 BF16, and whether bf16
    is native halves or doubles every figure, so the vector unit is named."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu} ({vector_unit()}), {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device is not None and device.type == "cuda":
        text = f"{torch.cuda.get_device_name(device)}; {text}"
    if not load or not hasattr(os, "getloadavg"):
        return text
    return text + f", load average {os.getloadavg()[0]:.1f} at start"


def vector_unit() -> str:
    """What the CPU computes bfloat16 with: AMX, AVX-512 BF16, or neither (then AVX2,
    AVX-512 without BF16, or the architecture)."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    if "avx512f" in flags:
        return "AVX-512, no BF16"
    if "avx2" in flags:
        return "AVX2"
    return platform.machine()
