"""One Ctrl-C stops `make test`, even while a test trains in the test process (issue 33)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

INNER = '''
import time
from pathlib import Path

def test_trains_until_ctrl_c():
    from aakit.engine.hooks import SignalHook

    hook = SignalHook()  # what a training in the test process installs
    hook.before_train()
    Path({started!r}).touch()
    while hook.signal is None:
        time.sleep(0.01)
    hook.after_train()  # the run stops "gracefully", as a trainer does

def test_after():
    Path({after!r}).touch()
'''


def test_one_ctrl_c_stops_the_suite_during_an_in_process_training(tmp_path: Path) -> None:
    started, after = tmp_path / "started", tmp_path / "after"
    (tmp_path / "test_inner.py").write_text(INNER.format(started=str(started), after=str(after)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                             "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(6000):  # wait for the "training" to start (a guard against hanging, not a timing)
            if started.exists() or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert started.exists(), proc.communicate()[0]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 2, out  # pytest's code for an interrupted session
    assert "KeyboardInterrupt" in out
    assert not after.exists(), "the suite went on to the next test after Ctrl-C"
