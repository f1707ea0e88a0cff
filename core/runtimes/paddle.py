"""Paddle Inference runtime: runs a Paddle inference model (``.pdmodel`` + ``.pdiparams``).

The ``paddle-inference`` profile converts Kiln's ONNX export with X2Paddle and runs the
result here, through the ``paddle.inference`` Predictor API (Config -> create_predictor
-> copy_from_cpu -> run -> copy_to_cpu). Only importable where ``paddlepaddle`` is
installed; the profile's detection says so otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kiln_lab.core.errors import ConfigError, RuntimeFailure
from kiln_lab.core.runtimes.base import (
    Batch,
    BuildRequest,
    Built,
    CompiledModel,
    Runtime,
    cpu_affinity,
)


class PaddleInferenceModel(CompiledModel):
    def __init__(self, path: Path, *, threads: int | None = None, use_mkldnn: bool = True) -> None:
        from paddle import inference

        model_file = Path(path)
        params_file = model_file.with_suffix(".pdiparams")
        if not params_file.exists():
            raise RuntimeFailure(
                f"Paddle model parameters not found next to {model_file.name}",
                path=params_file,
                hint="the compile step must write <name>.pdmodel and <name>.pdiparams",
            )
        config = inference.Config(str(model_file), str(params_file))
        config.disable_gpu()
        if threads:
            config.set_cpu_math_library_num_threads(threads)
        if use_mkldnn:
            config.enable_mkldnn()
        config.disable_glog_info()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as exc:  # noqa: BLE001 - Paddle raises its own errors
            raise RuntimeFailure(
                f"Paddle Inference could not load the model: {str(exc).splitlines()[0][:300]}",
                path=model_file,
            ) from exc
        self.path = model_file
        self._config = config
        self.input_names = tuple(self.predictor.get_input_names())
        self.description = "Paddle Inference (CPU)"

    def run(self, batch: Batch) -> np.ndarray:
        for name in self.input_names:
            handle = self.predictor.get_input_handle(name)
            array = np.ascontiguousarray(batch[name], dtype=np.int64)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        self.predictor.run()
        output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        return np.asarray(output.copy_to_cpu(), dtype=np.float32)

    def settings(self) -> dict[str, Any]:
        return {
            "runtime": "paddle",
            "intra_op_threads": self._config.cpu_math_library_num_threads(),
            "mkldnn": self._config.mkldnn_enabled(),
            "cpu_affinity": cpu_affinity(),
        }


class PaddleRuntime(Runtime):
    """Opens what the ``paddle-inference`` profile's converter wrote; builds nothing."""

    name: ClassVar[str] = "paddle"
    precisions: ClassVar[frozenset[str]] = frozenset({"fp32"})

    def build(self, request: BuildRequest) -> Built:
        raise ConfigError(
            "the paddle runtime opens converted models; a profile builds them with "
            "runtime: external and toolchain.evaluate_with: paddle",
            path=request.profile.profile_path,
        )

    def open(
        self, path: Path, *, threads: int | None = None, input_names: tuple[str, ...] = ()
    ) -> CompiledModel:
        return PaddleInferenceModel(path, threads=threads)
