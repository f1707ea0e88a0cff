"""The accuracy guard: int8 must stay within a budget of fp32, or be repaired.

1. Score the float graph and the int8 graph on the guard set (the dev split).
2. If int8 drops more than the budget, rank the quantised nodes by sensitivity:
   the float graph is run once with every quantisable node's inputs captured (ONNX
   Runtime's ``qdq_loss_debug`` tooling), each input is put through the int8
   rounding the recipe would apply, and the noise-to-signal ratio is the score.
   Outlier activations, which stretch a per-tensor scale, score worst.
3. Re-quantise keeping the worst 1, 2, 4, ... nodes in float until the budget holds
   or nothing is left to exclude. Every step's metric and speed is reported.

When the scorer hands back per-example outcomes, each step is judged by the *paired*
difference from the float graph on the same examples
(:func:`kiln_lab.core.metrics.paired.budget_verdict`): a drop within sampling noise, or
within the budget with confidence, is not chased by keeping layers in float; a drop
over the budget with confidence is; and where the guard set is too small to tell, the
guard says so and how many examples would (the point estimate then decides).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiln_lab.core.metrics.paired import BudgetVerdict, budget_verdict, paired_outcomes
from kiln_lab.core.quantize import (
    QUANTIZABLE_OPS,
    CalibrationSet,
    Int8Recipe,
    QuantizedModel,
    quantize,
    with_exclusions,
)

log = logging.getLogger(__name__)

Scorer = Callable[[Path], tuple[Any, ...]]
"""Scores a graph on the guard set: returns (task metric 0..1, samples per second), and
optionally the per-example outcomes (``core.metrics.outcomes``) as a third item."""


@dataclass(frozen=True)
class GuardStep:
    kept_in_float: tuple[str, ...]
    metric: float
    drop_points: float
    samples_per_s: float
    within_budget: bool
    verdict: dict[str, Any] | None = None
    """The paired verdict against the float graph (``BudgetVerdict.to_dict``), where the
    scorer gave per-example outcomes."""


@dataclass
class GuardReport:
    metric_name: str
    budget_points: float
    float_metric: float
    float_samples_per_s: float
    steps: list[GuardStep] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)
    final: QuantizedModel | None = None

    @property
    def repaired(self) -> bool:
        return len(self.steps) > 1 and self.steps[-1].within_budget

    @property
    def within_budget(self) -> bool:
        return bool(self.steps) and self.steps[-1].within_budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric_name,
            "budget_points": self.budget_points,
            "float_metric": self.float_metric,
            "float_samples_per_s": self.float_samples_per_s,
            "within_budget": self.within_budget,
            "repaired": self.repaired,
            "kept_in_float": list(self.steps[-1].kept_in_float) if self.steps else [],
            "steps": [asdict(s) for s in self.steps],
            "sensitivity": [{"node": n, "noise_ratio": s} for n, s in self.sensitivity[:20]],
        }


def _within(drop: float, points: float, verdict: BudgetVerdict | None) -> bool:
    """Whether a step keeps the budget: by the paired verdict where there is one (noise
    is not chased; a confident excess is), else by the point estimate."""
    if verdict is None or verdict.verdict == "undecided":
        return drop <= points + 1e-9
    return verdict.verdict in ("within-budget", "within-noise")


def budget_in_points(budget: float, mode: str, float_metric: float) -> float:
    """The budget as points of the metric on a 0-100 scale."""
    return budget if mode == "absolute" else budget / 100.0 * float_metric * 100.0


def _fake_quant(x: np.ndarray, *, symmetric: bool, axis: int | None = None) -> np.ndarray:
    """int8 quantise-dequantise, per tensor or per ``axis`` channel, as ORT would."""
    x = x.astype(np.float32)
    if axis is None:
        lo, hi = float(min(x.min(), 0.0)), float(max(x.max(), 0.0))
    else:
        reduce = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        lo = np.minimum(x.min(axis=reduce, keepdims=True), 0.0)
        hi = np.maximum(x.max(axis=reduce, keepdims=True), 0.0)
    if symmetric:
        bound = np.maximum(np.abs(lo), np.abs(hi))
        scale = np.maximum(bound / 127.0, 1e-12)
        return np.clip(np.round(x / scale), -127, 127) * scale
    scale = np.maximum((hi - lo) / 255.0, 1e-12)
    zero = np.round(-lo / scale)
    return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale


def _noise_ratio(x: np.ndarray, xq: np.ndarray) -> float:
    signal = float(np.mean(np.square(x.astype(np.float64))))
    noise = float(np.mean(np.square((x - xq).astype(np.float64))))
    return noise / max(signal, 1e-30)


def _capture_inputs(
    model: Any,
    nodes: Sequence[Any],
    batches: Sequence[dict[str, np.ndarray]],
    input_names: Sequence[str],
    skip: set[str],
) -> dict[str, list[np.ndarray]]:
    """Run the float graph once per batch with the nodes' inputs exposed as outputs."""
    import onnx
    import onnxruntime as ort

    wanted = list(
        dict.fromkeys(
            name for node in nodes for name in node.input[:2] if name and name not in skip
        )
    )
    existing = {o.name for o in model.graph.output}
    for name in wanted:
        if name not in existing:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    captured: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    for batch in batches:
        outputs = session.run(wanted, {k: batch[k] for k in input_names})
        for name, value in zip(wanted, outputs, strict=True):
            captured[name].append(value)
    return captured


def _operand(
    name: str, activations: dict[str, list[np.ndarray]], weights: dict[str, Any]
) -> np.ndarray | None:
    """A node input as one array: an initializer, or captured batches stacked."""
    from onnx import numpy_helper

    if name in weights:
        return numpy_helper.to_array(weights[name]).astype(np.float32)
    captured = activations.get(name)
    return captured[0].astype(np.float32) if captured else None


def sensitivity(
    float_path: Path,
    batches: Sequence[dict[str, np.ndarray]],
    input_names: Sequence[str],
    *,
    per_channel: bool,
) -> list[tuple[str, float]]:
    """Quantisable nodes ranked by simulated int8 error of their outputs, worst first.

    Each node's output is recomputed from its captured float inputs, once exactly and
    once with both operands put through int8 rounding; the noise-to-signal ratio of
    the difference is the score. Measuring at the output (not the input) matters: an
    outlier channel that the weights ignore still ruins the scale of every other one.
    """
    import onnx

    model = onnx.load(str(float_path))
    weights = {init.name: init for init in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in QUANTIZABLE_OPS and n.name]
    activations = _capture_inputs(model, nodes, batches, input_names, set(weights))
    scores = []
    for node in nodes:
        a = _operand(node.input[0], activations, weights)
        b = _operand(node.input[1], activations, weights) if len(node.input) > 1 else None
        if a is None or b is None:
            continue
        a_is_weight = node.input[0] in weights
        b_is_weight = node.input[1] in weights
        exact = np.matmul(a, b)
        rounded = np.matmul(
            _fake_quant(a, symmetric=a_is_weight, axis=-1 if per_channel and a_is_weight else None),
            _fake_quant(b, symmetric=b_is_weight, axis=-1 if per_channel and b_is_weight else None),
        )
        scores.append((node.name, _noise_ratio(exact, rounded)))
    scores.sort(key=lambda item: item[1], reverse=True)
    return scores


def guard_int8(
    *,
    float_path: Path,
    quant_source: Path,
    recipe: Int8Recipe,
    calibration: CalibrationSet | None,
    probe_batches: Sequence[dict[str, np.ndarray]],
    input_names: Sequence[str],
    score: Scorer,
    metric_name: str,
    budget: float,
    budget_mode: str = "absolute",
    cancelled: Callable[[], bool] = lambda: False,
    on_step: Callable[[GuardStep], None] = lambda step: None,
) -> GuardReport:
    """Quantise ``quant_source`` within ``budget`` of ``float_path`` on the guard set."""
    float_metric, float_speed, *rest = score(float_path)
    float_outcomes = rest[0] if rest else None
    points = budget_in_points(budget, budget_mode, float_metric)
    report = GuardReport(metric_name, points, float_metric, float_speed)
    log.info(
        "guard: fp32 %s %.4f on the guard set; budget %.2f points",
        metric_name,
        float_metric,
        points,
    )

    def attempt(current: Int8Recipe, kept: tuple[str, ...]) -> GuardStep:
        built = quantize(quant_source, current, calibration=calibration, input_names=input_names)
        metric, speed, *rest = score(built.path)
        drop = (float_metric - metric) * 100.0
        verdict = None
        if float_outcomes is not None and rest and rest[0] is not None:
            verdict = budget_verdict(paired_outcomes(float_outcomes, rest[0]), points)
            log.info("guard: %s", verdict.sentence())
        step = GuardStep(
            kept,
            metric,
            drop,
            speed,
            _within(drop, points, verdict),
            verdict.to_dict() | {"summary": verdict.sentence()} if verdict is not None else None,
        )
        report.steps.append(step)
        report.final = built
        log.info(
            "guard step: %d node(s) kept in float -> %s %.4f (drop %.2f points, %s), "
            "%.1f samples/s",
            len(kept),
            metric_name,
            metric,
            drop,
            "within budget" if step.within_budget else "over budget",
            speed,
        )
        on_step(step)
        return step

    step = attempt(recipe, recipe.nodes_to_exclude)
    if step.within_budget:
        return report
    started = time.perf_counter()
    report.sensitivity = sensitivity(
        quant_source,
        probe_batches,
        input_names,
        per_channel=recipe.per_channel,
    )
    log.info(
        "guard: ranked %d nodes by int8 sensitivity in %.1fs; worst: %s",
        len(report.sensitivity),
        time.perf_counter() - started,
        ", ".join(f"{n} ({s:.2e})" for n, s in report.sensitivity[:3]),
    )
    ranked = [name for name, _ in report.sensitivity]
    count = 1
    while not step.within_budget and not cancelled():
        kept = tuple(ranked[:count])
        step = attempt(with_exclusions(recipe, kept), kept)
        if count >= len(ranked):
            break
        count = min(count * 2, len(ranked))
    if not step.within_budget:
        log.warning(
            "guard: %s still %.2f points below fp32 with every candidate node in float",
            metric_name,
            step.drop_points,
        )
    return report
