"""The fleet settings of a memory node (``ltm_backend`` and ``fleet.*``), mirrored from :class:`ChromaConfig`.

Kept beside the backends (no ROS here) so the node declares its parameters from one table and a test can
check that every ChromaConfig field is a parameter with the same default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import socket
from typing import Any, Mapping

from karma_memory.core.errors import ConfigError
from karma_memory.core.fleet.chroma_sync import ChromaConfig, FleetStatus

__all__ = ["PREFIX", "NODE_SETTINGS", "fleet_parameters", "default_robot_id", "backend_settings", "status_dict"]

PREFIX = "fleet."
BACKEND_NAMES = ("local", "chroma")

#: node-side settings (name -> (default, description)): not part of ChromaConfig
NODE_SETTINGS: dict[str, tuple[Any, str]] = {
    "poll_interval_s": (0.05, "how often the node merges what the pull thread fetched and publishes it, seconds"),
    "status_interval_s": (1.0, "how often <node>/fleet_status (latched JSON) is refreshed, seconds"),
    "live_topic": ("/fleet/records", "topic the fleet's robots share records on as soon as they observe them "
                                     "(absolute: every namespace meets there); '' = through the server only"),
}

_DESCRIPTIONS = {
    "robot_id": "this robot's id in the fleet; '' = the node's namespace (robot1 for /robot1), else the host name",
    "outbox": "durable outbox file; '' = <memory_dir>/fleet_outbox.sqlite3 (a temporary one without memory_dir)",
}


def fleet_parameters() -> dict[str, tuple[Any, str]]:
    """``ltm_backend`` and every ``fleet.*`` parameter: name -> (default, description)."""
    out: dict[str, tuple[Any, str]] = {
        "ltm_backend": ("local", "where the long-term memory lives: local (files, this robot only) or chroma "
                                 "(shared with the fleet through a Chroma server, see fleet.*)"),
    }
    for f in dataclasses.fields(ChromaConfig):
        default = "" if f.default is dataclasses.MISSING else f.default
        out[PREFIX + f.name] = (default, _DESCRIPTIONS.get(f.name, f"ChromaConfig.{f.name} "
                                                                   "(see karma_memory.core.fleet.chroma_sync)"))
    for name, (default, description) in NODE_SETTINGS.items():
        out[PREFIX + name] = (default, description)
    return out


def default_robot_id(namespace: str, hostname: str | None = None) -> str:
    """A robot id from a ROS namespace ("/robot1" -> "robot1", "/site/r2" -> "site_r2"); the host name at "/"."""
    name = namespace.strip("/").replace("/", "_")
    if not name:
        name = hostname if hostname is not None else socket.gethostname()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if not name:
        raise ConfigError(f"cannot derive a fleet robot id from namespace {namespace!r}; set fleet.robot_id")
    return name


def backend_settings(values: Mapping[str, Any],
                     namespace: str = "/") -> tuple[str, ChromaConfig | None, dict[str, Any]]:
    """(backend name, its ChromaConfig or None for local, node settings) from parameter values.

    Raises:
        ConfigError: an unknown backend name, a bad ``fleet.*`` value (named), a node interval <= 0, or a
            live topic that is not absolute.
    """
    name = values.get("ltm_backend", "local")
    if name not in BACKEND_NAMES:
        raise ConfigError(f"ltm_backend must be one of {list(BACKEND_NAMES)}, got {name!r}")
    node: dict[str, Any] = {}
    for key in NODE_SETTINGS:
        value = values.get(PREFIX + key, NODE_SETTINGS[key][0])
        if key == "live_topic":
            if not isinstance(value, str) or (value and not re.fullmatch(r"(/[A-Za-z][A-Za-z0-9_]*)+", value)):
                raise ConfigError(f"{PREFIX}{key} must be '' or an absolute topic name like /fleet/records, "
                                  f"got {value!r}")
            node[key] = value
            continue
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{PREFIX}{key} must be a positive number of seconds, got {value!r}")
        node[key] = float(value)
    if name == "local":
        return name, None, node
    fields = {f.name: values[PREFIX + f.name] for f in dataclasses.fields(ChromaConfig) if PREFIX + f.name in values}
    if not fields.get("robot_id"):
        fields["robot_id"] = default_robot_id(namespace)
    try:
        return name, ChromaConfig(**fields), node
    except TypeError as err:
        raise ConfigError(f"bad fleet settings: {err}") from err


def status_dict(status: FleetStatus) -> dict[str, Any]:
    """A FleetStatus as JSON-ready values (NaN latencies, before any request, become None)."""
    out = dataclasses.asdict(status)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
