"""The run's stages, one module each, and their order: the one place it is written.

Every viewer (the app's timeline, ``kiln show``, the report) reads :data:`STAGES`
from here; :mod:`kiln_lab.core.pipeline` runs the stage modules in this order.
Importing this package is cheap: stage modules import their heavy libraries lazily.
"""

from __future__ import annotations

from types import MappingProxyType

DESCRIPTIONS = MappingProxyType(
    {
        "resolve": "Checking the model card, profile, precision and dataset before any work.",
        "load": "Loading the fp32 reference model and tokenising the dataset.",
        "export": "Exporting the model to a portable graph the target runtime can compile.",
        "optimize": "Fusing graph operations so the runtime can use faster kernels.",
        "quantize": "Converting weights to the chosen precision, calibrated on training samples.",
        "compile": "Building the runtime session for the target.",
        "verify": "Comparing the built model's logits with the PyTorch fp32 reference.",
        "evaluate": "Scoring the test split with the built model, live.",
        "benchmark": "Measuring throughput and latency on fixed shapes.",
        "report": "Writing the run's summary and artifacts.",
    }
)

STAGES: tuple[str, ...] = tuple(DESCRIPTIONS)
"""Stage names in pipeline order."""
