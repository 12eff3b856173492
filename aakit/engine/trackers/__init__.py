"""The tracking back-ends' writers, one file each (:mod:`aakit.trackers` lists them;
:mod:`aakit.engine.tracking` owns the hook that calls them)."""
