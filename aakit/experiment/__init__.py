"""The experiment manager: the paper's tables as grids, searches, and the report.

* :mod:`~aakit.experiment.published` — the paper's numbers (``results/published.csv``);
* :mod:`~aakit.experiment.grid` — ablation grids (``aakit grid``), resumable, shared through
  an Optuna study;
* :mod:`~aakit.experiment.search` — Optuna searches (``aakit search``);
* :mod:`~aakit.experiment.report` — Tables 1-6 from the stored runs (``aakit report``), with
  :mod:`~aakit.experiment.claims` (the paper's claims tested) and :mod:`~aakit.experiment.costs`
  (what each grid cost);
* :mod:`~aakit.experiment.figures` — PNG figures (``aakit report --figures``);
* :mod:`~aakit.experiment.results` — the runs and grid points read once, for all of the above;
  :mod:`~aakit.experiment.tables` — their cells and the four formats;
  :mod:`~aakit.experiment.gridstate` — the one reader of ``grid.json`` (report and TUI);
* :mod:`~aakit.experiment.lifecycle` — the one lifecycle of a grid point or search trial: claim,
  heartbeat, train, finish, recovery after a killed worker;
* :mod:`~aakit.experiment.studies` — storages and the liveness of trials;
* :mod:`~aakit.experiment.workers` — worker processes pinned to GPUs or the CPU.

Nothing here imports torch at module level: the engine is imported only when a run starts.
"""
