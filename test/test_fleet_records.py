"""Fleet memory without a server: the merge rule, record validation, the durable outbox, backend selection."""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import HashEmbedder, grid, obs

from karma_memory.core.errors import ConfigError, InvalidObservationError, KarmaMemoryError
from karma_memory.core.fleet import (
    BACKENDS, ChromaBackend, ChromaConfig, LocalBackend, LtmBackend, ObjectRecord, Outbox, make_backend,
)
from karma_memory.core.fleet.records import (
    FIELDS, RECORD_SCHEMA_VERSION, AreaRecord, InvalidRecordError, dominated, from_wire, merge_records, node_record,
    pack, seq_key, to_wire, unpack,
)
from karma_memory.core.long_term import LongTermMemory, LtmConfig
from karma_memory.core.types import ObservationKind, Relation


def _record(robot: str = "r1", stamp: float = 1.0, position=(1.0, 0.9, 1.0), states=("dirty",), present=True,
            relations=(("on", "CounterTop|1"),), version: int = 7, fields=None) -> ObjectRecord:
    stamps = fields if fields is not None else {f: (stamp, robot, 1) for f in FIELDS}
    return ObjectRecord("Mug|1", robot, version, present, "Mug", position, (0.1, 0.1, 0.1), tuple(states),
                        tuple(Relation(p, t) for p, t in relations), True, stamps)


# ---- merge rule -----------------------------------------------------------------------------------------
def test_newest_observation_wins_per_field():
    a = _record("r1", fields={"presence": (1.0, "r1", 1), "position": (5.0, "r1", 1), "states": (1.0, "r1", 1)},
                position=(5.0, 0.9, 5.0), states=("dirty",))
    b = _record("r2", fields={"presence": (2.0, "r2", 1), "position": (2.0, "r2", 1), "states": (3.0, "r2", 1)},
                position=(2.0, 0.9, 2.0), states=("cleaned",))
    for merged in (merge_records(a, b), merge_records(b, a)):
        assert merged.position == (5.0, 0.9, 5.0)  # a's position is newer
        assert merged.states == ("cleaned",)  # b's states are newer
        assert merged.fields["position"] == (5.0, "r1", 1) and merged.fields["states"] == (3.0, "r2", 1)
        assert merged.stamp == 5.0 and merged.last_robot == "r1"


def test_tie_goes_to_the_lexically_greater_robot_id():
    a = _record("alpha", stamp=4.0, position=(1.0, 0.9, 1.0))
    b = _record("beta", stamp=4.0, position=(2.0, 0.9, 2.0))
    assert merge_records(a, b).position == (2.0, 0.9, 2.0)
    assert merge_records(b, a).position == (2.0, 0.9, 2.0)


def test_an_unobserved_field_never_overrides():
    a = _record("r1", stamp=1.0, states=("dirty",))
    b = _record("r2", states=(), fields={"presence": (9.0, "r2", 1), "position": (9.0, "r2", 1)}, position=(3.0, 0.9, 3.0))
    merged = merge_records(a, b)
    assert merged.states == ("dirty",) and merged.position == (3.0, 0.9, 3.0)


def test_presence_is_a_field_a_later_sighting_brings_the_object_back():
    seen = _record("r1", stamp=1.0)
    removed = replace(_record("r2", stamp=2.0), present=False, fields={"presence": (2.0, "r2", 1)})
    assert not merge_records(seen, removed).present
    again = _record("r1", stamp=3.0, position=(4.0, 0.9, 4.0))
    back = merge_records(merge_records(seen, removed), again)
    assert back.present and back.position == (4.0, 0.9, 4.0)


def test_merge_is_commutative_associative_and_idempotent():
    rng = random.Random(3)
    robots = ["a", "b", "c"]

    def rand() -> ObjectRecord:
        # a stamp names one observation, so equal stamps carry equal values: derive values from stamps
        robot = rng.choice(robots)
        names = rng.sample(FIELDS, rng.randint(2, len(FIELDS)))
        fields = {n: (float(rng.randint(0, 4)), rng.choice(robots), rng.randint(0, 3))
                  for n in set(names) | {"presence", "position"}}
        t, r, k = fields["position"]
        options = [(), ("dirty",), ("on",), ("sliced",)]
        states = options[(int(fields["states"][0]) + fields["states"][2]) % 4] if "states" in fields else ()
        return _record(robot, position=(t, 0.9, robots.index(r) + k / 10), states=states,
                       present=(fields["presence"][2] % 3) != 0, fields=fields)

    def key(r: ObjectRecord) -> tuple:
        return (r.present, r.position, r.states, r.relations, dict(r.fields))

    for _ in range(200):
        x, y, z = rand(), rand(), rand()
        assert key(merge_records(x, y)) == key(replace(merge_records(y, x), robot_id=x.robot_id))
        assert key(merge_records(merge_records(x, y), z)) == key(merge_records(x, merge_records(y, z)))
        once = merge_records(x, y)
        assert key(merge_records(once, y)) == key(once)
        assert dominated(once, y) and dominated(once, x)


def test_merging_different_objects_is_an_error():
    with pytest.raises(InvalidRecordError, match="Apple"):
        merge_records(_record(), replace(_record(), object_id="Apple|2"))


# ---- wire format and validation ------------------------------------------------------------------------------
def test_wire_round_trip():
    record = _record()
    rid, meta, doc = to_wire(record)
    assert rid == "Mug|1@r1" and meta["schema_version"] == RECORD_SCHEMA_VERSION and "Mug" in doc
    assert json.loads(json.dumps(meta)) == meta  # plain JSON scalars only
    assert from_wire(rid, meta, require_seq=False) == record
    with pytest.raises(InvalidRecordError, match="missing field 'seq'"):  # the server's copy has a push seq
        from_wire(rid, meta)
    assert from_wire(rid, dict(meta, seq=12)) == record
    area = AreaRecord("area_3", "r1", 9, (1.0, 0.0, 2.0), "floor_0", 12, (("area_4", 1.5),))
    rid, meta, _ = to_wire(area)
    assert from_wire(rid, dict(meta, seq=13)) == area


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: m.update(schema_version=99), "unknown schema version 99"),
    (lambda m: m.update(x=math.nan), "'x' is not finite"),
    (lambda m: m.update(z=math.inf), "'z' is not finite"),
    (lambda m: m.pop("y"), "missing field 'y'"),
    (lambda m: m.update(x="1.0"), "'x' has type str"),
    (lambda m: m.pop("type"), "missing field 'type'"),
    (lambda m: m.update(version=True), "'version' has type bool"),
    (lambda m: m.update(version=0), "version must be > 0"),
    (lambda m: m.update(states='["shiny"]'), "states must be a list"),
    (lambda m: m.update(relations='[["under", "Table|1"]]'), "relations must be"),
    (lambda m: m.update(size='[1, -2, 3]'), "size must be"),
    (lambda m: m.update(fields='{"colour": [1, "r1"]}'), "unknown field 'colour'"),
    (lambda m: m.update(fields='{"position": [NaN, "r1", 1], "presence": [1, "r1", 1]}'), "not finite"),
    (lambda m: m.update(fields='{"position": [1.0, "r1"], "presence": [1, "r1", 1]}'), r"\[time, robot_id, tick\]"),
    (lambda m: m.update(fields='{"presence": [1, "r1", 1]}'), "lack 'position'"),
    (lambda m: m.update(fields="{not json"), "not JSON"),
    (lambda m: m.update(robot_id="r2"), "id does not match"),
    (lambda m: m.update(kind="robot"), "unknown record kind"),
    (lambda m: m.update(present=1), "'present' has type int"),
    (lambda m: m.update(seq=-4), "seq must be > 0"),
])
def test_invalid_records_are_rejected_with_the_reason(mutate, reason):
    rid, meta, _ = to_wire(_record())
    meta["seq"] = 99
    mutate(meta)
    with pytest.raises(InvalidRecordError, match=reason) as info:
        from_wire(rid, meta)
    assert "Mug|1@r1" in str(info.value)
    assert isinstance(info.value, InvalidObservationError)


def test_server_layout_packs_all_but_the_filter_keys():
    record = _record()
    rid, meta, _ = to_wire(record)
    stored = pack(dict(meta, seq=12, **{seq_key("r1"): 12}))
    assert set(stored) == {"robot_id", "type", "seq", "seq@r1", "r"}  # five SQLite rows a record, not eighteen
    assert stored["type"] == "Mug" and stored[seq_key("r1")] == 12
    assert from_wire(rid, unpack(stored)) == record
    assert unpack(dict(meta, seq=12)) == dict(meta, seq=12) and unpack(None) is None  # a flat record reads as is
    forged = dict(stored, r=stored["r"].replace('"robot_id"', '"robot_idx"'))
    assert unpack(dict(forged, robot_id="r1"))["robot_id"] == "r1"  # the filtered-on flat keys win
    for bad in ("{not json", "[1, 2]", 7):
        with pytest.raises(InvalidRecordError, match="packed metadata"):
            unpack(dict(stored, r=bad))


def test_type_hash_vectors_are_stable_one_hot_and_per_type():
    from karma_memory.core.fleet import TypeHashEmbedder

    vectors = TypeHashEmbedder().embed(["a mug", "a mug", "a butter knife"])
    assert vectors.shape == (3, 384) and np.allclose(vectors.sum(axis=1), 1.0)
    assert (vectors[0] == vectors[1]).all()
    # stable across processes (Python's own str hash is salted per process): a fixed digest
    assert int(np.argmax(vectors[0])) == int.from_bytes(
        __import__("hashlib").blake2b(b"a mug", digest_size=8).digest(), "big") % 384
    with pytest.raises(ConfigError, match="embedder"):
        ChromaConfig("r1", embedder="bert")
    with pytest.raises(ConfigError, match="collection"):
        ChromaConfig("r1", collection="c" * 505)  # "<collection>.writers" must fit chroma's 512


def test_a_record_without_metadata_is_rejected():
    with pytest.raises(InvalidRecordError, match="no metadata"):
        from_wire("x@r1", None)


def test_node_record_reads_graph_nodes_including_pending_relations():
    memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder())
    memory.add_areas(grid(0, 3, 0, 3))
    memory.observe(obs("Apple|1", relations=[("on", "Plate|9")], stamp=2.0))  # Plate not seen yet
    record = node_record(memory.graph, "Apple|1", "me")
    assert record.relations == (Relation("on", "Plate|9"),)
    assert record.fields["position"] == (2.0, "", 0)  # never through the fleet: stamped with last_seen
    assert node_record(memory.graph, "area_0", "me") is None and node_record(memory.graph, "nope", "me") is None


# ---- outbox -------------------------------------------------------------------------------------------------------
def test_outbox_versions_increase_and_survive_reopening(tmp_path):
    clock = itertools.count(1000.0, 0.000001)  # a wall clock that barely moves
    box = Outbox(tmp_path / "o.sqlite3", clock=lambda: next(clock))
    v1 = box.append([("a@r", lambda v: {"v": v}), ("b@r", lambda v: {"v": v})])
    v2 = box.append([("a@r", lambda v: {"v": v})])
    assert v1[0] < v1[1] < v2[0]
    assert len(box) == 2  # a's newer row supersedes its older one
    entries = box.peek(10)
    assert [e.record_id for e in entries] == ["b@r", "a@r"] and entries[1].payload == {"v": v2[0]}
    box.ack([entries[0].row])
    box.close()
    backwards = Outbox(tmp_path / "o.sqlite3", clock=lambda: 1.0)  # the clock went back: versions still grow
    assert len(backwards) == 1
    (v3,) = backwards.append([("c@r", lambda v: {"v": v})])
    assert v3 == v2[0] + 1
    assert [e.record_id for e in backwards.peek(10)] == ["a@r", "c@r"]
    with pytest.raises(ConfigError):
        backwards.peek(0)


def test_outbox_keeps_only_the_newest_waiting_row_of_a_record(tmp_path):
    clock = iter([10.0, 11.0, 12.0, 13.0, 14.0])
    box = Outbox(tmp_path / "o.sqlite3", clock=lambda: next(clock))
    box.append([("a@r", lambda v: {"n": 1}), ("b@r", lambda v: {"n": 1})])
    box.append([("a@r", lambda v: {"n": 2})])
    assert len(box) == 2
    rows = box.peek(10)  # both are being sent now
    assert [(e.record_id, e.payload["n"], e.enqueued) for e in rows] == [("b@r", 1, 10.0), ("a@r", 2, 10.0)]
    box.append([("a@r", lambda v: {"n": 3})])  # a row in flight is never dropped
    assert len(box) == 3
    box.ack([rows[0].row, rows[1].row])
    assert [(e.record_id, e.payload["n"]) for e in box.peek(10)] == [("a@r", 3)]
    box.close()


def test_outbox_rows_are_on_disk_before_append_returns(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    box.append([("a@r", lambda v: {"v": v})])
    other = Outbox(tmp_path / "o.sqlite3")  # a second connection (another process after a crash) sees it
    assert len(other) == 1 and other.peek(1)[0].record_id == "a@r"
    other.close()
    box.close()


def test_outbox_rejects_a_corrupt_file(tmp_path):
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KarmaMemoryError, match="outbox"):
        Outbox(path)


# ---- backends ---------------------------------------------------------------------------------------------------
def test_local_backend_is_the_plain_memory(tmp_path):
    memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder(), directory=tmp_path)
    memory.add_areas(grid(0, 3, 0, 3))
    backend = make_backend("local", memory)
    assert isinstance(backend, LocalBackend) and isinstance(backend, LtmBackend)
    changes = backend.observe([obs("Apple|1", stamp=1.0), obs("Apple|1", stamp=0.5)])  # the older one is ignored
    assert [c.kind for c in changes] == ["added"]
    assert backend.poll() == [] and backend.flush() and backend.status().online
    assert backend.save() == tmp_path / "scene_graph.json"
    backend.close()


def test_backend_registry_and_config_errors(tmp_path):
    memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder())
    assert set(BACKENDS) == {"local", "chroma"}
    with pytest.raises(ConfigError, match="unknown ltm_backend 'redis'"):
        make_backend("redis", memory)
    with pytest.raises(ConfigError, match="needs a ChromaConfig"):
        make_backend("chroma", memory)
    with pytest.raises(ConfigError, match="bad chroma backend settings"):
        make_backend("chroma", memory, {"robot_id": "r1", "colour": "red"})
    with pytest.raises(ConfigError, match="outbox"):  # no directory and no outbox path: nowhere durable
        make_backend("chroma", memory, {"robot_id": "r1"})
    for bad in ({"robot_id": ""}, {"robot_id": "a@b"}, {"robot_id": "r", "collection": "x"},
                {"robot_id": "r", "port": 0}, {"robot_id": "r", "batch_size": 0},
                {"robot_id": "r", "request_timeout_s": -1.0}, {"robot_id": "r", "flush_interval_s": math.nan},
                {"robot_id": "r", "retry_backoff_s": 2.0, "max_backoff_s": 1.0}):
        with pytest.raises(ConfigError):
            ChromaConfig(**bad)


def test_chroma_backend_works_offline_and_keeps_writes(tmp_path):
    """No server at all: observing never blocks, the graph is updated, writes wait in the outbox."""
    from karma_memory.core.fleet.server import free_port

    memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder(), directory=tmp_path)
    memory.add_areas(grid(0, 3, 0, 3))
    config = ChromaConfig("r1", port=free_port(), connect_timeout_s=0.2, request_timeout_s=0.2, retry_backoff_s=0.05)
    backend = ChromaBackend(memory, config, HashEmbedder())
    changes = backend.observe([obs("Apple|1", stamp=1.0), obs("Mug|1", stamp=1.0)])
    assert [c.kind for c in changes] == ["added", "added"] and len(memory) == 2
    assert not backend.flush(0.3)
    deadline = time.monotonic() + 10
    while not backend.status().last_error and time.monotonic() < deadline:
        time.sleep(0.01)
    status = backend.status()
    assert not status.online and status.pending == 2 and "ConnectionError" in status.last_error
    backend.observe([obs("Apple|1", kind=ObservationKind.REMOVED, stamp=2.0)])
    assert "Apple|1" not in memory.graph and len(backend.outbox) == 2  # the removal supersedes the sighting
    backend.close(flush_timeout_s=0.1)
    reopened = Outbox(tmp_path / "fleet_outbox.sqlite3")
    assert [e.record_id for e in reopened.peek(10)] == ["Mug|1@r1", "Apple|1@r1"]
    assert reopened.peek(10)[-1].payload["meta"]["present"] is False
    reopened.close()


def test_owner_side_merge_of_pulled_records(tmp_path):
    """What poll() does with pulled records, without a server: per-field merge, idempotence, watermarks."""
    from karma_memory.core.fleet import FleetMemory
    from karma_memory.core.fleet.chroma_sync import FLEET_ATTR, _Pull

    memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder(), directory=tmp_path)
    memory.add_areas(grid(0, 3, 0, 3))
    backend = ChromaBackend(memory, ChromaConfig("alpha", port=1), HashEmbedder(), start=False)
    backend.observe([obs("Mug|1", position=(1.0, 0.9, 1.0), states=("dirty",), stamp=5.0)])
    remote = ObjectRecord("Mug|1", "zeta", 100, True, "Mug", (2.0, 0.9, 2.0), (0.1, 0.2, 0.1), ("cleaned",), (),
                          True, {"presence": (3.0, "zeta", 1), "position": (3.0, "zeta", 1),
                                 "size": (3.0, "zeta", 1), "states": (6.0, "zeta", 2)})
    backend._inbox.put(_Pull([remote], {"zeta": 100}))
    assert [c.kind for c in backend.poll()] == ["state_changed"]
    mug = memory.get_object("Mug|1")
    assert mug["position"] == (1.0, 0.9, 1.0) and mug["states"] == ["cleaned"] and tuple(mug["size"]) == (0.1, 0.2, 0.1)
    assert memory.graph.graph[FLEET_ATTR]["watermarks"] == {"zeta": 100}
    backend._inbox.put(_Pull([remote], {"zeta": 100}))
    assert backend.poll() == []  # the same record twice: no change
    removal = replace(remote, version=101, present=False, fields={**remote.fields, "presence": (7.0, "zeta", 3)})
    backend._inbox.put(_Pull([removal], {"zeta": 101}))
    assert [c.kind for c in backend.poll()] == ["removed"] and "Mug|1" not in memory.graph
    backend.observe([obs("Mug|1", position=(0.5, 0.9, 0.5), stamp=8.0)])  # seen again, states not observed
    mug = memory.get_object("Mug|1")
    assert mug["position"] == (0.5, 0.9, 0.5) and mug["states"] == ["cleaned"]  # remembered, not lost
    assert memory.graph.graph[FLEET_ATTR]["watermarks"] == {"zeta": 101}
    # forgetting is new evidence: stamped now, so it beats the robot's own and others' older sightings
    FleetMemory(backend, None, clock=lambda: 9.0).ltm_forget("Mug|1")
    assert "Mug|1" not in memory.graph
    rows = backend.outbox.peek(100)
    assert rows[-1].payload["meta"]["present"] is False and json.loads(rows[-1].payload["meta"]["fields"])[
        "presence"][:2] == [9.0, "alpha"]
    backend.close()
