"""Where objects usually are: receptacle co-occurrence statistics from the real iTHOR scenes.

Counts, over all 120 iTHOR scenes in procthor's metadata dump, which receptacle types hold each
pickupable object type (``parentReceptacles``). P(receptacle type | object type) is the prior the
long-term memory uses to rank areas for an object it has never seen.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from karma_memory.core.errors import ConfigError

__all__ = ["procthor_metadata_path", "ithor_scene_lists", "receptacle_priors", "ROOM_KINDS"]

#: procthor dump key -> (room kind, first FloorPlan number).
ROOM_KINDS: dict[str, tuple[str, int]] = {
    "kitchens": ("kitchen", 1),
    "living_rooms": ("living_room", 201),
    "bedrooms": ("bedroom", 301),
    "bathrooms": ("bathroom", 401),
}


def procthor_metadata_path() -> Path:
    """Path of procthor's ``ai2thor-object-metadata.json`` (without importing procthor.databases)."""
    spec = importlib.util.find_spec("procthor")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("package procthor is not installed (run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "databases" / "ai2thor-object-metadata.json"
    if not path.is_file():
        raise ConfigError(f"procthor metadata file missing: {path}")
    return path


@lru_cache(maxsize=1)
def ithor_scene_lists() -> dict[str, list[dict[str, Any]]]:
    """FloorPlan name → its THOR object metadata list (shared, read-only: copy before mutating)."""
    with procthor_metadata_path().open() as handle:
        dump = json.load(handle)
    scenes: dict[str, list[dict[str, Any]]] = {}
    for key, (_, first) in ROOM_KINDS.items():
        for offset, objects in enumerate(dump[key]):
            scenes[f"FloorPlan{first + offset}"] = objects
    return scenes


@lru_cache(maxsize=1)
def receptacle_priors() -> dict[str, dict[str, float]]:
    """object type → {receptacle type: probability}, from all iTHOR scenes.

    >>> priors = receptacle_priors()
    >>> max(priors["Apple"], key=priors["Apple"].get) in {"CounterTop", "DiningTable", "Fridge"}
    True
    """
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for objects in ithor_scene_lists().values():
        type_of = {o["objectId"]: o["objectType"] for o in objects}
        for obj in objects:
            for parent in obj.get("parentReceptacles") or []:
                parent_type = type_of.get(parent, parent.split("|", 1)[0])
                counts[obj["objectType"]][parent_type] += 1
    return {t: {r: n / sum(c.values()) for r, n in c.items()} for t, c in counts.items()}
