"""The rows of a report's tables, one function per table (rendering is in
:mod:`kiln_lab.core.report`): the comparison, the per-type and per-language breakdowns,
the benchmark grid and each run's environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln_lab.core.baseline import baseline_for
from kiln_lab.core.breakdown import interval_text, per_language_rows, per_type_rows
from kiln_lab.core.result import Latency, RunResult
from kiln_lab.core.store import RunRecord


def _metric(result: RunResult) -> tuple[str | None, float | None]:
    headline = result.metrics.headline() if result.metrics is not None else None
    return headline if headline is not None else (None, None)


def comparison_rows(records: Sequence[RunRecord], history: Sequence[RunRecord]) -> list[dict]:
    """The comparison table; baselines come from the selection first, then the history."""
    rows = []
    for record in records:
        result = record.run_result
        name, value = _metric(result)
        base = baseline_for(record, records, history)
        base_result = base.run_result if base is not None else RunResult()
        _, base_value = _metric(base_result)
        speed = result.throughput.samples_per_s if result.throughput else None
        base_speed = base_result.throughput.samples_per_s if base_result.throughput else None
        published = result.published(name)
        calibration = result.quantization.calibration if result.quantization else None
        metrics = result.metrics
        state = evaluation_state(record, result)
        comparable = (
            published is not None
            and published.applies_to(result.dataset, result.split)
            and state == "final"
        )
        paired = (metrics.paired or {}) if metrics is not None else {}
        rows.append(
            {
                "run": record.id,
                "status": record.status,
                "model": record.model,
                "profile": record.profile,
                "precision": record.precision,
                "dataset": _dataset(record, result),
                "metric": name,
                "value": value,
                "interval": interval_text(metrics.interval(name)) if metrics and name else "",
                "evaluation": state,
                "fp32_run": base.id if base else None,
                "delta_vs_fp32": value - base_value
                if value is not None and base_value is not None
                else None,
                "paired_delta": paired.get("difference"),
                "paired_interval": _signed_interval(paired.get("interval")),
                "published": published.value if published else None,
                "published_on": (published.dataset or "its source's own split")
                if published
                else None,
                "delta_vs_published": value - published.value
                if comparable and published and published.value is not None and value is not None
                else None,
                "samples_per_s": speed,
                "latency_p99_ms": result.latency.p99_ms if result.latency else None,
                "speedup_vs_fp32": speed / base_speed if speed and base_speed else None,
                "percent_of_peak": result.throughput.percent_of_peak if result.throughput else None,
                "calibration_sha256": calibration.sha256 if calibration else None,
            }
        )
    return rows


def _dataset(record: RunRecord, result: RunResult) -> str | None:
    """The data a row was measured on: ``dataset/split`` once the run named it."""
    if result.dataset:
        return f"{result.dataset}/{result.split}" if result.split else str(result.dataset)
    return record.dataset


def _signed_interval(interval: Any) -> str:
    if not isinstance(interval, dict) or interval.get("low") is None:
        return ""
    return f"[{interval['low']:+.4f}, {interval['high']:+.4f}]"


def evaluation_state(record: RunRecord, result: RunResult) -> str:
    """``final`` only for an evaluation that scored the whole split; else ``limited``
    (``--limit``), ``stopped`` (``--until``), ``partial`` (cancelled or failed), or ``—``
    for a run that scored nothing."""
    metrics = result.metrics
    if metrics is None or not result.scored:
        return "—"
    if metrics.early_stop:
        return "stopped"
    if metrics.complete is False or record.status != "succeeded":
        return "partial"
    if (record.config or {}).get("limit"):
        return "limited"
    return "final"


def breakdown_rows(records: Sequence[RunRecord]) -> dict[str, list[dict]]:
    """Per-type (NER) and per-language (sentence pairs) rows of every run that has them."""
    types, languages = [], []
    for record in records:
        result = record.run_result
        if result.metrics is None:
            continue
        for row in per_type_rows(result.metrics):
            types.append({"run": record.id, "dataset": _dataset(record, result)} | row)
        figure = result.published("accuracy")
        comparable = bool(figure and figure.applies_to(result.dataset, result.split))
        for row in per_language_rows(result.metrics, result.references, comparable=comparable):
            languages.append({"run": record.id, "dataset": _dataset(record, result)} | row)
    return {"per_type": types, "per_language": languages}


def grid_rows(records: Sequence[RunRecord]) -> list[dict]:
    rows = []
    for record in records:
        for cell in record.run_result.benchmark_cells:
            latency = cell.latency or Latency()
            rows.append(
                {
                    "run": record.id,
                    "precision": record.precision,
                    "batch_size": cell.batch_size,
                    "seq_len": cell.seq_len,
                    "samples_per_s": cell.samples_per_s,
                    "spread_pct": cell.spread_pct,
                    "latency_p50_ms": latency.p50_ms,
                    "latency_p99_ms": latency.p99_ms,
                    "percent_of_peak": cell.percent_of_peak,
                }
            )
    return rows


def environments(records: Sequence[RunRecord]) -> dict[str, Any]:
    out = {}
    for record in records:
        result = record.run_result
        calibration = result.quantization.calibration if result.quantization else None
        out[record.id] = {
            "environment": result.environment,
            "runtime": result.runtime,
            "runtime_settings": result.runtime_settings,
            "profile": record.profile,
            "data_hash": result.data_hash,
            "calibration": calibration.to_dict() if calibration else None,
            "config": record.config,
        }
    return out


def environment_rows(env: dict[str, Any]) -> list[dict]:
    """Each run's environment as one table row (not a raw dict dump)."""
    rows = []
    for run_id, info in env.items():
        e = info.get("environment") or {}
        cpu = e.get("cpu") or {}
        settings = info.get("runtime_settings") or {}
        calibration = (info.get("calibration") or {}).get("sha256")
        rows.append(
            {
                "run": run_id,
                "runtime": info.get("runtime"),
                "settings": ", ".join(f"{k} {v}" for k, v in settings.items()),
                "cpu": " ".join(filter(None, [cpu.get("model"), *(cpu.get("flags") or [])])),
                "cores": cpu.get("usable_cores"),
                "python": e.get("python"),
                "packages": ", ".join(
                    f"{k} {v}" for k, v in (e.get("packages") or {}).items() if v
                ),
                "data_hash": str(info.get("data_hash"))[:16] if info.get("data_hash") else None,
                "calibration": calibration[:16] if calibration else None,
            }
        )
    return rows
