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
    # The handlers go in before the child starts: a signal that arrives while it starts is
    # held and passed on once it exists, instead of meeting whatever this process inherited
    # (an ignored SIGINT under a test runner or `nohup` would leave the child running).
    child: subprocess.Popen[bytes] | None = None
    held: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is None:
            held.append(signum)
        elif child.poll() is None:
            child.send_signal(signum)

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    try:
        child = subprocess.Popen(list(command))
        for signum in held:
            child.send_signal(signum)
        status = child.wait()
        return 128 - status if status < 0 else status
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
