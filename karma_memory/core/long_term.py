"""Long-term memory: the scene graph plus the indices that make it fast to update and query.

The graph itself (networkx, :mod:`scene_graph`) is the source of truth. This façade keeps
derived state beside it — area centres as a numpy array, per-area type counts, a chromadb
vector index of object-type descriptions — and handles persistence (atomic, checksummed).
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import networkx as nx
import numpy as np

from karma_memory.core import scene_graph as sg
from karma_memory.core.embedding import Embedder
from karma_memory.core.errors import ConfigError, InvalidObservationError, MemoryFileError, UnknownObjectError
from karma_memory.core.glosses import type_words
from karma_memory.core.persistence import gc_paused, read_envelope_with_fallback, write_envelope
from karma_memory.core.priors import receptacle_priors
from karma_memory.core.thor_states import thor_states
from karma_memory.core.types import ObjectObservation, ObservationKind, Relation

__all__ = ["LtmConfig", "AreaScore", "LongTermMemory", "TypeIndex", "GRAPH_FILE"]

GRAPH_FILE = "scene_graph.json"
KIND = "karma_memory/scene_graph"


@dataclass(frozen=True)
class LtmConfig:
    """Long-term memory settings.

    Attributes:
        area_spacing: side of the square tile that becomes one area node, metres (paper: even spread).
        grid_size: reachable-grid step, metres (AI2-THOR 0.25).
        move_threshold: displacement that counts as a move, metres.
        evidence_weight, prior_weight, semantic_weight: area-ranking score weights.
        semantic_neighbours: how many similar object types the vector index returns per query.
    """

    area_spacing: float = 1.5
    grid_size: float = 0.25
    move_threshold: float = 0.05
    evidence_weight: float = 2.0
    prior_weight: float = 1.0
    semantic_weight: float = 0.5
    semantic_neighbours: int = 8

    def __post_init__(self) -> None:
        for name in ("area_spacing", "grid_size"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"LtmConfig.{name} must be a positive number of metres, got {value!r}")
        if not 0 <= self.move_threshold < 10:
            raise ConfigError(f"LtmConfig.move_threshold must be in [0, 10) m, got {self.move_threshold!r}")
        for name in ("evidence_weight", "prior_weight", "semantic_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"LtmConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.semantic_neighbours <= 200:
            raise ConfigError(f"LtmConfig.semantic_neighbours must be in [1, 200], got {self.semantic_neighbours}")


@dataclass(frozen=True)
class AreaScore:
    """One ranked area: where to Explore for an object, and why."""

    area_id: str
    position: tuple[float, float, float]
    score: float
    reason: str


class TypeIndex:
    """chromadb vector index of object-type descriptions (one record per THOR type, not per object).

    Types are few (~120 in iTHOR) while objects are many, so the index stays small and fast; the
    graph maps a matched type back to areas and objects. Embeddings come from our offline MiniLM
    (chromadb's default embedding function would try to download a model).
    """

    def __init__(self, embedder: Embedder, path: Path | None = None) -> None:
        import chromadb
        from chromadb.config import Settings

        # In-process (ephemeral) chroma clients share one store, so each index gets its own collection;
        # the embedding dimension is in the name so a different model never mixes with stored vectors.
        collection = f"object_types_{embedder.dim}" + ("" if path is not None else f"_{uuid.uuid4().hex[:12]}")
        settings = Settings(anonymized_telemetry=False, allow_reset=True)
        with TypeIndex._create_lock:
            self._client = (chromadb.PersistentClient(path=str(path), settings=settings) if path is not None
                            else chromadb.EphemeralClient(settings=settings))
            self._collection = self._client.get_or_create_collection(
                collection, embedding_function=None, metadata={"hnsw:space": "cosine"})
        self._embedder = embedder
        self._known: set[str] = set(self._collection.get(include=[])["ids"])
        self._lock = threading.Lock()

    _create_lock = threading.Lock()  # chromadb clients must not be created by two threads at once

    @staticmethod
    def describe(object_type: str) -> str:
        """The text embedded for a type: split CamelCase so MiniLM sees words ("Butter Knife")."""
        return f"a {type_words(object_type)}"

    def add_types(self, object_types: Iterable[str]) -> None:
        """Index types not yet indexed (a no-op for known ones)."""
        with self._lock:
            new = sorted({t for t in object_types if t not in self._known})
            if not new:
                return
            vectors = self._embedder.embed([self.describe(t) for t in new])
            self._collection.add(ids=new, embeddings=vectors.tolist(), documents=[self.describe(t) for t in new])
            self._known.update(new)

    def similar_types(self, text: str, k: int = 8) -> list[tuple[str, float]]:
        """Indexed types most similar to ``text`` with cosine similarity, best first."""
        with self._lock:
            if not self._known:
                return []
            vector = self._embedder.embed([text])[0]
            result = self._collection.query(query_embeddings=[vector.tolist()], n_results=min(k, len(self._known)),
                                            include=["distances"])
        return [(t, 1.0 - float(d)) for t, d in zip(result["ids"][0], result["distances"][0])]

    def __len__(self) -> int:
        return len(self._known)


class LongTermMemory:
    """The 3D scene graph with fast incremental updates, area ranking and persistence."""

    def __init__(self, config: LtmConfig | None = None, embedder: Embedder | None = None,
                 directory: Path | str | None = None, graph: nx.DiGraph | None = None) -> None:
        self.config = config or LtmConfig()
        self.directory = Path(directory) if directory is not None else None
        self._embedder = embedder
        self._index: TypeIndex | None = None
        self.graph = graph if graph is not None else sg.new_scene_graph()
        self._rebuild_caches()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_thor_objects(cls, objects: Sequence[dict[str, Any]], reachable_xz: np.ndarray, scene: str = "",
                          config: LtmConfig | None = None, embedder: Embedder | None = None,
                          directory: Path | str | None = None, stamp: float = 0.0) -> LongTermMemory:
        """Build the LTM of a scene from THOR object metadata and its reachable grid.

        Immovable objects become area contents (as in the paper); pickupable ones are added too,
        linked by ``on``/``inside`` to their parent receptacles, so the memory starts complete.
        """
        memory = cls(config, embedder, directory, sg.new_scene_graph(scene))
        memory.add_areas(reachable_xz)
        memory.observe_many(thor_object_observations(objects, stamp=stamp, source="sim_metadata"))
        return memory

    @classmethod
    def from_scene(cls, scene: str, **kwargs: Any) -> LongTermMemory:
        """One call: the LTM of a real iTHOR scene (FloorPlanN) from the embedded simulator's data."""
        from karma_memory.sim.scenes import load_scene  # the sim package is pure Python too

        data = load_scene(scene)
        return cls.from_thor_objects(data.objects, data.reachable, scene=scene, **kwargs)

    def add_areas(self, reachable_xz: np.ndarray, floor: str = "floor_0") -> list[str]:
        """Add area nodes over reachable (x, z) cells at the configured spacing; keeps the caches in step."""
        areas = sg.add_areas(self.graph, reachable_xz, spacing=self.config.area_spacing, cell=self.config.grid_size,
                             floor=floor)
        self._rebuild_caches()
        return areas

    # ---- derived caches -----------------------------------------------------------------------
    def _rebuild_caches(self) -> None:
        self._area_ids = sg.area_ids(self.graph)
        self._area_xz = np.array([[self.graph.nodes[a]["position"][0], self.graph.nodes[a]["position"][2]]
                                  for a in self._area_ids]).reshape(-1, 2)
        self._area_row = {a: i for i, a in enumerate(self._area_ids)}
        self._type_columns: dict[str, int] = {}
        self._area_type_counts = np.zeros((len(self._area_ids), 16), np.int32)
        self._type_objects: dict[str, set[str]] = defaultdict(set)
        for obj in sg.object_ids(self.graph):
            data = self.graph.nodes[obj]
            self._type_objects[data["object_type"]].add(obj)
            self._count(data.get("area"), data["object_type"], +1)
        self._pending_types: set[str] = set(self._type_objects)

    def _count(self, area: str | None, object_type: str, delta: int) -> None:
        column = self._type_column(object_type)
        row = self._area_row.get(area) if area else None
        if row is not None:
            self._area_type_counts[row, column] += delta

    def area_type_counts(self, area: str) -> dict[str, int]:
        """Object type → count in one area."""
        row = self._area_row[area]
        return {t: int(self._area_type_counts[row, c]) for t, c in self._type_columns.items()
                if self._area_type_counts[row, c] > 0}

    def _area_of(self, position: Sequence[float]) -> str | None:
        if not len(self._area_ids):
            return None
        d = (self._area_xz[:, 0] - position[0]) ** 2 + (self._area_xz[:, 1] - position[2]) ** 2
        return self._area_ids[int(np.argmin(d))]

    @property
    def index(self) -> TypeIndex:
        """The vector index (created on first use; persisted under ``directory/chroma`` when set)."""
        if self._index is None:
            if self._embedder is None:
                from karma_memory.core.embedding import default_embedder

                self._embedder = default_embedder()
            path = self.directory / "chroma" if self.directory is not None else None
            self._index = TypeIndex(self._embedder, path)
        if self._pending_types:
            self._index.add_types(self._pending_types)
            self._pending_types = set()
        return self._index

    # ---- updates --------------------------------------------------------------------------------
    def observe(self, obs: ObjectObservation) -> sg.GraphChange:
        """Fold one observation in (add / move / state change / remove), keeping the caches in step."""
        before = self.graph.nodes.get(obs.object_id)
        old_type, old_area = (before["object_type"], before.get("area")) if before and before.get(
            "level") == sg.OBJECT else (None, None)
        change = sg.apply_observation(self.graph, obs, self.config.move_threshold, area_of=self._area_of)
        if change.kind == "ignored":
            return change
        if old_type is not None:
            self._type_objects[old_type].discard(obs.object_id)
            self._count(old_area, old_type, -1)
        if change.kind != "removed":
            self._type_objects[obs.object_type].add(obs.object_id)
            self._count(change.area_id, obs.object_type, +1)
            if obs.object_type not in (self._index._known if self._index else ()):
                self._pending_types.add(obs.object_type)
        return change

    def observe_many(self, observations: Iterable[ObjectObservation]) -> list[sg.GraphChange]:
        """Fold a batch in order."""
        return [self.observe(o) for o in observations]

    # ---- queries ----------------------------------------------------------------------------------
    def get_object(self, object_id: str) -> dict[str, Any]:
        """Attributes of one object (raises UnknownObjectError)."""
        return sg.get_object(self.graph, object_id)

    def objects_of_type(self, object_type: str) -> list[str]:
        """Ids of known objects of a type, most recently seen first."""
        ids = self._type_objects.get(object_type) or set(sg.objects_of_type(self.graph, object_type))
        return sorted(ids, key=lambda o: (-self.graph.nodes[o]["last_seen"], o))  # ties by id: deterministic

    def known_types(self) -> list[str]:
        """Object types present in memory."""
        return sorted(t for t, ids in self._type_objects.items() if ids)

    def area_positions(self) -> dict[str, tuple[float, float]]:
        """Area id → (x, z): what Explore drives to."""
        return sg.area_positions(self.graph)

    def _type_column(self, object_type: str) -> int:
        column = self._type_columns.get(object_type)
        if column is None:
            column = self._type_columns[object_type] = len(self._type_columns)
            if column >= self._area_type_counts.shape[1]:
                grown = np.zeros((len(self._area_ids), max(16, 2 * column)), np.int32)
                grown[:, : self._area_type_counts.shape[1]] = self._area_type_counts
                self._area_type_counts = grown
        return column

    def rank_areas(self, object_type: str, k: int | None = None, use_semantic: bool = True) -> list[AreaScore]:
        """Rank areas by how likely ``object_type`` is there, best first.

        score = evidence_weight · [the type was last seen in the area]
              + prior_weight · max P(receptacle in area | type) over the area's receptacles (iTHOR statistics)
              + semantic_weight · max cosine(type, other types in the area) (MiniLM via the chroma index)
        Vectorised over an areas × types count matrix, so it stays fast for thousands of areas.
        """
        if not isinstance(object_type, str) or not object_type.strip():
            raise UnknownObjectError(f"cannot rank areas for object type {object_type!r}")
        cfg = self.config
        counts = self._area_type_counts
        n_types = len(self._type_columns)
        names = sorted(self._type_columns, key=self._type_columns.get)
        prior_table = receptacle_priors().get(object_type, {})
        prior_vec = np.array([prior_table.get(t, 0.0) for t in names])
        sem_vec = np.zeros(n_types)
        if use_semantic and cfg.semantic_weight > 0 and n_types:
            for other, sim in self.index.similar_types(TypeIndex.describe(object_type), cfg.semantic_neighbours):
                if other != object_type and other in self._type_columns:
                    sem_vec[self._type_columns[other]] = max(sim, 0.0)

        def best(weights: np.ndarray) -> np.ndarray:
            # max over types of [type in area] · weight: weights are >= 0 and only a few are non-zero (a type's
            # receptacles, its semantic neighbours), so the max over those columns equals the max over all
            # (the others contribute 0) — the areas × all-types product (~30 MB at 100k objects) is skipped
            cols = np.flatnonzero(weights)
            if not len(cols):
                return np.zeros(len(self._area_ids))
            return ((counts[:, cols] > 0) * weights[cols]).max(axis=1)

        prior, semantic = best(prior_vec), best(sem_vec)
        column = self._type_columns.get(object_type)
        evidence = (counts[:, column] > 0).astype(float) if column is not None else np.zeros(len(self._area_ids))
        score = cfg.evidence_weight * evidence + cfg.prior_weight * prior + cfg.semantic_weight * semantic
        if k and k < len(score):  # top-k without sorting thousands of areas
            top = np.argpartition(-score, k - 1)[:k]
            order = top[np.lexsort((top, -score[top]))]
        else:
            order = np.lexsort((np.arange(len(score)), -score))
        ranked = []
        for row in order:
            present = counts[row, :n_types] > 0
            reasons = []
            if evidence[row]:
                reasons.append(f"{object_type} last seen here")
            if prior[row] > 0:
                receptacle = names[int(np.argmax(present * prior_vec))]
                reasons.append(f"{object_type} is often in {receptacle} (p={prior[row]:.2f})")
            if semantic[row] > 0:
                neighbour = names[int(np.argmax(present * sem_vec))]
                reasons.append(f"similar to {neighbour} ({semantic[row]:.2f})")
            area = self._area_ids[row]
            ranked.append(AreaScore(area, tuple(self.graph.nodes[area]["position"]), round(float(score[row]), 4),
                                    "; ".join(reasons) or "no evidence"))
        return ranked

    def to_prompt(self, areas: Iterable[str] | None = None, include_movable: bool = True) -> str:
        """Paper-format topological graph text."""
        return sg.to_prompt(self.graph, areas=areas, include_movable=include_movable)

    # ---- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path | str | None = None) -> Path:
        """Atomically write the graph to ``directory/scene_graph.json`` (last good copy kept as .prev)."""
        target = Path(directory) if directory is not None else self.directory
        if target is None:
            raise ConfigError("LongTermMemory.save: no directory given and none configured")
        with gc_paused():
            data = sg.graph_to_data(self.graph)
            return write_envelope(target / GRAPH_FILE, KIND, sg.SCHEMA_VERSION, data)

    def load(self, directory: Path | str | None = None) -> Path:
        """Replace the in-memory graph with the saved one; on any error the current graph is kept.

        Falls back to the ``.prev`` copy when the main file is corrupt or truncated.

        Raises:
            MemoryFileError / SchemaVersionError: with the path and the reason.
        """
        source = Path(directory) if directory is not None else self.directory
        if source is None:
            raise ConfigError("LongTermMemory.load: no directory given and none configured")
        with gc_paused():
            _, payload, used = read_envelope_with_fallback(source / GRAPH_FILE, KIND, sg.SCHEMA_VERSION)
            try:
                graph = sg.graph_from_data(payload)
            except (InvalidObservationError, TypeError, ValueError, AttributeError, KeyError) as err:
                raise MemoryFileError(f"{used}: the scene graph in it is malformed: {err}") from err
            self.graph = graph
            self._rebuild_caches()
        return used

    def reset(self, keep_areas: bool = True) -> None:
        """Forget all objects (and the areas too unless ``keep_areas``)."""
        if keep_areas:
            for obj in sg.object_ids(self.graph):
                self.graph.remove_node(obj)
            self.graph.graph["tombstones"].clear()
            self.graph.graph["pending"] = {}
            self.graph.graph["version"] += 1
        else:
            self.graph = sg.new_scene_graph(self.graph.graph.get("scene", ""))
        self._rebuild_caches()

    def __len__(self) -> int:
        return sum(len(v) for v in self._type_objects.values())


def thor_object_observations(objects: Iterable[dict[str, Any]], stamp: float = 0.0, source: str = "sim_metadata",
                             robot_id: str = "") -> list[ObjectObservation]:
    """THOR metadata dicts → observations (receptacles first, so relations link at once)."""
    observations = []
    for obj in sorted(objects, key=lambda o: bool(o.get("pickupable"))):
        box = obj.get("axisAlignedBoundingBox") or {}
        size = box.get("size")
        relations = []
        for parent in obj.get("parentReceptacles") or []:
            predicate = "inside" if parent.split("|", 1)[0] in INSIDE_RECEPTACLES else "on"
            relations.append(Relation(predicate, parent))
        position = obj["position"]
        if box.get("center"):
            position = box["center"]
        observations.append(ObjectObservation(
            object_id=obj["objectId"], object_type=obj["objectType"],
            position=(position["x"], position["y"], position["z"]),
            kind=ObservationKind.SEEN,
            size=(size["x"], size["y"], size["z"]) if size else None,
            states=thor_states(obj), relations=tuple(relations), movable=bool(obj.get("pickupable")),
            stamp=stamp, source=source, robot_id=robot_id))
    return observations


#: Receptacles whose contents are "inside" rather than "on".
INSIDE_RECEPTACLES = frozenset({
    "Fridge", "Microwave", "Cabinet", "Drawer", "Box", "GarbageCan", "Sink", "SinkBasin", "Bathtub",
    "BathtubBasin", "Safe", "Cup", "Mug", "Bowl", "Pot", "Pan", "Kettle", "LaundryHamper", "Toilet", "Dresser",
    "CoffeeMachine", "Vase",
})
