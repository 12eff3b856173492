"""The TUI's data layer: what the screens show, read from run directories, grids and studies.

Nothing in this package imports Textual, and nothing here talks to the engine: everything is
read from files (``aakit.runs`` defines the run-directory format, :mod:`aakit.experiment.gridstate`
reads ``grid.json`` and :mod:`aakit.experiment.studystate` the Optuna journals, for the TUI and
the report alike). The app calls :meth:`~aakit.tui.model.poll.ResultsModel.poll` in a worker
thread and hands the returned, immutable :class:`~aakit.tui.model.poll.Snapshot` to the UI
thread; tests call the same functions directly. One module a job:

* :mod:`~aakit.tui.model.rows` - the records the screens draw (:class:`RunRow`, :class:`RunDetail`), loss names;
* :mod:`~aakit.tui.model.curves` - downsampling, the EMA smoothing, the ETA;
* :mod:`~aakit.tui.model.configdiff` - the config keys that differ between runs;
* :mod:`~aakit.tui.model.listing` - filter, sort, the best run;
* :mod:`~aakit.tui.model.fmt` - numbers, durations and progress as text;
* :mod:`~aakit.tui.model.tracker` - one run directory followed incrementally;
* :mod:`~aakit.tui.model.grids` - the grids, refined by their runs' live status;
* :mod:`~aakit.tui.model.load` - the host's GPU (NVML) or CPU load;
* :mod:`~aakit.tui.model.poll` - the snapshot and the model that polls the whole directory.
"""
