"""What board this is: L4T/JetPack release, TensorRT, GPU nodes. Warn, never guess silently."""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.provision.engine import Context

MIN_L4T_MAJOR = 36  # JetPack 6


@dataclass(frozen=True)
class Platform:
    l4t: str | None       # "R36.3.0", or None when this is not a Jetson
    tensorrt: str | None  # the libnvinfer package version, or None
    gpu_nodes: tuple[str, ...]

    @property
    def jetson(self) -> bool:
        return self.l4t is not None


def _l4t(ctx: Context) -> str | None:
    try:
        first = ctx.path("/etc/nv_tegra_release").read_text().splitlines()[0]
    except (FileNotFoundError, IndexError):
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", first)
    return f"R{match.group(1)}.{match.group(2)}" if match else first.strip("# ")


def _tensorrt(ctx: Context) -> str | None:
    try:
        status = ctx.path("/var/lib/dpkg/status").read_text(errors="replace")
    except FileNotFoundError:
        return None
    for block in status.split("\n\n"):
        if re.search(r"^Package: (libnvinfer10|libnvinfer8|tensorrt)$", block, re.M) and \
                "Status: install ok installed" in block:
            version = re.search(r"^Version: (\S+)", block, re.M)
            return version.group(1) if version else "installed"
    return None


def detect(ctx: Context, gpu_nodes: list[str]) -> Platform:
    return Platform(_l4t(ctx), _tensorrt(ctx), tuple(gpu_nodes))


def report(ctx: Context, platform: Platform) -> list[str]:
    """Lines for the technician; warnings go through ``ctx.warn``."""
    lines = []
    if platform.l4t is None:
        ctx.warn("not a Jetson (no /etc/nv_tegra_release): models will run on ONNX Runtime "
                 "on the CPU")
    else:
        lines.append(f"platform: L4T {platform.l4t}")
        major = int(re.sub(r"\D.*", "", platform.l4t[1:]) or 0)
        if major < MIN_L4T_MAJOR:
            ctx.warn(f"L4T {platform.l4t} is older than JetPack 6 (R36); TensorRT 10 is needed")
    if platform.tensorrt is None:
        ctx.warn("TensorRT is not installed (apt install python3-libnvinfer): no engines")
    else:
        lines.append(f"TensorRT: {platform.tensorrt}")
    if not platform.gpu_nodes:
        ctx.warn("no GPU device nodes found under /dev")
    else:
        lines.append(f"GPU nodes: {', '.join(platform.gpu_nodes)}")
    return lines
