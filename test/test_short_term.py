"""Short-term memory: admission, merge by object id, capacity under every policy, recall, hit accounting, files."""

from __future__ import annotations

import json

import pytest

from helpers import HashEmbedder, obs
from karma_memory.core.errors import ConfigError, MemoryFileError, SchemaVersionError, UnknownObjectError
from karma_memory.core.short_term import STM_FILE, MemoryUnit, ShortTermMemory, StmConfig
from karma_memory.core.types import ObservationKind

POLICIES = ["fifo", "lru", "lfu", "wtinylfu"]


def stm(policy="wtinylfu", capacity=3, tmp_path=None, **kw) -> ShortTermMemory:
    return ShortTermMemory(StmConfig(policy=policy, capacity=capacity, **kw), HashEmbedder(), tmp_path)


@pytest.mark.parametrize("policy", POLICIES)
def test_capacity_and_merge_hold_for_every_policy(policy):
    memory = stm(policy, capacity=3)
    for i in range(20):
        memory.observe(obs(f"Obj|{i % 7}", "Apple", kind=ObservationKind.MOVED, stamp=i))
        assert len(memory) <= 3
        ids = [u.object_id for u in memory.units()]
        assert len(ids) == len(set(ids)), "one unit per object"


def test_merge_replaces_the_unit_of_the_same_object():
    memory = stm("fifo", capacity=2)
    memory.observe(obs("Apple|1", position=(0, 1, 0), kind=ObservationKind.MOVED, stamp=1))
    memory.observe(obs("Apple|1", position=(1, 1, 1), kind=ObservationKind.MOVED, stamp=2,
                       relations=[("inside", "Fridge|1")], states=["cleaned"]))
    assert len(memory) == 1
    unit = memory.get("Apple|1")
    assert unit.position == (1.0, 1.0, 1.0) and unit.relation == "inside Fridge|1" and unit.states == ("cleaned",)


def test_admission_rules_stm_holds_changed_and_used_objects():
    memory = stm(capacity=5)
    memory.observe(obs("Bread|1", kind=ObservationKind.SEEN))  # merely seen: not admitted
    memory.observe(obs("Fridge|1", kind=ObservationKind.MOVED, movable=False))  # furniture: LTM only
    memory.observe(obs("Mug|1", kind=ObservationKind.SEEN, source="skill:PickupObject"))  # used: admitted
    memory.observe(obs("Egg|1", kind=ObservationKind.STATE_CHANGED, states=["cooked"]))
    assert {u.object_id for u in memory.units()} == {"Mug|1", "Egg|1"}
    memory.observe(obs("Egg|1", kind=ObservationKind.REMOVED))
    assert "Egg|1" not in memory
    seen_too = stm(capacity=5, admit_seen=True)
    seen_too.observe(obs("Bread|1"))
    assert "Bread|1" in seen_too


def test_stale_observation_does_not_overwrite_a_newer_unit():
    memory = stm()
    memory.observe(obs("Apple|1", position=(1, 1, 1), kind=ObservationKind.MOVED, stamp=5))
    memory.observe(obs("Apple|1", position=(9, 9, 9), kind=ObservationKind.MOVED, stamp=1))
    assert memory.units()[0].position == (1.0, 1.0, 1.0)


def test_recall_top_k_and_hit_accounting():
    memory = stm(capacity=3, top_k=1)
    memory.observe(obs("Apple|1", kind=ObservationKind.STATE_CHANGED, states=["cleaned"], stamp=1))
    memory.observe(obs("Tomato|1", kind=ObservationKind.MOVED, relations=[("on", "Plate|1")], stamp=2))
    found = memory.retrieve("bring me the cleaned apple", needed_object_id="Apple|1")
    assert [u.object_id for u in found] == ["Apple|1"]
    missed = memory.retrieve("where is the knife", needed_object_id="Knife|1")
    assert all(u.object_id != "Knife|1" for u in missed)
    assert memory.stats.queries == 2 and memory.stats.hits == 1
    assert memory.stats.hit_rate == 0.5 and memory.stats.retrieval_accuracy == 0.5
    assert memory.get("Apple|1").hits >= 2


def test_recall_with_real_minilm_resolves_a_vague_description():
    memory = ShortTermMemory(StmConfig(capacity=5, top_k=1))  # the real offline model
    memory.observe(obs("Apple|1", kind=ObservationKind.STATE_CHANGED, states=["cleaned"], stamp=1))
    memory.observe(obs("Book|1", kind=ObservationKind.MOVED, relations=[("on", "Bed|1")], stamp=2))
    memory.observe(obs("Mug|1", kind=ObservationKind.MOVED, stamp=3))
    assert memory.retrieve("put the washed fruit in the fridge")[0].object_id == "Apple|1"
    assert memory.retrieve("something to read")[0].object_id == "Book|1"


def test_find_and_get_and_unknown():
    memory = stm()
    memory.observe(obs("Apple|1", kind=ObservationKind.STATE_CHANGED, states=["sliced"], stamp=1))
    assert [u.object_id for u in memory.find(object_type="apple")] == ["Apple|1"]
    assert memory.find(state="cooked") == []
    with pytest.raises(UnknownObjectError, match="Ghost"):
        memory.get("Ghost|1")
    assert memory.forget("Apple|1") and not memory.forget("Apple|1")


def test_prompt_facts_follow_the_paper():
    memory = stm()
    memory.observe(obs("Apple|1", "Apple", position=(1, 0.9, 2), kind=ObservationKind.MOVED, states=["cleaned"],
                       relations=[("inside", "GarbageCan|1")]))
    text = memory.to_prompt()
    assert "{apple is inside the garbage can}" in text and "{apple is cleaned}" in text
    assert stm().to_prompt() == "(no short-term memory)"


@pytest.mark.parametrize("policy", POLICIES)
def test_save_load_round_trip_keeps_policy_behaviour(tmp_path, policy):
    memory = stm(policy, capacity=3, tmp_path=tmp_path)
    for i in range(5):
        memory.observe(obs(f"Obj|{i}", "Apple", kind=ObservationKind.MOVED, stamp=i))
    memory.record_query(memory.units()[0].object_id)
    memory.save()
    other = stm(policy, capacity=3, tmp_path=tmp_path)
    other.load()
    assert [u.object_id for u in other.units()] == [u.object_id for u in memory.units()]
    assert other.stats.hits == memory.stats.hits == 1
    memory.observe(obs("New|1", "Apple", kind=ObservationKind.MOVED, stamp=10))
    other.observe(obs("New|1", "Apple", kind=ObservationKind.MOVED, stamp=10))
    assert sorted(u.object_id for u in other.units()) == sorted(u.object_id for u in memory.units())


def test_corrupt_or_foreign_files_are_refused_and_memory_kept(tmp_path):
    memory = stm(tmp_path=tmp_path)
    memory.observe(obs("Apple|1", kind=ObservationKind.MOVED))
    path = memory.save()
    path.write_bytes(path.read_bytes()[:40])
    keeper = stm(tmp_path=tmp_path)
    keeper.observe(obs("Mug|1", kind=ObservationKind.MOVED))
    with pytest.raises(MemoryFileError):
        keeper.load()
    assert "Mug|1" in keeper
    envelope = {"kind": "karma_memory/short_term_memory", "schema_version": 7, "sha256": "0", "payload": {}}
    (tmp_path / STM_FILE).write_text(json.dumps(envelope))
    with pytest.raises(SchemaVersionError):
        keeper.load()


def test_inconsistent_file_is_refused(tmp_path):
    memory = stm(tmp_path=tmp_path)
    memory.observe(obs("Apple|1", kind=ObservationKind.MOVED))
    memory.save()
    from karma_memory.core.persistence import read_envelope, write_envelope

    _, payload = read_envelope(tmp_path / STM_FILE, "karma_memory/short_term_memory", 1)
    payload["units"].append(dict(payload["units"][0], object_id="Ghost|1"))
    write_envelope(tmp_path / STM_FILE, "karma_memory/short_term_memory", 1, payload)
    with pytest.raises(MemoryFileError, match="disagree"):
        stm(tmp_path=tmp_path).load()


def test_config_errors_name_the_value():
    with pytest.raises(ConfigError, match="capacity"):
        StmConfig(capacity=0)
    with pytest.raises(ConfigError, match="policy"):
        StmConfig(policy="random")
    with pytest.raises(ConfigError):
        StmConfig(policy="wtinylfu", capacity=10, window=11)
    with pytest.raises(ConfigError):
        stm().put(MemoryUnit("x", "Apple", (float("nan"), 0, 0)))
