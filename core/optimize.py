"""Graph optimisation: ONNX Runtime's transformer fusion, cached like every artifact.

Fusion (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu) did not
speed up fp32 on these CPUs by itself, but it is what lets dynamic int8 use
QAttention (DESIGN.md), so profiles ask for it per target. The fused-op counts are
logged: a graph that did not fuse is the first thing to check when int8 is slow.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from core.errors import ExportError
from core.export import cache_key, file_sha256
from core.paths import cache_dir

log = logging.getLogger(__name__)

OPTIMIZE_VERSION = 1
FUSED_OPS = (
    "EmbedLayerNormalization",
    "Attention",
    "SkipLayerNormalization",
    "BiasGelu",
    "Gelu",
    "FastGelu",
    "LayerNormalization",
)


def fuse_transformer(
    onnx_path: Path, *, num_heads: int, hidden_size: int
) -> tuple[Path, dict[str, int], bool]:
    """Fuse a BERT-family graph; returns ``(path, fused op counts, reused_from_cache)``."""
    import onnxruntime

    key = cache_key(
        kind="ort-fusion",
        version=OPTIMIZE_VERSION,
        source=file_sha256(onnx_path),
        heads=num_heads,
        hidden=hidden_size,
        ort=onnxruntime.__version__,
    )
    target = cache_dir("artifacts", key)
    path, meta_path = target / "model.onnx", target / "meta.json"
    if path.exists() and meta_path.exists():
        counts = json.loads(meta_path.read_text())["fused"]
        log.info("reusing cached fused graph %s", path)
        return path, counts, True
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    # A 2D 0/1 mask as the graph gets it from the tokenizer (what exporters emit).
    tmp = Path(tempfile.mkdtemp(prefix=".fuse-", dir=target.parent))
    try:
        model = optimizer.optimize_model(
            str(onnx_path),
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            optimization_options=options,
            opt_level=0,
        )
        stats = model.get_fused_operator_statistics()
        counts = {op: int(stats.get(op, 0)) for op in FUSED_OPS if stats.get(op)}
        model.save_model_to_file(str(tmp / "model.onnx"))
        (tmp / "meta.json").write_text(json.dumps({"key": key, "fused": counts}, indent=2))
        os.replace(tmp / "model.onnx", path)
        os.replace(tmp / "meta.json", meta_path)
    except Exception as exc:
        raise ExportError(
            f"graph fusion failed: {str(exc).splitlines()[0][:300]}",
            path=onnx_path,
            hint="set `optimize: {fusion: false}` in the profile to run the unfused graph",
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "fused graph: %s", ", ".join(f"{op} x{n}" for op, n in counts.items()) or "nothing fused"
    )
    return path, counts, False


def model_shape(model: Any) -> tuple[int, int]:
    """(num_heads, hidden_size) of a transformers model, for the fusion passes."""
    return int(model.config.num_attention_heads), int(model.config.hidden_size)
