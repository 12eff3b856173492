"""A search trial whose configuration was already trained, or is being trained right now.

Two trials may draw the same configuration (the same config hash): a small categorical space, a
sampler that converges, or (before each trial had a seed of its own) two processes whose samplers
had the same seed. A configuration is trained once. Before a trial trains, :func:`settle` looks
at the other trials and runs of its config hash (a trial's is the end of its ``run`` attribute):

* a **finished run** of that hash (a ``summary.json`` that says finished, from any trial, grid or
  ``aakit train``), or a COMPLETE trial of it: the trial is COMPLETE with that result, at once,
  untrained (``outcome = "reused"``, ``reused_from`` = the trial it came from; ``run`` names the
  run that holds the result). It counts toward ``--trials`` like any COMPLETE trial;
* a **live RUNNING trial training it** (another process's claim): the trial waits for it, under
  its own heartbeat (it counts as running, and a kill is noticed as usual), marked
  ``waiting_for`` = that trial's number, then takes its result as above, or is PRUNED if that
  trial was pruned (the same run, the same verdict). If that trial fails or its worker dies
  instead, the waiting trial trains the config itself;
* else it trains.

The decision is taken under the lock beside a journal file (the one that guards the trial
budget), together with recording the trial's own run, so that of two trials of one config the
first to decide trains and the second waits. A waiting trial never waits for a trial that is
itself waiting, except for one with a lower number (which then trains it): no two trials can wait
for each other. On a database storage, without that lock, two trials drawing the same
configuration in the same instant may both train it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from optuna.trial import FrozenTrial, TrialState

from aakit.experiment import studies
from aakit.experiment.grid import find_finished_run
from aakit.experiment.lifecycle import Claim, Lifecycle, Say, metric_value
from aakit.files import read_json

REUSED = "reused"  # the outcome of a trial that took another's result


@dataclass(frozen=True)
class Twin:
    """What a trial does about the other trials and runs of its config."""

    action: Literal["reuse", "wait", "pruned", "train"]
    run: str | None = None  # reuse: the run that holds the result
    value: float | None = None  # reuse: the result
    trial: int | None = None  # wait: the trial training it; reuse, pruned: the trial it came from


def config_hash(trial: FrozenTrial) -> str | None:
    """The config hash of a trial: the end of its ``run`` attribute (``<name>-<hash>``)."""
    run = trial.user_attrs.get("run")
    return run.rsplit("-", 1)[-1] if isinstance(run, str) and "-" in run else None


def _finished(lc: Lifecycle, others: list[FrozenTrial], chash: str, metric: str) -> Twin | None:
    """A finished run of the config (its value of ``metric``), else a COMPLETE trial of it."""
    run = find_finished_run(lc.spec.results, chash)
    summary = read_json(run / "summary.json") if run is not None else None
    value = metric_value(summary, metric) if isinstance(summary, dict) else None
    if run is not None and value is not None:
        source = next((t.number for t in others if t.user_attrs.get("run") == run.name
                       and t.user_attrs.get("outcome") != REUSED), None)
        return Twin("reuse", run.name, value, source)
    done = [t for t in others if t.state == TrialState.COMPLETE and t.value is not None]
    if done:
        return Twin("reuse", str(done[0].user_attrs.get("run")), float(done[0].value), done[0].number)  # type: ignore[arg-type]
    return None


def _twin(lc: Lifecycle, trials: list[FrozenTrial], claim: Claim, chash: str, metric: str) -> Twin:
    """Reuse a finished result; wait for a live trial training the config; else train."""
    others = [t for t in trials if t._trial_id != claim.trial_id and config_hash(t) == chash]
    found = _finished(lc, others, chash, metric)
    if found is not None:
        return found
    live = sorted((t for t in others if lc.is_live(t)), key=lambda t: t.number)
    trainer = next((t for t in live if t.user_attrs.get("waiting_for") is None), None)
    if trainer is None:  # only waiters: the lowest-numbered one trains it
        trainer = next((t for t in live if t.number < claim.number), None)
    return Twin("wait", trial=trainer.number) if trainer is not None else Twin("train")


def decide(lc: Lifecycle, claim: Claim, chash: str, metric: str, *, run: str | None = None,
           awaited: int | None = None) -> Twin:
    """Under the budget lock: what this trial does (see the module docstring).

    Args:
        run: first call: the trial's run directory name, recorded in the same hold of the lock.
        awaited: the trial waited for until now (its PRUNED end prunes this one too).
    """
    with lc.budget_lock():
        if run is not None:
            lc.set_run(claim, run)
        trials = lc.trials()
        was = next((t for t in trials if t.number == awaited), None)
        if was is not None and was.state == TrialState.PRUNED:
            twin = Twin("pruned", trial=awaited)
        else:
            twin = _twin(lc, trials, claim, chash, metric)
        waiting = twin.trial if twin.action == "wait" else None
        if waiting != awaited:
            lc.storage.set_trial_user_attr(claim.trial_id, "waiting_for", waiting)
    return twin


def wait(lc: Lifecycle, claim: Claim, chash: str, metric: str, twin: Twin, say: Say) -> Twin:
    """Wait, under a heartbeat, while another trial trains the config; then what to do."""
    say(f"trial {claim.number}: the same config is being trained by trial {twin.trial}: waiting for its result")
    poll = min(lc.spec.heartbeat, 5.0)
    try:
        with studies.Heartbeat(lc.storage, claim.trial_id, lc.spec.heartbeat):
            while twin.action == "wait":
                time.sleep(poll)
                twin = decide(lc, claim, chash, metric, awaited=twin.trial)
    except (KeyboardInterrupt, SystemExit):
        lc.fail(claim, "interrupted")
        raise
    return twin


def settle(lc: Lifecycle, claim: Claim, run: str, metric: str, say: Say) -> Twin:
    """Before a trial trains ``run`` (``<name>-<config hash>``): reuse, wait, or train (the
    returned action is ``reuse``, ``pruned`` or ``train``)."""
    chash = run.rsplit("-", 1)[-1]
    twin = decide(lc, claim, chash, metric, run=run)
    return wait(lc, claim, chash, metric, twin, say) if twin.action == "wait" else twin
