"""The tracker registry: each ``logging.backends`` name beyond ``jsonl`` and its writer class.

A tracker is one :class:`aakit.engine.trackers.base.TrackerWriter` in a file of its own under
``aakit/engine/trackers/`` and one entry here (``name: "module:Class"``); the config's
``logging.backends`` accepts the names listed here (:data:`BACKENDS`), and
:mod:`aakit.engine.tracking` imports a writer only when a run asks for it. This module imports
nothing, so the config (and the TUI, which reads configs without the engine) can read it.
"""
from __future__ import annotations

#: name -> its writer class, in the order the writers run: those that may refuse to start (no
#: login, no server) before TensorBoard opens an event file
TRACKERS: dict[str, str] = {
    "wandb": "aakit.engine.trackers.wandb:WandbWriter",
    "mlflow": "aakit.engine.trackers.mlflow:MlflowWriter",
    "tensorboard": "aakit.engine.trackers.tensorboard:TensorBoardWriter",
}

#: what ``logging.backends`` accepts: ``jsonl`` (metrics.jsonl, always written) and every tracker
BACKENDS: tuple[str, ...] = ("jsonl", *TRACKERS)
