"""Can a profile run on this machine? Every missing piece, and how to get it.

Detection looks for exactly what the profile declares (Python modules, executables on
PATH, environment variables, shared libraries, ONNX Runtime providers, a GPU, device
query commands) and reports *all* that is missing, each with its fix, so an operator
fixes a machine in one pass instead of one error at a time. Nothing here is faked: a
vendor profile is available only where its real toolchain is.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import glob
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

PIP_FIXES = {
    "CUDAExecutionProvider": "pip uninstall -y onnxruntime && pip install onnxruntime-gpu",
    "TensorrtExecutionProvider": "pip uninstall -y onnxruntime && pip install onnxruntime-gpu",
    "OpenVINOExecutionProvider": "pip install onnxruntime-openvino",
}
LIBRARY_FIXES = {
    "nvinfer": "pip install tensorrt-cu12 and add its tensorrt_libs directory to "
    "LD_LIBRARY_PATH, or install TensorRT from NVIDIA",
}


@dataclass(frozen=True)
class Missing:
    """One thing the profile needs that this machine lacks."""

    what: str
    fix: str


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""
    fix: str = ""
    missing: tuple[Missing, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "reason": self.reason,
            "fix": self.fix,
            "missing": [{"what": m.what, "fix": m.fix} for m in self.missing],
        }


def check_availability(profile: Any) -> Availability:
    """Whether ``profile`` can run on this machine, and if not, why and how to fix it."""
    det = profile.detect
    missing: list[Missing] = []
    for module in det.python_modules:
        if not _module_found(module):
            package = det.pip_packages.get(module, module)
            missing.append(
                Missing(f"Python module '{module}' is not installed", f"pip install {package}")
            )
    absent_executables = set()
    for exe in det.executables:
        if shutil.which(exe) is None:
            absent_executables.add(exe)
            missing.append(
                Missing(f"executable '{exe}' is not on PATH", f"install {exe} and add it to PATH")
            )
    for var in det.env_vars:
        if not os.environ.get(var):
            missing.append(Missing(f"environment variable {var} is not set", f"export {var}=..."))
    if det.device == "cuda":
        devices, problem = nvidia_gpus()
        if not devices:
            missing.append(
                Missing(
                    f"no NVIDIA GPU: {problem}",
                    "run on a machine with an NVIDIA GPU and its driver",
                )
            )
    if det.torch_cuda:
        problem, fix = torch_cuda_problem()
        if problem:
            missing.append(Missing(problem, fix))
    if det.execution_providers:
        have = ort_providers()
        for provider in det.execution_providers:
            if provider not in have:
                shown = ", ".join(have) if have else "no onnxruntime installed"
                missing.append(
                    Missing(
                        f"ONNX Runtime has no {provider} (has: {shown})",
                        PIP_FIXES.get(provider, "install the onnxruntime build that includes it"),
                    )
                )
    for library in det.libraries:
        if not library_found(library):
            missing.append(
                Missing(
                    f"shared library lib{library}.so is not found (ldconfig, LD_LIBRARY_PATH)",
                    LIBRARY_FIXES.get(
                        library, f"install lib{library} and add it to LD_LIBRARY_PATH"
                    ),
                )
            )
    for probe in det.commands:
        if probe.run[0] in absent_executables:
            continue  # already reported, and running it would only fail again
        ok, detail = run_probe(tuple(probe.run), probe.timeout_s, os.environ.get("PATH", ""))
        if not ok:
            missing.append(Missing(f"{probe.missing} ({detail})", probe.fix))
    if not missing:
        return Availability(True)
    reason = "; ".join(m.what for m in missing)
    fix = det.setup_hint or "; ".join(dict.fromkeys(m.fix for m in missing if m.fix))
    return Availability(False, reason, fix, tuple(missing))


def _module_found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing
        return False


def library_found(name: str) -> bool:
    """A shared library the dynamic loader (or a pip wheel's lib folder) can provide."""
    if ctypes.util.find_library(name):
        return True
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    return any(glob.glob(os.path.join(d, f"lib{name}.so*")) for d in dirs)


@lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[tuple[dict[str, Any], ...], str]:
    """GPUs NVML reports as ``(devices, problem)``; ``problem`` says why there are none."""
    try:
        import pynvml
    except ImportError:
        if os.path.exists("/proc/driver/nvidia/version"):
            return (), "NVML bindings missing (pip install nvidia-ml-py) to list the GPUs"
        return (), "no NVIDIA driver (/proc/driver/nvidia/version not found; NVML not available)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return (), f"NVML could not start ({exc}): no NVIDIA driver on this machine"
    try:
        devices = []
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            devices.append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "memory_total_mb": round(memory.total / 2**20),
                    "memory_used_mb": round(memory.used / 2**20),
                    "driver": driver,
                }
            )
    except Exception as exc:  # noqa: BLE001
        return (), f"NVML failed while listing GPUs ({exc})"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return tuple(devices), "" if devices else "NVML found no GPU"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@lru_cache(maxsize=1)
def torch_cuda_problem() -> tuple[str, str]:
    """``('', '')`` when PyTorch can use a GPU, else what is wrong and the fix."""
    if not _module_found("torch"):
        return "Python module 'torch' is not installed", "pip install torch"
    import torch

    version = torch.__version__
    if torch.version.cuda is None:
        return (
            f"PyTorch {version} is a CPU-only build",
            f"install a CUDA build: pip install torch=={version.split('+')[0]} "
            "--index-url https://download.pytorch.org/whl/cu128",
        )
    if not torch.cuda.is_available():
        return (
            f"PyTorch {version} (CUDA {torch.version.cuda}) sees no GPU",
            "check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES",
        )
    return "", ""


@lru_cache(maxsize=1)
def ort_providers() -> tuple[str, ...]:
    if not _module_found("onnxruntime"):
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


@lru_cache(maxsize=32)
def run_probe(argv: tuple[str, ...], timeout_s: float, path: str = "") -> tuple[bool, str]:
    """Run a device query; ``(ok, detail)``. No shell: the list is the argument vector.

    Cached per process and ``PATH`` (``path`` is part of the cache key only).
    """
    try:
        proc = subprocess.run(  # noqa: S603 - an argument list from the profile, no shell
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        return False, f"'{argv[0]}' is not on PATH"
    except subprocess.TimeoutExpired:
        return False, f"'{' '.join(argv)}' did not answer within {timeout_s:g} s"
    except OSError as exc:
        return False, f"'{argv[0]}' could not run: {exc}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return False, f"'{' '.join(argv)}' exited {proc.returncode}: {tail[0][:200]}"
    return True, ""
