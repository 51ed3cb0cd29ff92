"""Long-term-memory backends behind one protocol, chosen by name: ``local`` (files) or ``chroma`` (shared server).

Both keep the scene graph as a networkx graph inside a :class:`LongTermMemory` (queries, area ranking and
prompts never leave the robot); they differ in where the graph's changes go. ``local`` is today's
single-robot memory with its atomic file snapshots; ``chroma`` also mirrors every change to a shared
Chroma server and merges what other robots saw (:mod:`karma_memory.core.fleet.chroma_sync`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

from karma_memory.core import scene_graph as sg
from karma_memory.core.embedding import Embedder
from karma_memory.core.errors import ConfigError
from karma_memory.core.fleet.chroma_sync import ChromaBackend, ChromaConfig, FleetStatus
from karma_memory.core.long_term import LongTermMemory
from karma_memory.core.memory_access import LocalMemory
from karma_memory.core.short_term import ShortTermMemory
from karma_memory.core.types import ObjectObservation, ObservationKind

__all__ = ["LtmBackend", "LocalBackend", "BACKENDS", "make_backend", "FleetMemory"]


@runtime_checkable
class LtmBackend(Protocol):
    """Where a robot's long-term memory lives and how its changes travel.

    ``observe`` changes the local graph at once (never blocks on a network); ``poll`` merges changes
    from elsewhere and returns what it changed, so a node can publish deltas for both.
    """

    name: str
    memory: LongTermMemory

    def observe(self, observations: Iterable[ObjectObservation]) -> list[sg.GraphChange]:
        """Fold this robot's observations into the graph (and queue them for sharing)."""
        ...

    def poll(self) -> list[sg.GraphChange]:
        """Merge changes made elsewhere since the last call; no I/O, call from the graph's owner."""
        ...

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Send queued writes now; True when nothing is left queued."""
        ...

    def save(self) -> Path | None:
        """Persist the graph locally (None when the memory has no directory)."""
        ...

    def status(self) -> FleetStatus:
        """Connection state and counters."""
        ...

    def resync(self) -> None:
        """The memory's graph was replaced (load, reset): continue from its saved sync state."""
        ...

    def close(self) -> None:
        """Flush what can be flushed and release resources."""
        ...


class LocalBackend:
    """The single-robot backend: LongTermMemory and its file snapshots, nothing shared (a thin adapter)."""

    name = "local"

    def __init__(self, memory: LongTermMemory, config: Any = None, embedder: Embedder | None = None,
                 logger: Any = None) -> None:
        self.memory = memory

    def observe(self, observations: Iterable[ObjectObservation]) -> list[sg.GraphChange]:
        return [c for c in self.memory.observe_many(observations) if c.kind != "ignored"]

    def poll(self) -> list[sg.GraphChange]:
        return []

    def flush(self, timeout_s: float = 5.0) -> bool:
        return True

    def save(self) -> Path | None:
        return self.memory.save() if self.memory.directory is not None else None

    def status(self) -> FleetStatus:
        return FleetStatus(self.name, online=True)

    def resync(self) -> None:
        """Nothing to resynchronise."""

    def close(self) -> None:
        """Nothing to release (saving stays the owner's decision, as before)."""


#: backend name -> constructor(memory, config, embedder, logger)
BACKENDS: dict[str, Callable[..., LtmBackend]] = {"local": LocalBackend, "chroma": ChromaBackend}


def make_backend(name: str, memory: LongTermMemory, config: ChromaConfig | Mapping[str, Any] | None = None,
                 embedder: Embedder | None = None, logger: Any = None) -> LtmBackend:
    """Build the backend called ``name`` around ``memory``.

    Args:
        name: "local" or "chroma".
        config: for "chroma", a ChromaConfig or a mapping of its fields (e.g. ROS parameters ``fleet.*``).

    Raises:
        ConfigError: unknown name, or a chroma config that is missing or invalid.
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown ltm_backend {name!r}; expected one of {sorted(BACKENDS)}")
    if name == "chroma":
        if config is None:
            raise ConfigError("ltm_backend 'chroma' needs a ChromaConfig (robot_id, host, port, ...)")
        if isinstance(config, Mapping):
            try:
                config = ChromaConfig(**config)
            except TypeError as err:
                raise ConfigError(f"bad chroma backend settings: {err}") from err
    return BACKENDS[name](memory, config, embedder=embedder, logger=logger)


class FleetMemory(LocalMemory):
    """The agent's memory (AgentMemory) with the LTM behind a backend.

    Writes go through the backend (so they are shared); every LTM query first merges what other
    robots wrote, so the planner always sees the fleet's newest knowledge.
    """

    def __init__(self, backend: LtmBackend, stm: ShortTermMemory | None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(backend.memory, stm)
        self.backend = backend
        self._clock = clock

    def observe(self, observations: Iterable[ObjectObservation]) -> None:
        observations = list(observations)
        self.backend.observe(observations)
        if self.stm is not None:
            for obs in observations:
                self.stm.observe(obs)

    def refresh(self) -> list[sg.GraphChange]:
        """Merge other robots' changes now."""
        return self.backend.poll()

    def ltm_objects_of_type(self, object_type: str) -> list[dict[str, Any]]:
        self.refresh()
        return super().ltm_objects_of_type(object_type)

    def ltm_object(self, object_id: str) -> dict[str, Any] | None:
        self.refresh()
        return super().ltm_object(object_id)

    def ltm_rank_areas(self, object_type: str, k: int | None = None) -> list[Any]:
        self.refresh()
        return super().ltm_rank_areas(object_type, k)

    def ltm_forget(self, object_id: str) -> None:
        """Forget an object that is not where memory said, for the whole fleet.

        The removal is stamped now (not with the object's last sighting, as a single robot may): it is
        new evidence and must beat older sightings by other robots under the newest-wins rule.
        """
        if object_id in self.backend.memory.graph:
            data = self.backend.memory.get_object(object_id)
            stamp = max(float(data["last_seen"]), self._clock())
            self.backend.observe([ObjectObservation(object_id, data["object_type"], data["position"],
                                                    ObservationKind.REMOVED, stamp=stamp, source="agent")])
