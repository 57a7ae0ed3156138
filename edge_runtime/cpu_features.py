"""What the CPU can do for int8 inference, read from /proc/cpuinfo.

Benchmark reports name the CPU's int8 dot-product instructions, and ONNX Runtime sessions are
set up by them: without one, an x86 CPU's int8 kernels can saturate (``onnx_int8_saturates``).
"""
from __future__ import annotations

import platform
from typing import Optional

# The instructions that multiply int8 vectors into int32 sums in one step. Without them an x86
# CPU's int8 kernels go through 16-bit pairwise sums, slower, and in ONNX Runtime's u8s8 path
# able to saturate (docs/conversion.md, onnx-int8); two machines both called "AMD EPYC" can
# differ in exactly this.
X86_INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
INT8_DOT_PRODUCT_FLAGS = X86_INT8_DOT_PRODUCT_FLAGS + ("asimddp", "i8mm")  # ARM (a Pi 5: asimddp)

X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def int8_dot_product(cpuinfo: str = "/proc/cpuinfo") -> Optional[list[str]]:
    """The int8 dot-product instruction sets the CPU lists (x86 ``flags``, ARM ``Features``);
    None where /proc/cpuinfo is not there to say."""
    try:
        with open(cpuinfo) as info:
            for line in info:
                if line.split(":", 1)[0].strip() in ("flags", "Features"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in INT8_DOT_PRODUCT_FLAGS if flag in present]
    except OSError:
        pass
    return None


def onnx_int8_saturates(cpuinfo: str = "/proc/cpuinfo", machine: Optional[str] = None) -> bool:
    """Whether ONNX Runtime's default int8 kernels can saturate on this CPU: an x86 CPU
    without an x86 int8 dot-product instruction, or an x86 one that does not say (Windows,
    macOS). ARM CPUs, a Pi's included, never do."""
    machine = (machine or platform.machine()).lower()
    if machine not in X86_MACHINES:
        return False
    flags = int8_dot_product(cpuinfo)
    return flags is None or not set(flags) & set(X86_INT8_DOT_PRODUCT_FLAGS)
