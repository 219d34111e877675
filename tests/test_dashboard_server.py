"""Stopping `privsim dashboard` stops its Streamlit server: signals reach the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

# A parent that serves a child which prints its pid and sleeps (standing in for Streamlit).
PARENT = """
import signal, sys
from simulator.dashboard.server import serve
if len(sys.argv) > 1:  # started from a shell or runner that ignores the signal
    signal.signal(int(sys.argv[1]), signal.SIG_IGN)
child = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"
sys.exit(serve([sys.executable, "-c", child]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("inherited", ["default", "ignored"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_the_command_stops_the_server(signum: int, inherited: str) -> None:
    """Also when the command inherited the signal ignored (a background job ignores SIGINT):
    the server must not inherit that, or the signal passed on would not stop it."""
    ignore = [str(int(signum))] if inherited == "ignored" else []
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *ignore], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signum)
    status = parent.wait(timeout=30)
    assert status == 128 + signum  # the child's end, passed on as a shell reports it
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
