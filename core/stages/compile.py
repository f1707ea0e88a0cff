"""The compile stage: the runtime builds the model the later stages run.

An in-process session (PyTorch, TorchScript, ONNX Runtime, OpenVINO) or a vendor
compiler run for real; what each needs and does lives in its runtime module
(:mod:`kiln_lab.core.runtimes`). The profile's CPU affinity is applied here, before
any session starts its thread pool.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.runtimes import BuildRequest, CompiledModel, Graphs
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.profiles import Profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Compiled:
    """The built model, the settings it runs with, and how it was built."""

    model: CompiledModel
    settings: dict[str, Any]
    request: BuildRequest
    """What the runtime was asked to build (the external benchmark rebuilds per shape)."""
    artifact: Path | None = None
    toolchain: dict[str, Any] | None = None
    """The vendor tool's compile command, duration and artifact, for external profiles."""


def run(ctx: StageContext, resolved: Resolved, loaded: Loaded, graphs: Graphs) -> Compiled:
    config = ctx.config
    with ctx.stage("compile") as summary:
        pin_cpus(resolved.profile)
        request = BuildRequest(
            profile=resolved.profile,
            precision=config.precision,
            reference_loader=lambda: loaded.model.model,
            config=loaded.model.config,
            input_names=loaded.input_names,
            graphs=graphs,
            batch_size=resolved.batch_size,
            seq_len=resolved.seq_len,
            model_name=resolved.card.name,
            task=resolved.card.task,
            calibration=lambda seq_len: calibration_samples(config, resolved, loaded, seq_len),
            cancelled=ctx.cancelled,
            emit=ctx.emit,
        )
        built = resolved.runtime.build(request)
        settings = built.model.settings()
        summary |= {"runtime": built.model.description, **settings}
        log.info("built %s", built.model.description)
        log.info(
            "threads in effect: %s",
            ", ".join(
                f"{k}={v}"
                for k, v in settings.items()
                if "thread" in k or k in ("instances", "processes", "streams", "cpu_affinity")
            ),
        )
    return Compiled(built.model, settings, request, built.artifact, built.toolchain)


def calibration_samples(
    config: RunConfig, resolved: Resolved, loaded: Loaded, seq_len: int
) -> list[dict[str, np.ndarray]]:
    """The profile's calibration count of train-split samples, each padded to ``seq_len``."""
    split = resolved.apart("train")
    count = config.calibration_samples or resolved.profile.int8.calibration_samples
    encoder = dataclasses.replace(loaded.encoder, padding="fixed", seq_len=seq_len)
    samples = []
    for batch, _ in encoder.encode_all(split.examples[:count], 1):
        samples.append({name: array[0] for name, array in batch.arrays.items()})
    log.info("calibration: %d samples of %s/%s", len(samples), resolved.dataset.name, split.name)
    return samples


def pin_cpus(profile: Profile) -> None:
    """Apply the profile's CPU affinity to this process (tools it starts inherit it)."""
    wanted = set(profile.defaults.cpu_affinity)
    if not wanted:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError("this platform cannot pin CPUs", path=profile.profile_path)
    allowed = os.sched_getaffinity(0)
    if not wanted <= allowed:
        raise ConfigError(
            f"profile '{profile.name}' pins CPUs {sorted(wanted - allowed)} that this process "
            f"may not use (allowed: {sorted(allowed)})",
            path=profile.profile_path,
            hint="edit defaults.cpu_affinity",
        )
    os.sched_setaffinity(0, wanted)
    log.info("pinned to CPUs %s", sorted(wanted))
