"""What a host offers a Kiln cluster, and the ``ray start`` line that offers it.

A host joins a lab's Ray cluster as a node whose custom resources are the Kiln profiles
available on it (what ``kiln doctor`` finds: :func:`kiln_lab.core.availability.
check_availability`), ``kiln-profile:NAME``, counted in devices (an NVIDIA GPU host
offers ``kiln-profile:cuda-onnxruntime`` once per GPU; a CPU profile once per slot),
plus ``kiln-slots``: how many cells the host runs at once (default 1, so two CPU cells
never share the cores). A cell asks for one of its profile and one slot, so Ray places
it only on a host that can run it. Ray detects Ascend NPUs itself as ``NPU`` and NVIDIA
GPUs as ``GPU``; other vendors' cards are known to Ray only through these resources.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROFILE_RESOURCE = "kiln-profile:"
SLOTS_RESOURCE = "kiln-slots"
DEFAULT_PORT = 6379
DEFAULT_OBJECT_STORE_MB = 256
"""Cells send Ray only small batches of events, so the object store needs little (Ray's own
default reserves 30% of the machine's memory for it)."""


def profile_resource(profile: str) -> str:
    return PROFILE_RESOURCE + profile


@dataclass(frozen=True)
class HostOffer:
    """The resources a host advertises, and the profiles it leaves out with the reason."""

    resources: dict[str, float]
    unavailable: dict[str, str]

    @property
    def profiles(self) -> list[str]:
        return sorted(
            k.removeprefix(PROFILE_RESOURCE) for k in self.resources if k != SLOTS_RESOURCE
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "resources": self.resources,
            "profiles": self.profiles,
            "unavailable": self.unavailable,
        }


def _device_count(profile: Any, slots: int) -> int:
    if profile.device == "cuda":
        from kiln_lab.core.availability import nvidia_gpus

        return max(1, len(nvidia_gpus()[0]))
    return slots if profile.device == "cpu" else 1


def host_offer(slots: int = 1, only: list[str] | None = None) -> HostOffer:
    """Every available profile on this host as a Ray resource (``only``: a subset)."""
    from kiln_lab.core.availability import check_availability
    from kiln_lab.core.profiles import scan_profiles

    loaded, _ = scan_profiles()
    resources: dict[str, float] = {SLOTS_RESOURCE: float(slots)}
    unavailable: dict[str, str] = {}
    for profile in loaded:
        if only is not None and profile.name not in only:
            continue
        status = check_availability(profile)
        if status.available:
            resources[profile_resource(profile.name)] = float(_device_count(profile, slots))
        else:
            unavailable[profile.name] = status.reason
    return HostOffer(resources, unavailable)


def ray_executable() -> str:
    """The ``ray`` command of the Python Kiln runs in (the cluster extra installs it)."""
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return str(beside)
    return shutil.which("ray") or "ray"


def ray_start_command(
    offer: HostOffer,
    *,
    head: bool,
    address: str | None = None,
    port: int = DEFAULT_PORT,
    object_store_mb: int = DEFAULT_OBJECT_STORE_MB,
    num_cpus: int | None = None,
    node_ip: str | None = None,
    block: bool = False,
) -> list[str]:
    """The argument list that starts this host's Ray node (never run through a shell)."""
    argv = [ray_executable(), "start"]
    if head:
        argv += ["--head", f"--port={port}", "--include-dashboard=false"]
    else:
        if not address:
            raise ValueError("a joining host needs the head's address")
        argv.append(f"--address={address}")
    argv.append(f"--resources={json.dumps(offer.resources, sort_keys=True)}")
    argv.append("--disable-usage-stats")  # Ray would otherwise report home by default
    argv.append(f"--object-store-memory={object_store_mb * 2**20}")
    if num_cpus is not None:
        argv.append(f"--num-cpus={num_cpus}")
    if node_ip:
        argv.append(f"--node-ip-address={node_ip}")
    if block:  # stays in the foreground (a service unit, a terminal): stopping it stops the node
        argv.append("--block")
    return argv
