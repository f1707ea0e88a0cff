"""The stage functions, in pipeline order. Each takes the run state and the runner."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from kiln_lab.core.events import ArtifactWritten, MetricSampled, ProgressAdvanced
from kiln_lab.core.pipeline import RunState, StageRunner
from kiln_lab.core.precision import optimize, quantize
from kiln_lab.core.stages.resolve import resolve

log = logging.getLogger(__name__)

PARITY_TOLERANCE_SCALE = {"fp32": 1.0}


def load(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.encode import BatchEncoder, plan_batches
    from kiln_lab.core.models import load_model

    cfg = state.config
    with run.stage("load") as summary:
        weights = Path(cfg.weights) if cfg.weights else None
        state.loaded = loaded = load_model(state.card, weights_dir=weights, perf_only=cfg.perf_only)
        examples = state.split.examples[: cfg.limit] if cfg.limit else state.split.examples
        state.examples = examples
        state.encoder = BatchEncoder(
            tokenizer=loaded.tokenizer,
            task=state.card.task,
            seq_len=state.seq_len,
            pad_token_id=loaded.tokenizer.pad_token_id or 0,
            input_names=loaded.family.input_names,
            padding="fixed" if state.profile.static_shapes else cfg.padding,  # type: ignore[arg-type]
            static_batch=state.batch_size if state.profile.static_shapes else None,
        )
        state.plan = plan_batches(examples, state.batch_size, cfg.padding)  # type: ignore[arg-type]
        if state.profile.static_shapes:
            log.info(
                "profile %s needs static shapes: every batch is padded to %d x %d",
                state.profile.name,
                state.batch_size,
                state.seq_len,
            )
        params = sum(p.numel() for p in loaded.model.parameters())
        summary |= {
            "parameters": params,
            "examples": len(examples),
            "batches": len(state.plan),
            "perf_only": loaded.perf_only,
            "weights_sha256": loaded.weights_sha256,
            "trust_remote_code": state.card.trust_remote_code,
        }
        log.info(
            "loaded %s: %.2fM parameters; %d examples in %d batches of up to %d (%s padding)",
            state.card.name,
            params / 1e6,
            len(examples),
            len(state.plan),
            state.batch_size,
            cfg.padding,
        )


def export(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.builders import export_formats, static_shape
    from kiln_lab.core.export import export_onnx, file_sha256

    formats = export_formats(state.profile)
    if not formats:
        run.skip("export", "the profile runs the PyTorch model directly")
        return
    with run.stage("export") as summary:
        loaded = state.loaded
        if "onnx" in formats:
            path, reused = export_onnx(
                loaded.model,
                input_names=loaded.family.input_names,
                weights_sha256=loaded.weights_sha256,
                static_shape=static_shape(state),
            )
            state.onnx_path = path
            summary |= {"path": str(path), "cached": reused, "size_mb": path.stat().st_size / 1e6}
            run.emit(
                ArtifactWritten(
                    "export",
                    "onnx",
                    str(path),
                    file_sha256(path),
                    path.stat().st_size,
                    {"cached": reused},
                )
            )
        if "torchscript" in formats:
            from kiln_lab.core.torchscript import export_torchscript

            # Only a TorchScript runtime traces at the run's precision; a vendor compiler
            # reads fp32 and lowers it itself.
            own = state.profile.runtime == "torchscript"
            path, reused = export_torchscript(
                loaded.model,
                input_names=loaded.family.input_names,
                weights_sha256=loaded.weights_sha256,
                precision=state.config.precision if own else "fp32",
                static_shape=static_shape(state),
            )
            state.torchscript_path = path
            summary |= {"torchscript": str(path), "torchscript_cached": reused}
            run.emit(
                ArtifactWritten(
                    "export",
                    "torchscript",
                    str(path),
                    file_sha256(path),
                    path.stat().st_size,
                    {"cached": reused},
                )
            )


def compile_model(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.builders import build

    with run.stage("compile") as summary:
        state.compiled = build(state, run)
        settings = state.compiled.settings()
        summary |= {"runtime": state.compiled.description, **settings}
        state.result["runtime_settings"] = settings
        log.info("built %s", state.compiled.description)
        log.info(
            "threads in effect: %s",
            ", ".join(
                f"{k}={v}"
                for k, v in settings.items()
                if "thread" in k or k in ("instances", "processes", "streams", "cpu_affinity")
            ),
        )


def verify(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.parity import PRECISION_SCALE, compare
    from kiln_lab.core.runtimes import TorchModel

    if state.profile.runtime == "torch" and state.config.precision == "fp32":
        run.skip("verify", "the profile runs the fp32 PyTorch reference itself")
        return
    if not getattr(state.compiled, "runs_locally", True):
        run.skip("verify", f"{state.profile.name}'s artifact runs only on its device tool")
        return
    with run.stage("verify") as summary:
        reference = TorchModel(state.loaded.model, state.loaded.family.input_names)
        picked = state.examples[: state.config.parity_samples]
        size = state.batch_size if state.profile.static_shapes else 8
        batches = [b for b, _ in state.encoder.encode_all(picked, size)]
        tolerance = state.loaded.family.parity_atol * PRECISION_SCALE.get(
            state.config.precision, 1.0
        )
        report = compare(
            reference,
            state.compiled,
            batches,
            token_level=state.card.task == "token-classification",
            tolerance=tolerance,
        )
        state.result["parity"] = report.to_dict()
        summary |= report.to_dict()
        level = logging.INFO if report.status == "pass" else logging.WARNING
        log.log(
            level,
            "parity %s on %d samples: max |Δlogit| %.2e (tolerance %.1e), "
            "cosine %.6f, agreement %.4f",
            report.status.upper(),
            report.samples,
            report.max_abs_diff,
            tolerance,
            report.cosine,
            report.agreement,
        )


def evaluate(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.encode import stream_batches
    from kiln_lab.core.evaluate import evaluate as evaluate_batches

    if not state.config.evaluate:
        run.skip("evaluate", "benchmark-only run: no accuracy figures")
        return
    if not getattr(state.compiled, "runs_locally", True):
        run.skip(
            "evaluate",
            f"{state.profile.name}'s artifact runs only on its device tool; "
            "its benchmark figures come from the tool",
        )
        return
    with run.stage("evaluate") as summary:
        completed = {
            int(key.rsplit("/", 1)[1]): value
            for key, value in run.checkpoints.load("evaluate/").items()
        }
        remaining = [n for n in range(len(state.plan)) if n not in completed]
        if completed:
            log.info(
                "resuming: %d of %d batches were evaluated before the interruption; "
                "their predictions are kept",
                len(completed),
                len(state.plan),
            )
            summary["resumed_batches"] = len(completed)
        result = evaluate_batches(
            state.compiled,
            stream_batches(state.encoder, state.examples, [state.plan[n] for n in remaining]),
            state.examples,
            task=state.card.task,
            labels=state.card.labels,
            emit=run.emit,
            cancelled=run.cancelled,
            score=not state.loaded.perf_only,
            numbers=remaining,
            completed=completed,
            checkpoint=lambda items: run.checkpoints.save(
                {f"evaluate/{n:06d}": v for n, v in items.items()}
            ),
        )
        if result.truncated:
            log.warning(
                "%d of %d examples were longer than %d tokens and were truncated; their tails "
                "count as predicted O / are not seen by the model",
                result.truncated,
                len(state.examples),
                state.seq_len,
            )
        thr = result.throughput
        state.result |= {
            "metrics": result.accuracy,
            "throughput": thr,
            "latency": result.latency,
            "resources": result.resources,
            "truncated": result.truncated,
        }
        summary |= {
            "metrics": result.accuracy,
            "throughput": result.throughput,
            "latency": result.latency,
            "truncated": result.truncated,
        }
        if result.accuracy:
            shown = {k: round(v, 4) for k, v in result.accuracy.items() if isinstance(v, float)}
            log.info("accuracy: %s", shown)
        log.info(
            "throughput %.1f samples/s (%.0f tokens/s, padding waste %.1f%%), batch latency "
            "p50 %.1f ms, p99 %.1f ms",
            result.throughput["samples_per_s"],
            result.throughput["tokens_per_s"],
            100 * result.throughput["padding_waste"],
            result.latency["p50_ms"],
            result.latency["p99_ms"],
        )


def benchmark(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.benchmark import BenchmarkPlan, run_grid
    from kiln_lab.core.roofline import achieved, peak_gflops

    cfg = state.config
    defaults = state.profile.defaults
    if state.profile.runtime == "external" and (
        cfg.bench_batch_sizes or not cfg.evaluate or not state.compiled.runs_locally
    ):
        from kiln_lab.core.builders import benchmark_external

        with run.stage("benchmark") as summary:
            cells = benchmark_external(state, run)
            state.result["benchmark"] = {"cells": cells, "tool": True}
            summary["cells"] = len(cells)
        return
    if not cfg.bench_batch_sizes:
        run.skip(
            "benchmark",
            "no benchmark grid requested (kiln bench, or --batch-sizes and "
            "--seq-lens); speed figures come from the evaluation pass",
        )
        return
    with run.stage("benchmark") as summary:
        plan = BenchmarkPlan(
            batch_sizes=tuple(cfg.bench_batch_sizes),
            seq_lens=tuple(cfg.bench_seq_lens or ()),
            warmup=cfg.bench_warmup,
            iterations=cfg.bench_iterations,
            duration_s=cfg.bench_duration_s,
            trials=cfg.bench_trials,
            instances=cfg.instances or defaults.instances,
            processes=cfg.processes or defaults.processes,
        )
        model_config = state.loaded.model.config
        peaks = peak_gflops(state.profile.defaults.intra_op_threads)
        total = len(plan.batch_sizes) * len(plan.seq_lens)
        cells: list[dict[str, Any]] = []

        def on_cell(cell: Any) -> None:
            row = cell.to_dict() | achieved(
                model_config,
                len(state.card.labels),
                cell.samples_per_s,
                cell.seq_len,
                state.config.precision,
                peaks,
            )
            cells.append(row)
            run.emit(ProgressAdvanced("benchmark", len(cells), total, "cells"))
            run.emit(
                MetricSampled(
                    "benchmark",
                    "throughput",
                    {
                        "batch_size": cell.batch_size,
                        "seq_len": cell.seq_len,
                        "samples_per_s": cell.samples_per_s,
                        "spread_pct": cell.spread_pct,
                        **{k: v for k, v in cell.latency.items() if k.endswith("_ms")},
                    },
                )
            )
            if cell.resources:
                # The cell's CPU and memory (GPU with NVML), for the live resource pane.
                run.emit(MetricSampled("benchmark", "resources", _latest_resources(cell.resources)))
            log.info(
                "batch %3d x seq %4d: %8.1f samples/s (trials %s, spread %.1f%%), p50 "
                "%.2f ms, p99 %.2f ms, %.0f%% of peak",
                cell.batch_size,
                cell.seq_len,
                cell.samples_per_s,
                ", ".join(f"{r:.1f}" for r in cell.samples_per_s_trials),
                cell.spread_pct,
                cell.latency["p50_ms"],
                cell.latency["p99_ms"],
                row["percent_of_peak"],
            )

        run_grid(
            _model_factory(state),
            plan,
            input_names=state.loaded.family.input_names,
            vocab_size=int(model_config.vocab_size),
            max_seq_len=state.card.max_seq_len,
            on_cell=on_cell,
            cancelled=run.cancelled,
            process_factory=_process_factory(state, plan),
        )
        state.result["benchmark"] = {
            "plan": {k: v for k, v in vars(plan).items()},
            "cells": cells,
            "peaks": peaks,
        }
        summary |= {"cells": len(cells), "peaks": peaks}


def _latest_resources(summary: dict[str, float]) -> dict[str, float]:
    """A benchmark cell's resource summary in the evaluation's sample form: mean CPU %
    and GPU utilisation, peak memory."""
    keys = {
        "cpu_percent": "cpu_percent_mean",
        "rss_mb": "rss_mb_max",
        "gpu_util_percent": "gpu_util_percent_mean",
        "gpu_mem_mb": "gpu_mem_mb_max",
        "gpu_mem_total_mb": "gpu_mem_total_mb_max",
        "gpu_count": "gpu_count_max",
    }
    return {name: summary[key] for name, key in keys.items() if key in summary}


def _model_factory(state: RunState) -> Any:
    """New sessions for extra instances where the runtime has them; else share one."""
    from kiln_lab.core.runtimes import OnnxRuntimeModel

    compiled = state.compiled
    if isinstance(compiled, OnnxRuntimeModel):
        settings = compiled.settings()
        first = [compiled]

        def make() -> Any:
            if first:
                return first.pop()
            threads = settings.get("intra_op_threads")
            return OnnxRuntimeModel(
                compiled.path,
                providers=getattr(compiled, "provider_specs", compiled.providers),
                intra_op_threads=threads if isinstance(threads, int) else None,
            )

        return make
    return lambda: compiled


def _process_factory(state: RunState, plan: Any) -> Any:
    from kiln_lab.core.runtimes import OnnxRuntimeModel

    if plan.processes <= 1 or not isinstance(state.compiled, OnnxRuntimeModel):
        return None
    from kiln_lab.core.bench_processes import cell_across_processes

    compiled = state.compiled
    return lambda batch, seq_len: cell_across_processes(
        compiled.path,
        compiled.providers,
        plan,
        batch,
        seq_len,
        state.loaded.family.input_names,
        int(state.loaded.model.config.vocab_size),
    )


def report(state: RunState, run: StageRunner) -> None:
    from kiln_lab.core.environment import environment
    from kiln_lab.core.export import file_sha256, write_atomically
    from kiln_lab.core.paths import artifacts_dir

    with run.stage("report") as summary:
        card, cfg = state.card, state.config
        thr = state.result.get("throughput") or {}
        if thr.get("samples_per_s"):
            from kiln_lab.core.roofline import achieved, peak_gflops

            # Measured (once per machine, then cached) outside the evaluate stage's timing.
            padded = thr["tokens_per_s"] / max(1e-9, 1 - thr["padding_waste"])
            thr |= achieved(
                state.loaded.model.config,
                len(card.labels),
                thr["samples_per_s"],
                padded / thr["samples_per_s"],
                cfg.precision,
                peak_gflops(state.profile.defaults.intra_op_threads),
            )
        metrics = state.result.get("metrics") or {}
        references = []
        for figure in card.reference:
            measured = metrics.get(figure.metric)
            references.append(
                {
                    **figure.model_dump(),
                    "measured": measured,
                    "delta": (measured - figure.value) if measured is not None else None,
                }
            )
        state.result |= {
            "run_id": state.run_id,
            "model": card.name,
            "family": card.family,
            "task": card.task,
            "dataset": state.dataset.name,
            "split": state.split.name,
            "data_hash": state.split.content_hash,
            "profile": state.profile.name,
            "runtime": state.compiled.description,
            "runtime_settings": state.compiled.settings(),
            "precision": cfg.precision,
            "perf_only": state.loaded.perf_only,
            "batch_size": state.batch_size,
            "seq_len": state.seq_len,
            "padding": cfg.padding,
            "examples": len(state.examples),
            "reference": references,
            "stages": dict(state.stage_times),
            "environment": environment(),
        }
        out = artifacts_dir(state.run_id) / "report.json"
        write_atomically(out, json.dumps(state.result, indent=2, ensure_ascii=False, default=str))
        summary["path"] = str(out)
        run.emit(
            ArtifactWritten("report", "report", str(out), file_sha256(out), out.stat().st_size)
        )
    state.result["stages"] = dict(state.stage_times)


PIPELINE: tuple[Any, ...] = (
    resolve,
    load,
    export,
    optimize,
    quantize,
    compile_model,
    verify,
    evaluate,
    benchmark,
    report,
)
