"""The quantize stage: the run's precision conversion of the ONNX graph.

int8 (dynamic, or static with calibration on the train split) with the accuracy
guard, and fp16 with LayerNorm and Softmax kept in fp32. What a runtime converts, and
from which graph, the runtime says (:meth:`Runtime.conversion`); runtimes that build
their precision in their own compile step skip this stage.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.events import ArtifactWritten, MetricSampled
from kiln_lab.core.runconfig import RunConfig
from kiln_lab.core.runtimes import Graphs
from kiln_lab.core.stages.context import StageContext
from kiln_lab.core.stages.load import Loaded
from kiln_lab.core.stages.resolve import Resolved

if TYPE_CHECKING:
    from kiln_lab.core.guard import GuardReport, GuardStep
    from kiln_lab.core.profiles import Profile
    from kiln_lab.core.quantize import CalibrationSet, DynamicInt8, StaticInt8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quantized:
    """The graphs after conversion (``graphs.converted`` set where one was made), what
    the conversion did, and the int8 guard's report where it ran."""

    graphs: Graphs
    summary: dict[str, Any] | None = None
    guard: dict[str, Any] | None = None


def run(ctx: StageContext, resolved: Resolved, loaded: Loaded, graphs: Graphs) -> Quantized:
    precision = ctx.config.precision
    conversion = resolved.runtime.conversion(resolved.profile, precision)
    if conversion.kind is None:
        ctx.skip("quantize", conversion.reason)
        return Quantized(graphs)
    if conversion.kind == "fp16":
        return _half(ctx, resolved, graphs)
    if conversion.kind == "nncf-int8":
        return _nncf(ctx, resolved, loaded, graphs)
    return _int8(ctx, resolved, loaded, graphs)


def _nncf(ctx: StageContext, resolved: Resolved, loaded: Loaded, graphs: Graphs) -> Quantized:
    """int8 for OpenVINO through NNCF, calibrated on the train split (or the part of a
    user's file held apart). Its accuracy is measured by the evaluation and the paired
    comparison with fp32; Kiln's guard repairs ONNX Runtime's int8 only."""
    from kiln_lab.core.quantize_nncf import nncf_version, quantize_openvino

    profile = resolved.profile
    with ctx.stage("quantize") as summary:
        nncf_version()  # a clear "install NNCF" before any work
        source = resolved.runtime.conversion_source(profile, "nncf-int8", graphs)
        samples = ctx.config.calibration_samples or profile.int8.calibration_samples
        calibration = calibration_set(resolved, loaded, samples)
        path, cached, meta = quantize_openvino(source, calibration, loaded.input_names)
        summary |= {
            "recipe": "nncf",
            "source": str(source),
            "calibration": {
                "samples": calibration.samples,
                "sha256": calibration.sha256,
                "source": calibration.source,
                "used_for": "calibration",
            },
            "path": str(path),
            "cached": cached,
            "quantized_nodes": meta.get("fake_quantize_nodes"),
        }
        if ctx.config.guard and not loaded.model.perf_only:
            log.info(
                "the accuracy guard repairs ONNX Runtime int8 only: this build's drop against "
                "fp32 is measured by the evaluation's paired comparison"
            )
        ctx.emit(
            ArtifactWritten(
                "quantize", "openvino-int8", str(path), "", path.stat().st_size, {"recipe": "nncf"}
            )
        )
    return Quantized(dataclasses.replace(graphs, converted=path), dict(summary))


def _int8(ctx: StageContext, resolved: Resolved, loaded: Loaded, graphs: Graphs) -> Quantized:
    from kiln_lab.core.quantize import StaticInt8
    from kiln_lab.core.quantize import quantize as quantize_graph

    guard = None
    with ctx.stage("quantize") as summary:
        recipe = build_recipe(ctx.config, resolved.profile)
        source = resolved.runtime.conversion_source(resolved.profile, recipe.kind, graphs)
        guarded = ctx.config.guard and not loaded.model.perf_only
        static = isinstance(recipe, StaticInt8)
        summary |= {"recipe": recipe.kind, "source": str(source), "calibration": None}
        calibration = None
        if static or guarded:
            # Dynamic int8 reads no examples; the guard only borrows a few for its probe.
            calibration = calibration_set(resolved, loaded, recipe.samples if static else 32)
            summary["calibration"] = {
                "samples": calibration.samples,
                "sha256": calibration.sha256,
                "source": calibration.source,
                "used_for": "calibration" if static else "the guard's sensitivity probe",
            }
        if guarded and calibration is not None:
            report = run_guard(ctx, resolved, loaded, graphs, recipe, source, calibration)
            built = report.final
            guard = report.to_dict()
            summary["guard"] = guard
        else:
            if loaded.model.perf_only:
                log.info("performance-only run: no accuracy to guard")
            built = quantize_graph(
                source, recipe, calibration=calibration, input_names=loaded.input_names
            )
        summary |= {
            "path": str(built.path),
            "cached": built.cached,
            "quantized_nodes": built.quantized_nodes,
        }
        ctx.emit(
            ArtifactWritten(
                "quantize",
                "onnx-int8",
                str(built.path),
                "",
                built.path.stat().st_size,
                {"recipe": built.recipe, "calibration_sha256": built.calibration_sha256},
            )
        )
    return Quantized(
        dataclasses.replace(graphs, converted=built.path),
        {k: v for k, v in summary.items() if k != "guard"},
        guard,
    )


def _half(ctx: StageContext, resolved: Resolved, graphs: Graphs) -> Quantized:
    """fp16 for ONNX Runtime; LayerNorm and Softmax (and the profile's keep_float op
    types) stay fp32."""
    from kiln_lab.core.quantize import FP16_BLOCK_LIST, to_float16

    profile = resolved.profile
    with ctx.stage("quantize") as summary:
        source = resolved.runtime.conversion_source(profile, "fp16", graphs)
        block = tuple(dict.fromkeys((*FP16_BLOCK_LIST, *profile.keep_float.op_types)))
        path = to_float16(source, op_block_list=block)
        summary |= {
            "recipe": "fp16",
            "source": str(source),
            "kept_fp32": list(block),
            "path": str(path),
        }
        ctx.emit(
            ArtifactWritten(
                "quantize",
                "onnx-fp16",
                str(path),
                "",
                path.stat().st_size,
                {"kept_fp32": list(block)},
            )
        )
    return Quantized(dataclasses.replace(graphs, converted=path), dict(summary))


def build_recipe(config: RunConfig, profile: Profile) -> DynamicInt8 | StaticInt8:
    """The int8 recipe a run asks for: the profile's defaults, overridden by the run."""
    from kiln_lab.core.quantize import DynamicInt8, StaticInt8

    cfg, options, keep = config, profile.int8, profile.keep_float
    nodes = list(keep.nodes)
    if cfg.keep_float_file:
        nodes += load_keep_float(Path(cfg.keep_float_file))
    common = {
        "per_channel": options.per_channel if cfg.per_channel is None else cfg.per_channel,
        "nodes_to_exclude": tuple(dict.fromkeys(nodes)),
        "op_types_to_exclude": tuple(keep.op_types),
    }
    if (cfg.quantization or options.method) == "dynamic":
        return DynamicInt8(**common)
    return StaticInt8(
        method=cfg.calibration_method or options.calibration_method,  # type: ignore[arg-type]
        samples=cfg.calibration_samples or options.calibration_samples,
        **common,
    )


def load_keep_float(path: Path) -> list[str]:
    """Nodes from a ``keep_float`` override file written by an earlier guard."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        nodes = data["keep_float"]["nodes"]
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise TypeError
    except FileNotFoundError:
        raise ConfigError("keep-float file not found", path=path) from None
    except (yaml.YAMLError, KeyError, TypeError):
        raise ConfigError(
            "not a keep_float override (expected keep_float: {nodes: [...]})",
            path=path,
            hint="use the keep_float.yaml a guarded int8 run wrote",
        ) from None
    return nodes


def calibration_set(resolved: Resolved, loaded: Loaded, samples: int) -> CalibrationSet:
    """Calibration batches from the train split, or the part of a user's file held apart."""
    from kiln_lab.core.quantize import CalibrationSet

    split = resolved.apart("train")
    examples = split.examples[:samples]
    batches = [b.arrays for b, _ in loaded.encoder.encode_all(examples, 16)]
    return CalibrationSet.from_batches(
        batches, f"{resolved.dataset.name}/{split.name}[:{len(examples)}]"
    )


def run_guard(
    ctx: StageContext,
    resolved: Resolved,
    loaded: Loaded,
    graphs: Graphs,
    recipe: DynamicInt8 | StaticInt8,
    source: Path,
    calibration: CalibrationSet,
) -> GuardReport:
    """Score the int8 graph on the dev split and keep layers in float until the drop
    is within the budget; a repair is written as a reusable ``keep_float.yaml``."""
    from kiln_lab.core.evaluate import evaluate
    from kiln_lab.core.export import write_atomically
    from kiln_lab.core.guard import guard_int8
    from kiln_lab.core.paths import artifacts_dir
    from kiln_lab.core.runtimes.onnxruntime import OnnxRuntimeModel

    cfg = ctx.config
    split = resolved.apart("dev")
    examples = split.examples[: cfg.guard_samples]
    batches = loaded.encoder.encode_all(examples, resolved.batch_size)
    metric_name = resolved.card.primary_metric
    log.info(
        "accuracy guard on %s/%s (%d examples), budget %.2f %s",
        resolved.dataset.name,
        split.name,
        len(examples),
        cfg.accuracy_budget,
        cfg.budget_mode,
    )

    def score(path: Path) -> tuple[Any, ...]:
        model = OnnxRuntimeModel(path, intra_op_threads=resolved.profile.defaults.intra_op_threads)
        result = evaluate(
            model,
            batches,
            examples,
            task=resolved.card.task,
            labels=resolved.card.labels,
            emit=lambda e: None,
            cancelled=ctx.cancelled,
        )
        return (
            float(result.accuracy[metric_name]),
            float(result.throughput["samples_per_s"]),
            result.outcomes,  # the guard pairs them with the float graph's
        )

    def on_step(step: GuardStep) -> None:
        ctx.emit(
            MetricSampled(
                "quantize",
                "guard",
                {
                    "kept_in_float": len(step.kept_in_float),
                    metric_name: step.metric,
                    "drop_points": step.drop_points,
                    "samples_per_s": step.samples_per_s,
                },
            )
        )

    report = guard_int8(
        float_path=graphs.onnx,
        quant_source=source,
        recipe=recipe,
        calibration=calibration if recipe.kind == "static" else None,
        probe_batches=calibration.batches[:4],
        input_names=loaded.input_names,
        score=score,
        metric_name=metric_name,
        budget=cfg.accuracy_budget,
        budget_mode=cfg.budget_mode,
        cancelled=ctx.cancelled,
        on_step=on_step,
    )
    if report.repaired:
        out = artifacts_dir(ctx.run_id)
        kept = list(report.steps[-1].kept_in_float)
        write_atomically(
            out / "keep_float.yaml",
            yaml.safe_dump({"keep_float": {"nodes": kept, "op_types": []}}, sort_keys=False),
        )
        write_atomically(
            out / "int8-overrides.json",
            json.dumps(
                {
                    "model": resolved.card.name,
                    "profile": resolved.profile.name,
                    "recipe": recipe.kind,
                    "nodes_to_exclude": kept,
                    "guard": report.to_dict(),
                },
                indent=2,
            ),
        )
        for name in ("keep_float.yaml", "int8-overrides.json"):
            ctx.emit(
                ArtifactWritten(
                    "quantize", "int8-override", str(out / name), "", (out / name).stat().st_size
                )
            )
        log.info(
            "guard kept %d node(s) in float; reuse with --keep-float %s",
            len(kept),
            out / "keep_float.yaml",
        )
    return report
