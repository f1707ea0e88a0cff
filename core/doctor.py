"""``kiln doctor``: what this machine has, and what every profile can do on it.

Pure data (a JSON-able dict) for the CLI (``kiln doctor [--json]``) and the app's
welcome screen to render: Python and the versions of the packages figures depend on
(ONNX Runtime with its providers, OpenVINO with its devices, torch with its CUDA
build), the CPU with the instruction-set flags that decide int8 and bf16 speed, GPUs
through NVML, and every profile with available / unavailable and why.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from kiln_lab.core.environment import cpu_info, package_version

INT8_FLAGS = {
    "avx2": "AVX2: int8 through 16-bit multiply-add (slowest int8 path)",
    "avx512f": "AVX-512 foundation",
    "avx512_vnni": "AVX-512 VNNI: one-instruction int8 dot products",
    "avx_vnni": "AVX-VNNI (256-bit VNNI)",
    "avx512_bf16": "AVX-512 BF16: bf16 dot products (OpenVINO defaults to bf16 here)",
    "amx_int8": "AMX int8 tiles",
    "amx_bf16": "AMX bf16 tiles",
}


def cpu_flags() -> dict[str, bool]:
    """Every int8 / bf16 relevant flag, present or not (``cpu_info`` keeps only present)."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {flag: flag in flags for flag in INT8_FLAGS}


def int8_path(flags: dict[str, bool]) -> str:
    if flags.get("amx_int8"):
        return "AMX int8 tiles"
    if flags.get("avx512_vnni") or flags.get("avx_vnni"):
        return "VNNI int8 dot products"
    if flags.get("avx2"):
        return "AVX2 (no VNNI): int8 gains are small"
    return "no SIMD int8 path found"


def packages() -> dict[str, Any]:
    found: dict[str, Any] = {
        name: {"version": package_version(name)}
        for name in ("torch", "transformers", "onnx", "onnxruntime", "openvino", "numpy")
    }
    for gpu_build in ("onnxruntime-gpu", "onnxruntime-openvino"):
        version = package_version(gpu_build)
        if version:
            found[gpu_build] = {"version": version}
    found["nvidia-ml-py"] = {"version": package_version("nvidia-ml-py")}
    from kiln_lab.core.availability import ort_providers

    if found["onnxruntime"]["version"] or "onnxruntime-gpu" in found:
        found["onnxruntime"]["providers"] = list(ort_providers())
    if found["openvino"]["version"]:
        try:
            import openvino

            found["openvino"]["devices"] = list(openvino.Core().available_devices)
        except Exception as exc:  # noqa: BLE001 - a broken install is worth reporting
            found["openvino"]["error"] = str(exc).splitlines()[0][:200]
    if found["torch"]["version"]:
        import torch

        found["torch"]["cuda_build"] = torch.version.cuda
        found["torch"]["threads"] = torch.get_num_threads()
    return found


def gpus() -> dict[str, Any]:
    from kiln_lab.core.availability import nvidia_gpus

    devices, problem = nvidia_gpus()
    return {"nvml": "available" if devices else problem, "devices": list(devices)}


def profiles() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from kiln_lab.core.availability import check_availability
    from kiln_lab.core.profiles import scan_profiles

    loaded, errors = scan_profiles()
    rows = []
    for profile in loaded:
        status = check_availability(profile)
        rows.append(
            {
                "name": profile.name,
                "title": profile.title,
                "runtime": profile.runtime,
                "device": profile.device,
                "precisions": list(profile.precisions),
                **status.to_dict(),
                "path": profile.profile_path,
            }
        )
    return rows, [e.to_dict() for e in errors]


def doctor() -> dict[str, Any]:
    """The whole report, as data."""
    flags = cpu_flags()
    cpu = cpu_info()
    rows, problems = profiles()
    return {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        "kiln": package_version("kiln-lab"),
        "packages": packages(),
        "cpu": {
            "model": cpu["model"],
            "logical_cores": cpu["logical_cores"],
            "usable_cores": cpu["usable_cores"],
            "flags": flags,
            "int8_path": int8_path(flags),
        },
        "gpus": gpus(),
        "profiles": rows,
        "profile_errors": problems,
    }
