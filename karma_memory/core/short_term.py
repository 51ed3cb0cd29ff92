"""Short-term memory: a small fixed-capacity store of recently changed or used objects.

Units are merged by object id (a unit for an object replaces its older unit). Which unit leaves
when the memory is full is decided by a replacement policy (FIFO-merge, LRU, LFU, W-TinyLFU)
behind one protocol. Recall embeds the instruction and returns the top-K units by cosine
similarity; every recall that names the unit it needed is counted for the hit rate
(hit = the needed unit is resident, karma_spec.md §1.5) and retrieval accuracy (it was returned).
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from karma_memory.core.embedding import Embedder
from karma_memory.core.errors import ConfigError, MemoryFileError, UnknownObjectError
from karma_memory.core.glosses import type_words
from karma_memory.core.persistence import read_envelope_with_fallback, write_envelope
from karma_memory.core.policies import PolicyConfig, make_policy, policy_from_state
from karma_memory.core.types import MAX_STAMP_S, OBJECT_STATES, ObjectObservation, ObservationKind, Vec3

__all__ = ["MemoryUnit", "StmConfig", "StmStats", "ShortTermMemory", "STM_FILE"]

STM_FILE = "short_term_memory.json"
KIND = "karma_memory/short_term_memory"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class MemoryUnit:
    """One line of the short-term memory (paper §3.4, Listing 1), keyed by object id."""

    object_id: str
    object_type: str
    position: Vec3
    states: tuple[str, ...] = ()
    last_seen: float = 0.0
    relation: str = ""  # e.g. "inside Fridge|+01.2|..." — where it was left
    image_path: str = ""
    robot_id: str = ""
    hits: int = 0

    def description(self) -> str:
        """Text recalled against instructions, e.g. "cleaned apple inside Fridge"."""
        states = [s for s in self.states if s not in ("none",)]
        words = " ".join(states + [type_words(self.object_type)])
        if self.relation:
            predicate, _, target = self.relation.partition(" ")
            words += f" {predicate} {type_words(target.split('|', 1)[0])}"
        return words

    def as_fact(self) -> str:
        """The paper's prompt fact form: ``{apple is in the fridge} {apple is cleaned}``."""
        name = type_words(self.object_type)
        facts = [f"{{{name} [{self.object_id}] is at ({', '.join(f'{v:.2f}' for v in self.position)})}}"]
        if self.relation:
            predicate, _, target = self.relation.partition(" ")
            facts.append(f"{{{name} is {predicate} the {type_words(target.split('|', 1)[0])}}}")
        facts += [f"{{{name} is {s}}}" for s in self.states if s != "none"]
        return " ".join(facts)


def _check_unit(unit: MemoryUnit) -> None:
    """Raise ValueError naming what is wrong with a unit (empty id, unknown state, non-finite position)."""
    if not isinstance(unit.object_id, str) or not unit.object_id or not isinstance(unit.object_type, str):
        raise ValueError(f"unit has an empty or non-string id/type: {unit.object_id!r}")
    if len(unit.position) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in unit.position):
        raise ValueError(f"unit {unit.object_id!r} has a bad position {unit.position!r}")
    if not isinstance(unit.states, tuple) or any(not isinstance(s, str) or s not in OBJECT_STATES for s in unit.states):
        raise ValueError(f"unit {unit.object_id!r} has unknown states {unit.states!r}")
    if not isinstance(unit.last_seen, (int, float)) or isinstance(unit.last_seen, bool) \
            or not math.isfinite(unit.last_seen) or abs(unit.last_seen) >= MAX_STAMP_S:
        raise ValueError(f"unit {unit.object_id!r} has a bad last_seen {unit.last_seen!r}")
    if not isinstance(unit.hits, int) or isinstance(unit.hits, bool) or unit.hits < 0:
        raise ValueError(f"unit {unit.object_id!r} has a bad hit count {unit.hits!r}")
    if not all(isinstance(v, str) for v in (unit.relation, unit.image_path, unit.robot_id)):
        raise ValueError(f"unit {unit.object_id!r} has non-string relation/image_path/robot_id")




@dataclass(frozen=True)
class StmConfig:
    """Short-term memory settings.

    Attributes:
        policy: "fifo", "lru", "lfu" or "wtinylfu".
        capacity: number of units (paper Fig. 4: 10).
        window: W-TinyLFU window size in units (None: policy default); main = capacity - window.
        top_k: units returned by a recall (paper implies 1).
        admit_seen: also admit objects merely seen (not moved/changed/used). Default off: the STM
            holds what the robot changed or used, the LTM holds what it saw.
        min_similarity: recalls below this cosine are not returned.
    """

    policy: str = "wtinylfu"
    capacity: int = 10
    window: int | None = None
    top_k: int = 1
    admit_seen: bool = False
    min_similarity: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, int) or not 1 <= self.capacity <= 1_000_000:
            raise ConfigError(f"StmConfig.capacity must be an int in [1, 1e6], got {self.capacity!r}")
        if not isinstance(self.top_k, int) or not 1 <= self.top_k <= 1000:
            raise ConfigError(f"StmConfig.top_k must be an int in [1, 1000], got {self.top_k!r}")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f"StmConfig.min_similarity must be in [-1, 1], got {self.min_similarity!r}")
        self.policy_config()  # validates policy name and window

    def policy_config(self) -> PolicyConfig:
        """The replacement-policy configuration this STM uses."""
        kwargs: dict[str, Any] = {}
        if self.window is not None:
            kwargs.update(window=self.window, main=self.capacity - self.window)
        return PolicyConfig(name=self.policy, capacity=self.capacity, **kwargs)


@dataclass
class StmStats:
    """Counters for the paper's metrics: hit rate = hits / queries; MRA = retrieved_needed / queries."""

    queries: int = 0
    hits: int = 0
    retrieved_needed: int = 0
    admissions: int = 0
    evictions: int = 0
    rejected: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    @property
    def retrieval_accuracy(self) -> float:
        return self.retrieved_needed / self.queries if self.queries else 0.0


class ShortTermMemory:
    """Fixed-capacity store of MemoryUnits under a replacement policy, with embedding recall."""

    def __init__(self, config: StmConfig | None = None, embedder: Embedder | None = None,
                 directory: Path | str | None = None) -> None:
        self.config = config or StmConfig()
        self.directory = Path(directory) if directory is not None else None
        self._embedder = embedder
        self._policy = make_policy(self.config.policy_config())
        self._units: dict[str, MemoryUnit] = {}
        self.stats = StmStats()
        self._lock = threading.RLock()

    # ---- writes -------------------------------------------------------------------------------------
    def observe(self, obs: ObjectObservation) -> list[str]:
        """Fold an observation in; returns the object ids evicted (or rejected) by the policy.

        REMOVED drops the unit. Immovable objects are not STM material (they live in the LTM).
        """
        with self._lock:
            if obs.kind is ObservationKind.REMOVED:
                self.forget(obs.object_id)
                return []
            if not obs.movable:
                return []
            resident = obs.object_id in self._units
            interacted = obs.source.startswith("skill:")
            if not resident and obs.kind is ObservationKind.SEEN and not interacted and not self.config.admit_seen:
                return []
            relation = ""
            if obs.relations:
                rel = next((r for r in obs.relations if r.predicate != "near"), obs.relations[0])
                relation = f"{rel.predicate} {rel.target_id}"
            old = self._units.get(obs.object_id)
            if old is not None and obs.stamp < old.last_seen:
                return []
            keep_relation = old is not None and not (obs.kind is ObservationKind.MOVED and interacted)
            unit = MemoryUnit(obs.object_id, obs.object_type, obs.position,
                              tuple(obs.states) if obs.states else (old.states if old else ()),
                              obs.stamp, relation or (old.relation if keep_relation else ""),
                              old.image_path if old else "", obs.robot_id, old.hits if old else 0)
            if resident and not interacted and obs.kind is ObservationKind.SEEN:
                self._units[obs.object_id] = unit  # refresh without counting a use
                return []
            return self._admit(unit)

    def put(self, unit: MemoryUnit) -> list[str]:
        """Insert or merge a ready-made unit (e.g. restored, or from another robot)."""
        try:
            _check_unit(unit)
        except ValueError as err:
            raise ConfigError(f"invalid memory unit: {err}") from err
        with self._lock:
            return self._admit(unit)

    def _admit(self, unit: MemoryUnit) -> list[str]:
        evicted = self._policy.insert(unit.object_id)
        self.stats.admissions += 1
        if unit.object_id in evicted:  # the admission filter turned the newcomer away
            self.stats.rejected += 1
            evicted = [e for e in evicted if e != unit.object_id]
        else:
            self._units[unit.object_id] = unit
        for gone in evicted:
            self._units.pop(gone, None)
        self.stats.evictions += len(evicted)
        return evicted

    def forget(self, object_id: str) -> bool:
        """Drop one unit (e.g. memory found wrong); False if it was not resident."""
        with self._lock:
            if object_id not in self._units:
                return False
            del self._units[object_id]
            self._policy.remove(object_id)
            return True

    def clear(self) -> None:
        """Empty the memory and its counters (the paper refreshes the STM at start)."""
        with self._lock:
            self._units.clear()
            self._policy.clear()
            self.stats = StmStats()

    # ---- reads ----------------------------------------------------------------------------------------
    def _use(self, object_id: str) -> MemoryUnit:
        self._policy.access(object_id)
        unit = self._units[object_id]
        unit = replace(unit, hits=unit.hits + 1)
        self._units[object_id] = unit
        return unit

    def get(self, object_id: str) -> MemoryUnit:
        """The unit of one object (counts as a use). Raises UnknownObjectError when not resident."""
        with self._lock:
            if object_id not in self._units:
                raise UnknownObjectError(f"object {object_id!r} is not in the short-term memory")
            return self._use(object_id)

    def find(self, object_type: str | None = None, state: str | None = None) -> list[MemoryUnit]:
        """Units of a type and/or with a state, most recent first (each counts as a use)."""
        with self._lock:
            found = [u for u in self._units.values()
                     if (object_type is None or u.object_type.lower() == object_type.lower())
                     and (state is None or state in u.states)]
            found.sort(key=lambda u: -u.last_seen)
            return [self._use(u.object_id) for u in found]

    def retrieve(self, query: str, top_k: int | None = None, needed_object_id: str | None = None) -> list[MemoryUnit]:
        """Top-K units by cosine similarity between ``query`` and unit descriptions.

        When ``needed_object_id`` is given, the query counts for the hit rate (needed unit resident)
        and retrieval accuracy (needed unit among those returned). Returned units count as used.
        """
        k = top_k or self.config.top_k
        with self._lock:
            units = list(self._units.values())
            chosen: list[MemoryUnit] = []
            if units and query.strip():
                embedder = self._get_embedder()
                vectors = embedder.embed([query] + [u.description() for u in units])
                sims = vectors[1:] @ vectors[0]
                order = np.argsort(-sims, kind="stable")[:k]
                chosen = [units[i] for i in order if sims[i] >= self.config.min_similarity]
            if needed_object_id is not None:
                self.stats.queries += 1
                if needed_object_id in self._units:
                    self.stats.hits += 1
                if any(u.object_id == needed_object_id for u in chosen):
                    self.stats.retrieved_needed += 1
            return [self._use(u.object_id) for u in chosen]

    def record_query(self, needed_object_id: str) -> bool:
        """Count one memory query for the hit rate without a text recall; True on a hit."""
        with self._lock:
            self.stats.queries += 1
            hit = needed_object_id in self._units
            if hit:
                self.stats.hits += 1
                self.stats.retrieved_needed += 1
                self._use(needed_object_id)
            return hit

    def _get_embedder(self) -> Embedder:
        if self._embedder is None:
            from karma_memory.core.embedding import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def units(self) -> list[MemoryUnit]:
        """Resident units, most recent first (does not count as use)."""
        with self._lock:
            return sorted(self._units.values(), key=lambda u: -u.last_seen)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._units

    def __len__(self) -> int:
        return len(self._units)

    def to_prompt(self, units: Iterable[MemoryUnit] | None = None) -> str:
        """Short-term memory as the paper's text facts."""
        chosen = list(units) if units is not None else self.units()
        return "\n".join(u.as_fact() for u in chosen) if chosen else "(no short-term memory)"

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, directory: Path | str | None = None) -> Path:
        """Atomically write units, policy state and counters."""
        target = Path(directory) if directory is not None else self.directory
        if target is None:
            raise ConfigError("ShortTermMemory.save: no directory given and none configured")
        with self._lock:
            payload = {
                "config": asdict(self.config),
                "units": [asdict(u) for u in self._units.values()],
                "policy_state": self._policy.state(),
                "stats": asdict(self.stats),
            }
        return write_envelope(target / STM_FILE, KIND, SCHEMA_VERSION, payload)

    def load(self, directory: Path | str | None = None) -> Path:
        """Restore from disk; the current contents are kept if the file is unusable.

        Raises:
            MemoryFileError / SchemaVersionError: naming the file and the problem.
        """
        source = Path(directory) if directory is not None else self.directory
        if source is None:
            raise ConfigError("ShortTermMemory.load: no directory given and none configured")
        _, payload, used = read_envelope_with_fallback(source / STM_FILE, KIND, SCHEMA_VERSION)
        try:
            if not isinstance(payload, dict):
                raise TypeError(f"payload is a {type(payload).__name__}, not a mapping")
            units = {}
            for raw in payload["units"]:
                raw = dict(raw, position=tuple(raw["position"]), states=tuple(raw["states"]))
                unit = MemoryUnit(**raw)
                _check_unit(unit)
                units[unit.object_id] = unit
            policy = policy_from_state(payload["policy_state"])
            stats = StmStats(**payload["stats"])
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in asdict(stats).values()):
                raise ValueError(f"counters must be non-negative integers: {asdict(stats)}")
        except (KeyError, TypeError, ValueError, AttributeError, MemoryFileError) as err:
            raise MemoryFileError(f"{used}: short-term memory contents are malformed: {err}") from err
        if set(policy.keys()) != set(units) or len(units) > self.config.capacity:
            raise MemoryFileError(f"{used}: policy state and units disagree, or exceed capacity "
                                  f"{self.config.capacity}")
        with self._lock:
            self._units, self._policy, self.stats = units, policy, stats
        return used
