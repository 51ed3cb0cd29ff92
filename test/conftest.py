"""Test-session hygiene: ROS traffic on loopback, a unique domain, logs in the build dir, nothing online."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


def _claim_domain() -> tuple[int, IO[str]]:
    """A ROS domain id no other test session on this machine holds (an flock per id, kept for the session).

    pid % 100 collided when two sessions ran at once (helpers, CI retries): their stacks heard each other.
    """
    for offset in range(100):
        domain = 1 + (os.getpid() + offset) % 100
        handle = open(Path(tempfile.gettempdir()) / f"karma_ros_domain_{domain}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError("all ROS domain ids 1-100 are held by other test sessions")


os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if "ROS_DOMAIN_ID" not in os.environ:
    _DOMAIN, _DOMAIN_LOCK = _claim_domain()
    os.environ["ROS_DOMAIN_ID"] = str(_DOMAIN)
os.environ.setdefault("ROS_LOG_DIR", str(ROOT / "build" / "ros_log"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
