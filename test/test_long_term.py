"""Long-term memory façade: real-scene build, cache consistency, ranking, persistence and corruption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import HashEmbedder, grid, obs
from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import ConfigError, MemoryFileError, SchemaVersionError, UnknownObjectError
from karma_memory.core.long_term import GRAPH_FILE, LongTermMemory, LtmConfig, thor_object_observations
from karma_memory.core.priors import ithor_scene_lists, receptacle_priors
from karma_memory.core.types import ObservationKind


@pytest.fixture
def kitchen_objects():
    return [dict(o) for o in ithor_scene_lists()["FloorPlan1"]]


def small_memory(tmp_path=None):
    memory = LongTermMemory(LtmConfig(area_spacing=1.5), HashEmbedder(), tmp_path)
    memory.add_areas(grid(0, 4.5, 0, 4.5))
    return memory


def test_real_kitchen_builds_three_levels(kitchen_objects):
    cells = grid(-2.0, 1.0, -2.0, 2.0)
    memory = LongTermMemory.from_thor_objects(kitchen_objects, cells, scene="FloorPlan1", embedder=HashEmbedder())
    graph = memory.graph
    levels = {d["level"] for _, d in graph.nodes(data=True)}
    assert levels == {"floor", "area", "object"}
    assert len(memory) == len(kitchen_objects)
    fridge = memory.objects_of_type("Fridge")
    assert len(fridge) == 1 and graph.nodes[fridge[0]]["movable"] is False
    # a pickupable object sitting on a counter is linked to it by "on"
    apple = memory.objects_of_type("Apple")[0]
    assert {graph.edges[apple, t]["relation"] for t in graph.successors(apple)} <= {"on", "inside"}
    assert sg.validate_graph(graph) == []


def test_thor_observations_carry_states_and_relations(kitchen_objects):
    observations = {o.object_id: o for o in thor_object_observations(kitchen_objects)}
    fridge = next(o for o in observations.values() if o.object_type == "Fridge")
    assert "closed" in fridge.states and not fridge.movable
    inside = [o for o in observations.values() if any(r.predicate == "inside" for r in o.relations)]
    assert inside, "FloorPlan1 has objects inside cabinets/fridge/sink"


def test_caches_stay_consistent_with_the_graph():
    memory = small_memory()
    memory.observe(obs("Apple|1", position=(0.1, 0.9, 0.1), stamp=1))
    memory.observe(obs("Apple|1", position=(4.4, 0.9, 4.4), kind=ObservationKind.MOVED, stamp=2))
    memory.observe(obs("Apple|2", position=(4.4, 0.9, 4.4), stamp=3))
    memory.observe(obs("Apple|2", kind=ObservationKind.REMOVED, stamp=4))
    fresh = LongTermMemory(memory.config, HashEmbedder(), graph=memory.graph)
    for area in sg.area_ids(memory.graph):
        assert memory.area_type_counts(area) == fresh.area_type_counts(area)
    assert sum(sum(memory.area_type_counts(a).values()) for a in sg.area_ids(memory.graph)) == 1
    assert memory.objects_of_type("Apple") == ["Apple|1"]


def test_ranking_prefers_direct_evidence_then_receptacle_priors():
    memory = small_memory()
    memory.observe(obs("Fridge|1", position=(0.1, 0.9, 0.1), movable=False))
    memory.observe(obs("Toilet|1", position=(4.4, 0.4, 4.4), movable=False))
    ranking = memory.rank_areas("Egg")
    assert ranking[0].area_id == memory.graph.nodes["Fridge|1"]["area"], ranking[:3]
    assert "Fridge" in ranking[0].reason
    memory.observe(obs("Egg|1", position=(4.4, 0.9, 4.4), stamp=2))
    assert memory.rank_areas("Egg")[0].area_id == memory.graph.nodes["Egg|1"]["area"]
    assert "last seen" in memory.rank_areas("Egg")[0].reason


def test_ranking_uses_minilm_semantics_for_unseen_types():
    """Real MiniLM + chromadb: with no evidence and no prior, a type ranks near semantically similar types."""
    memory = small_memory()
    memory.config = LtmConfig(prior_weight=0.0, evidence_weight=0.0, semantic_weight=1.0)
    memory._embedder = None  # use the real offline model
    memory.observe(obs("Laptop|1", position=(0.1, 0.8, 0.1), movable=True))
    memory.observe(obs("Banana|1", position=(4.4, 0.9, 4.4), movable=True))
    top = memory.rank_areas("Apple")[0]
    assert top.area_id == memory.graph.nodes["Banana|1"]["area"], memory.rank_areas("Apple")[:2]


def test_rank_areas_rejects_empty_type():
    with pytest.raises(UnknownObjectError):
        small_memory().rank_areas("")


def test_priors_come_from_real_scenes():
    priors = receptacle_priors()
    assert sum(priors["Apple"].values()) == pytest.approx(1.0)
    assert "Fridge" in priors["Egg"]


def test_save_load_round_trip(tmp_path):
    memory = small_memory(tmp_path)
    memory.observe(obs("Apple|1", position=(1, 1, 1), states=["sliced"]))
    memory.save()
    other = LongTermMemory(memory.config, HashEmbedder(), tmp_path)
    other.load()
    assert other.get_object("Apple|1")["states"] == ["sliced"]
    assert other.objects_of_type("Apple") == ["Apple|1"]
    assert other.graph.graph["version"] == memory.graph.graph["version"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "checksum", "empty"])
def test_corrupt_file_gives_clear_error_and_keeps_memory(tmp_path, damage):
    memory = small_memory(tmp_path)
    memory.observe(obs("Apple|1"))
    path = memory.save()
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "checksum":
        path.write_text(raw.decode().replace('"Apple"', '"Melon"'))
    else:
        path.write_bytes(b"")
    survivor = small_memory(tmp_path)
    survivor.observe(obs("Mug|1"))
    with pytest.raises(MemoryFileError, match=str(path.name)):
        survivor.load()
    assert survivor.objects_of_type("Mug") == ["Mug|1"], "a failed load must not touch the memory"


def test_fallback_to_last_good_copy_and_never_overwrite_it_with_corruption(tmp_path):
    memory = small_memory(tmp_path)
    memory.observe(obs("Apple|1"))
    memory.save()
    memory.observe(obs("Mug|1", stamp=2))
    path = memory.save()
    assert path.with_name(GRAPH_FILE + ".prev").exists()
    path.write_bytes(b"{broken")
    restored = small_memory(tmp_path)
    used = restored.load()
    assert used.name == GRAPH_FILE + ".prev"
    assert restored.objects_of_type("Apple") == ["Apple|1"]
    # saving over a corrupt main file must not rotate the corruption into .prev
    restored.save()
    prev = json.loads(path.with_name(GRAPH_FILE + ".prev").read_text())
    assert prev["kind"] == "karma_memory/scene_graph"


def test_newer_schema_is_refused_clearly(tmp_path):
    memory = small_memory(tmp_path)
    path = memory.save()
    envelope = json.loads(path.read_text())
    envelope["schema_version"] = 99
    path.write_text(json.dumps(envelope))
    with pytest.raises(SchemaVersionError, match="99"):
        small_memory(tmp_path).load()


def test_config_validation_names_the_bad_value():
    with pytest.raises(ConfigError, match="area_spacing"):
        LtmConfig(area_spacing=-1)
    with pytest.raises(ConfigError, match="semantic_neighbours"):
        LtmConfig(semantic_neighbours=0)
    with pytest.raises(ConfigError):
        LongTermMemory().save()


def test_reset_keeps_areas():
    memory = small_memory()
    memory.observe(obs("Apple|1"))
    memory.reset()
    assert len(memory) == 0 and sg.area_ids(memory.graph)
    assert np.isfinite(memory._area_xz).all()
