"""The optimize and quantize stages: graph fusion, int8 with calibration, the guard.

Kept apart from ``core.stages`` because this is where precision decisions live: which
graph each int8 variant starts from, where calibration samples come from, and how
the accuracy guard's repair is recorded as a reusable override.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from kiln_lab.core.errors import ConfigError
from kiln_lab.core.events import ArtifactWritten, MetricSampled
from kiln_lab.core.pipeline import RunState, StageRunner

log = logging.getLogger(__name__)


def optimize(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.optimize import fuse_transformer, model_shape, simplify

    profile = state.profile
    onnx_based = state.onnx_path is not None and profile.runtime in (
        "onnxruntime",
        "openvino",
        "external",
    )
    wants_fusion = profile.optimize.fusion and profile.runtime == "onnxruntime"
    if not onnx_based or not (profile.optimize.simplify or wants_fusion):
        reason = (
            "the profile's runtime compiles the model itself"
            if not onnx_based
            else f"profile '{profile.name}' asks for no graph rewriting"
        )
        run.skip("optimize", reason)
        return
    with run.stage("optimize") as summary:
        if profile.optimize.simplify:
            # Everything downstream (fusion, int8, vendor compilers) starts from this graph.
            path, nodes, cached = simplify(state.onnx_path)
            state.onnx_path = path
            summary["simplified"] = {"nodes": nodes, "cached": cached, "path": str(path)}
            run.emit(
                ArtifactWritten(
                    "optimize",
                    "onnx-simplified",
                    str(path),
                    "",
                    path.stat().st_size,
                    {"nodes": nodes, "cached": cached},
                )
            )
        if wants_fusion:
            heads, hidden = model_shape(state.loaded.model)
            path, counts, cached = fuse_transformer(
                state.onnx_path, num_heads=heads, hidden_size=hidden
            )
            state.fused_path = path
            summary |= {"path": str(path), "fused": counts, "cached": cached}
            run.emit(
                ArtifactWritten(
                    "optimize",
                    "onnx-fused",
                    str(path),
                    "",
                    path.stat().st_size,
                    {"fused": counts, "cached": cached},
                )
            )


def build_recipe(state: RunState) -> Any:
    from kiln_lab.core.quantize import DynamicInt8, StaticInt8

    cfg, options, keep = state.config, state.profile.int8, state.profile.keep_float
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


def calibration_set(state: RunState, samples: int) -> Any:
    """Calibration batches from the train split (or the file itself, said so)."""
    from kiln_lab.core.quantize import CalibrationSet

    if "train" in state.dataset.splits:
        split = state.dataset.split("train")
    else:
        split = state.split
        log.warning(
            "no train split in %s: calibrating on the evaluation file itself", state.dataset.name
        )
    examples = split.examples[:samples]
    batches = [b.arrays for b, _ in state.encoder.encode_all(examples, 16)]
    return CalibrationSet.from_batches(
        batches, f"{state.dataset.name}/{split.name}[:{len(examples)}]"
    )


def quantize(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.quantize import StaticInt8
    from kiln_lab.core.quantize import quantize as quantize_graph

    precision = state.config.precision
    if precision == "fp32":
        run.skip("quantize", "fp32 keeps the weights as trained")
        return
    if precision == "fp16" and state.profile.runtime == "onnxruntime":
        if "TensorrtExecutionProvider" in state.profile.execution_providers:
            run.skip("quantize", "TensorRT builds fp16 itself from the fp32 graph")
        else:
            half(state, run)
        return
    if precision != "int8" or state.profile.runtime != "onnxruntime":
        run.skip("quantize", f"{state.profile.name} builds {precision} in its compile step")
        return
    with run.stage("quantize") as summary:
        recipe = build_recipe(state)
        names = state.loaded.family.input_names
        # Dynamic int8 gains QAttention on the fused graph; static QDQ needs the unfused
        # one, where every MatMul's activations can be given calibrated ranges.
        source = (
            state.fused_path if recipe.kind == "dynamic" and state.fused_path else (state.onnx_path)
        )
        samples = recipe.samples if isinstance(recipe, StaticInt8) else 32
        calibration = calibration_set(state, samples)
        summary |= {
            "recipe": recipe.kind,
            "source": str(source),
            "calibration": {
                "samples": calibration.samples,
                "sha256": calibration.sha256,
                "source": calibration.source,
            },
        }
        if state.config.guard and not state.loaded.perf_only:
            report = run_guard(state, run, recipe, source, calibration)
            built = report.final
            summary["guard"] = report.to_dict()
            state.result["guard"] = report.to_dict()
        else:
            if state.loaded.perf_only:
                log.info("performance-only run: no accuracy to guard")
            built = quantize_graph(source, recipe, calibration=calibration, input_names=names)
        state.model_path = built.path
        summary |= {
            "path": str(built.path),
            "cached": built.cached,
            "quantized_nodes": built.quantized_nodes,
        }
        state.result["quantization"] = {k: v for k, v in summary.items() if k != "guard"}
        run.emit(
            ArtifactWritten(
                "quantize",
                "onnx-int8",
                str(built.path),
                "",
                built.path.stat().st_size,
                {"recipe": built.recipe, "calibration_sha256": built.calibration_sha256},
            )
        )


def half(state: RunState, run: StageRunner) -> None:
    """fp16 for ONNX Runtime: the fused graph on GPU providers (fused Attention has fp16
    kernels there), the unfused one elsewhere; LayerNorm and Softmax stay fp32."""
    from kiln_lab.core.quantize import FP16_BLOCK_LIST, to_float16

    with run.stage("quantize") as summary:
        gpu = any(p != "CPUExecutionProvider" for p in state.profile.execution_providers)
        source = state.fused_path if gpu and state.fused_path else state.onnx_path
        block = tuple(dict.fromkeys((*FP16_BLOCK_LIST, *state.profile.keep_float.op_types)))
        path = to_float16(source, op_block_list=block)
        state.model_path = path
        summary |= {
            "recipe": "fp16",
            "source": str(source),
            "kept_fp32": list(block),
            "path": str(path),
        }
        state.result["quantization"] = dict(summary)
        run.emit(
            ArtifactWritten(
                "quantize",
                "onnx-fp16",
                str(path),
                "",
                path.stat().st_size,
                {"kept_fp32": list(block)},
            )
        )


def run_guard(
    state: RunState, run: StageRunner, recipe: Any, source: Path, calibration: Any
) -> Any:
    from kiln_lab.core.evaluate import evaluate
    from kiln_lab.core.export import write_atomically
    from kiln_lab.core.guard import guard_int8
    from kiln_lab.core.paths import artifacts_dir
    from kiln_lab.core.runtimes import OnnxRuntimeModel

    cfg = state.config
    split = state.dataset.split("dev") if "dev" in state.dataset.splits else state.split
    examples = split.examples[: cfg.guard_samples]
    batches = state.encoder.encode_all(examples, state.batch_size)
    metric_name = state.card.primary_metric
    log.info(
        "accuracy guard on %s/%s (%d examples), budget %.2f %s",
        state.dataset.name,
        split.name,
        len(examples),
        cfg.accuracy_budget,
        cfg.budget_mode,
    )

    def score(path: Path) -> tuple[float, float]:
        model = OnnxRuntimeModel(path, intra_op_threads=state.profile.defaults.intra_op_threads)
        result = evaluate(
            model,
            batches,
            examples,
            task=state.card.task,
            labels=state.card.labels,
            emit=lambda e: None,
            cancelled=run.cancelled,
        )
        return float(result.accuracy[metric_name]), float(result.throughput["samples_per_s"])

    def on_step(step: Any) -> None:
        run.emit(
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
        float_path=state.onnx_path,
        quant_source=source,
        recipe=recipe,
        calibration=calibration if recipe.kind == "static" else None,
        probe_batches=calibration.batches[:4],
        input_names=state.loaded.family.input_names,
        score=score,
        metric_name=metric_name,
        budget=cfg.accuracy_budget,
        budget_mode=cfg.budget_mode,
        cancelled=run.cancelled,
        on_step=on_step,
    )
    if report.repaired:
        out = artifacts_dir(state.run_id)
        kept = list(report.steps[-1].kept_in_float)
        write_atomically(
            out / "keep_float.yaml",
            yaml.safe_dump({"keep_float": {"nodes": kept, "op_types": []}}, sort_keys=False),
        )
        write_atomically(
            out / "int8-overrides.json",
            json.dumps(
                {
                    "model": state.card.name,
                    "profile": state.profile.name,
                    "recipe": recipe.kind,
                    "nodes_to_exclude": kept,
                    "guard": report.to_dict(),
                },
                indent=2,
            ),
        )
        for name in ("keep_float.yaml", "int8-overrides.json"):
            run.emit(
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
