"""Running the dashboard's Streamlit server as a child that ends with its parent."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from types import FrameType

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 10.0  # how long a stopped server may take before it is killed


def serve(command: Sequence[str]) -> int:
    """Run `command` and return its exit status (128 + N when signal N ended it, as a shell
    reports). SIGINT, SIGTERM and SIGHUP sent to this process are passed on to it, and
    however this process leaves, the child does not outlive it (asked to stop, then killed
    after `GRACE_SECONDS`)."""
    child = subprocess.Popen(list(command))

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    try:
        status = child.wait()
        return 128 - status if status < 0 else status
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
