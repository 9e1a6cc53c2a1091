"""The stage engine: a command stopped by a signal ends its running stage too (no orphaned training)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO

from kd_components.tools import stages

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


SCRIPTS = {
    # the demo: stages one after the other in the main thread
    "main thread": """
        with stop_on_signals():
            for stage in (sleeper, after):
                stage.run(False)
        """,
    # the ablation: stages in worker threads (the signal reaches the main thread only)
    "worker threads": """
        from kd_components.tools.ablation import _run_pool
        with stop_on_signals():
            _run_pool([[sleeper], [after]], 1, Path(log_dir), False)
        """,
}


@pytest.mark.parametrize("where", list(SCRIPTS))
def test_sigterm_ends_the_running_stage_and_says_so(tmp_path, where):
    pid_file, done = tmp_path / "child.pid", tmp_path / "never"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from kd_components.tools.stages import Stage, stop_on_signals
        log_dir = {str(tmp_path / "logs")!r}
        sleeper = Stage("sleeper", [sys.executable, "-c", {child!r}], Path({str(tmp_path / "sleeper.done")!r}))
        after = Stage("after", [sys.executable, "-c", "open({str(done)!r}, 'w')"], Path({str(done)!r}))
        """
    ) + textwrap.dedent(SCRIPTS[where])
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(600):  # wait (up to a minute) until the stage's process runs
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        pid = int(pid_file.read_text())
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=120)
    finally:
        parent.kill()
    assert parent.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGTERM: the running stages were ended too")
    assert not _alive(pid), "the stage's process outlived the command"
    assert not done.exists(), "no stage starts after the signal"


def test_no_child_starts_once_stopping(tmp_path):
    marker = tmp_path / "started"
    with stages.stop_on_signals():
        with pytest.raises(SystemExit, match="stopped by SIGHUP"):
            stages._stop(signal.SIGHUP)
        assert stages.stopping()
        code = stages.run_child([sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    assert code == -signal.SIGTERM and not marker.exists()
    with stages.stop_on_signals():  # a new run starts afresh, and the handlers come back after it
        assert not stages.stopping()
        assert stages.run_child([sys.executable, "-c", f"open({str(marker)!r}, 'w')"]) == 0 and marker.exists()
    assert signal.getsignal(signal.SIGTERM) is not stages._stop
