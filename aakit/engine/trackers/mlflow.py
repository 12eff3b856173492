"""``mlflow``: MLflow, through an explicit client (no process-wide active run, so a grid worker's
runs never mix). It talks to ``MLFLOW_TRACKING_URI`` (a server, a database) or, without it, to
a file store in the run directory's ``mlruns/`` (``mlflow ui --backend-store-uri RUN/mlruns``);
the experiment is ``MLFLOW_EXPERIMENT_NAME`` (default ``aakit``). The MLflow run carries the run
directory's name as its name and as the tag ``aakit.run``, so a resumed run continues it; the
resolved config is flattened to params (``model.backbone``...) with ``config_hash``. Without the
package (the ``mlflow`` extra) a run is refused before it starts."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aakit.engine.trackers.base import TrackerWriter, final_metrics
from aakit.runlist import flatten

if TYPE_CHECKING:
    from aakit.engine.trainer import Trainer


def flat_params(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys, values as text (MLflow keeps 6000 chars)."""
    return {key: str(value)[:6000] for key, value in flatten(data, prefix).items()}


class MlflowWriter(TrackerWriter):
    """An MLflow run: the scalars, the config as params, the final metrics, the end status."""

    package, extra = "mlflow", "mlflow"
    client: Any = None
    run_id: str | None = None

    def open(self, trainer: Trainer) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # the run directory's file store, which MLflow 3 refuses unless told it is wanted
            uri = (self.run.path / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "aakit"
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
        found = self.client.search_runs([exp_id], filter_string=f"tags.`aakit.run` = '{self.run.path.name}'",
                                        max_results=1)
        if found:  # a resumed run continues its MLflow run
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        params = flat_params(trainer.cfg.to_dict()) | {"config_hash": self.run.run_hash()}
        self.run_id = self.client.create_run(exp_id, run_name=self.run.path.name,
                                             tags={"aakit.run": self.run.path.name}).info.run_id
        self._log(params=params)

    def _log(self, metrics: dict[str, float] | None = None, step: int = 0,
             params: dict[str, str] | None = None) -> None:
        import time

        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        ms = [Metric(k, v, now, step) for k, v in (metrics or {}).items()]
        ps = [Param(k, v) for k, v in (params or {}).items()]
        for i in range(0, max(len(ms), len(ps)), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, metrics=ms[i:i + 100], params=ps[i:i + 100])

    def write(self, scalars: dict[str, float], step: int) -> None:
        self._log(scalars, step=step)

    def close(self, trainer: Trainer, summary: dict[str, Any] | None) -> None:
        """The final metrics (a finished run), then the run's end status."""
        if self.run_id is None:
            return
        if summary is not None:
            self._log(final_metrics(summary), step=trainer.step)
        status = {"finished": "FINISHED", "stopped": "KILLED"}.get(str(trainer.outcome), "FAILED")
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None
