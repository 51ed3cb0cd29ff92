"""Fleet memory against a real Chroma server on loopback: sync, merge, invalid records, outages, crashes."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chroma_server import chroma_server, collection, raw_collection, start_server  # noqa: F401 (fixtures)
from helpers import HashEmbedder, grid, obs

from karma_memory.core import scene_graph as sg
from karma_memory.core.fleet import ChromaBackend, ChromaConfig, FleetMemory
from karma_memory.core.fleet.records import FIELDS, ObjectRecord, to_wire, unpack
from karma_memory.core.long_term import LongTermMemory, LtmConfig
from karma_memory.core.types import ObservationKind

ROOT = Path(__file__).resolve().parent.parent


def _memory(directory: Path) -> LongTermMemory:
    memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder(), directory=directory)
    memory.add_areas(grid(0, 4, 0, 4))
    return memory


def _robot(tmp_path: Path, name: str, server, collection: str, **options) -> ChromaBackend:  # noqa: F811
    config = ChromaConfig(**{"robot_id": name, "port": server.port, "collection": collection,
                             "flush_interval_s": 0.05, "pull_interval_s": 0.05, **options})
    return ChromaBackend(_memory(tmp_path / name), config, HashEmbedder())


def _view(memory: LongTermMemory, object_id: str) -> tuple:
    data = memory.get_object(object_id)
    relations = sorted((d["relation"], t) for t, d in memory.graph.adj[object_id].items()
                       if d.get("relation") in ("on", "inside", "near"))
    return (data["object_type"], tuple(round(v, 6) for v in data["position"]), data.get("size"), sorted(data["states"]),
            relations, data["movable"], data["area"])


class _Wire:
    """A FleetLink between backends in this process, dropping what ``lose`` says (a lossy radio)."""

    def __init__(self) -> None:
        self.robots: list[ChromaBackend] = []
        self.lose = False

    def send(self, robot_id: str, payloads: list) -> None:
        if not self.lose:
            for robot in self.robots:
                robot.receive(robot_id, payloads)


def test_two_robots_share_objects_through_the_server(tmp_path, chroma_server, collection):  # noqa: F811
    a, b = _robot(tmp_path, "alpha", chroma_server, collection), _robot(tmp_path, "beta", chroma_server, collection)
    try:
        a.observe([obs("CounterTop|1", movable=False, position=(2.0, 0.9, 2.0), stamp=1.0),
                   obs("Mug|1", position=(2.1, 1.0, 2.0), states=("dirty",), relations=[("on", "CounterTop|1")],
                       stamp=1.0)])
        assert a.flush()
        changes = b.sync()
        assert sorted(c.object_id for c in changes) == ["CounterTop|1", "Mug|1"]
        for object_id in ("CounterTop|1", "Mug|1"):
            assert _view(b.memory, object_id) == _view(a.memory, object_id)
        # beta moves the mug; alpha sees it without re-reading anything else
        b.observe([obs("Mug|1", position=(0.5, 1.0, 3.5), stamp=2.0)])
        assert b.flush()
        changes = a.sync()
        assert [(c.object_id, c.kind) for c in changes] == [("Mug|1", "moved")]
        assert _view(a.memory, "Mug|1") == _view(b.memory, "Mug|1")
        assert a.memory.graph.nodes["Mug|1"]["robot_id"] == "beta"
        assert not sg.validate_graph(a.memory.graph) and not sg.validate_graph(b.memory.graph)
        assert a.sync() == [] and b.sync() == []  # applying the same records again changes nothing
        stored = raw_collection(chroma_server, collection).get(include=["metadatas"])
        assert sorted(stored["ids"]) == ["CounterTop|1@alpha", "Mug|1@alpha", "Mug|1@beta"]
        # FleetMemory (what the agent uses) merges before answering
        a.observe([obs("Apple|7", position=(3.0, 0.9, 3.0), stamp=3.0)])
        assert a.flush()
        time.sleep(0.3)
        fleet = FleetMemory(b, None)
        assert [r["id"] for r in fleet.ltm_objects_of_type("Apple")] == ["Apple|7"]
    finally:
        a.close()
        b.close()


def test_newest_observation_wins_per_field_across_robots(tmp_path, chroma_server, collection):  # noqa: F811
    a, b = _robot(tmp_path, "alpha", chroma_server, collection), _robot(tmp_path, "beta", chroma_server, collection)
    try:
        a.observe([obs("Mug|1", position=(1.0, 1.0, 1.0), states=("dirty",), stamp=5.0)])
        b.observe([_with_size(obs("Mug|1", position=(3.0, 1.0, 3.0), states=("cleaned",), stamp=3.0))])
        # same time on both robots: the lexically greater robot id ("beta") wins
        a.observe([obs("Bowl|1", position=(1.0, 1.0, 0.5), stamp=9.0)])
        b.observe([obs("Bowl|1", position=(3.5, 1.0, 0.5), stamp=9.0)])
        assert a.flush() and b.flush()
        a.sync()
        b.sync()
        for robot in (a, b):
            mug = robot.memory.get_object("Mug|1")
            assert mug["position"] == (1.0, 1.0, 1.0)  # alpha's is newer (t=5 > t=3)
            assert mug["states"] == ["dirty"]  # alpha's, newer
            assert tuple(mug["size"]) == (0.1, 0.2, 0.1)  # only beta saw the size: kept
            assert robot.memory.get_object("Bowl|1")["position"] == (3.5, 1.0, 0.5)
        assert _view(a.memory, "Mug|1") == _view(b.memory, "Mug|1")
        # an old observation arriving late changes nothing
        b.observe([obs("Mug|1", position=(0.0, 1.0, 0.0), stamp=1.0)])
        assert b.memory.get_object("Mug|1")["position"] == (1.0, 1.0, 1.0)
    finally:
        a.close()
        b.close()


def _with_size(observation):
    from dataclasses import replace

    return replace(observation, size=(0.1, 0.2, 0.1))


def test_removal_propagates_and_a_later_sighting_restores(tmp_path, chroma_server, collection):  # noqa: F811
    a, b = _robot(tmp_path, "alpha", chroma_server, collection), _robot(tmp_path, "beta", chroma_server, collection)
    try:
        a.observe([obs("Apple|1", position=(1.0, 0.9, 1.0), stamp=1.0)])
        assert a.flush()
        b.sync()
        b.observe([obs("Apple|1", kind=ObservationKind.REMOVED, stamp=2.0)])
        assert b.flush()
        assert [c.kind for c in a.sync()] == ["removed"]
        assert "Apple|1" not in a.memory.graph
        a.observe([obs("Apple|1", position=(2.0, 0.9, 2.0), stamp=3.0)])
        assert a.flush()
        assert [c.kind for c in b.sync()] == ["added"]
        assert b.memory.get_object("Apple|1")["position"] == (2.0, 0.9, 2.0)
    finally:
        a.close()
        b.close()


def test_invalid_records_are_rejected_with_a_reason_and_never_merged(tmp_path, chroma_server, collection,  # noqa: F811
                                                                     caplog):
    good = ObjectRecord("Apple|1", "gamma", 10, True, "Apple", (1.0, 0.9, 1.0),
                        fields={f: (1.0, "gamma", 1) for f in FIELDS})
    planted = {}
    # NaN travels as JSON null, so the server hands it back as a missing field
    for object_id, change in [("Apple|2", {"schema_version": 99}), ("Apple|3", {"x": "nan"}),
                              ("Apple|4", {"states": '["shiny"]'}), ("Apple|5", {"fields": "{}"}),
                              ("Apple|7", {"z": math.nan})]:
        rid, meta, doc = to_wire(ObjectRecord(object_id, "gamma", 11, True, "Apple", (1.0, 0.9, 1.0),
                                              fields={f: (1.0, "gamma", 1) for f in FIELDS}))
        meta.update(seq=50, **change)
        planted[rid] = meta
    rid, meta, _ = to_wire(replace_id(good, "Apple|6"))
    del meta["type"]
    planted[rid] = dict(meta, seq=51)
    raw = raw_collection(chroma_server, collection)
    ids = list(planted) + [to_wire(good)[0]]
    metas = list(planted.values()) + [dict(to_wire(good)[1], seq=52)]
    raw.upsert(ids=ids, embeddings=[[1.0] + [0.0] * 63] * len(ids), metadatas=metas)
    b = _robot(tmp_path, "beta", chroma_server, collection)
    try:
        with caplog.at_level(logging.WARNING, logger="karma_memory.fleet"):
            b.sync()
            b.sync()
        assert sg.object_ids(b.memory.graph) == ["Apple|1"]  # only the valid record is merged
        messages = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
        assert len(messages) == 6  # each logged once, not on every pull
        text = "\n".join(messages)
        for reason in ("unknown schema version 99", "'x' has type str", "states must be a list",
                       "lack 'position'", "missing field 'type'", "missing field 'z'"):
            assert reason in text, reason
        assert b.status().rejected == 6
    finally:
        b.close()


def replace_id(record: ObjectRecord, object_id: str) -> ObjectRecord:
    from dataclasses import replace

    return replace(record, object_id=object_id)


def test_pulls_are_incremental(tmp_path, chroma_server, collection):  # noqa: F811
    a, b = _robot(tmp_path, "alpha", chroma_server, collection), _robot(tmp_path, "beta", chroma_server, collection)
    try:
        a.observe([obs(f"Apple|{i}", position=(i % 4, 0.9, i // 16), stamp=1.0) for i in range(60)])
        assert a.flush()
        assert len(b.sync()) == 60
        before = b.status().pulled
        a.observe([obs("Apple|0", position=(3.9, 0.9, 3.9), stamp=2.0)])
        assert a.flush()
        assert [c.object_id for c in b.sync()] == ["Apple|0"]
        time.sleep(0.3)  # several more pull cycles
        assert b.status().pulled - before == 1  # only the new record came over the wire
        assert b.status().watermarks["alpha"] == a.outbox.last_seq
    finally:
        a.close()
        b.close()


def test_pulls_are_exact_per_writer_and_find_robots_that_join(tmp_path, chroma_server, collection):  # noqa: F811
    a, b = _robot(tmp_path, "alpha", chroma_server, collection), _robot(tmp_path, "beta", chroma_server, collection)
    late = None
    try:
        a.observe([obs(f"Apple|{i}", position=(i % 4, 0.9, 1.0), stamp=1.0) for i in range(30)])
        b.observe([obs(f"Mug|{i}", position=(i % 4, 0.9, 2.0), stamp=1.0) for i in range(20)])
        assert a.flush() and b.flush()
        assert len(a.sync()) == 20 and len(b.sync()) == 30
        pulled = a.status().pulled, b.status().pulled
        for step in range(5):  # both keep writing; each pull brings exactly the other's new records
            a.observe([obs("Apple|0", position=(3.5, 0.9, step / 2), stamp=2.0 + step)])
            b.observe([obs("Mug|0", position=(0.5, 0.9, step / 2), stamp=2.0 + step)])
            assert a.flush() and b.flush()
            a.sync()
            b.sync()
        time.sleep(0.3)  # more pull cycles: nothing new, nothing re-read
        assert (a.status().pulled - pulled[0], b.status().pulled - pulled[1]) == (5, 5)  # never its own records
        stored = raw_collection(chroma_server, collection).get(ids=["Apple|0@alpha"], include=["metadatas"])
        assert set(stored["metadatas"][0]) == {"robot_id", "type", "seq", "seq@alpha", "r"}
        late = _robot(tmp_path, "gamma", chroma_server, collection)  # joins after the others' first pulls
        late.observe([obs("Bowl|1", position=(2.0, 0.9, 2.0), stamp=9.0)])
        assert late.flush()
        assert [c.object_id for c in a.sync()] == ["Bowl|1"]  # found through the writer registry
        assert sorted(raw_collection(chroma_server, collection + ".writers").get()["ids"]) == ["alpha", "beta",
                                                                                               "gamma"]
        late.sync()
        assert len(late.memory) == 50 + 1  # it learnt what the others wrote before it joined
    finally:
        for robot in (a, b, late):
            if robot is not None:
                robot.close()


def test_the_server_database_uses_write_ahead_logging(chroma_server):  # noqa: F811
    import sqlite3

    connection = sqlite3.connect(str(chroma_server.path / "chroma.sqlite3"))
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_offline_queue_and_replay_after_server_restart(tmp_path):
    server = start_server(tmp_path / "db")
    port = server.port
    options = {"connect_timeout_s": 0.3, "request_timeout_s": 1.0, "retry_backoff_s": 0.1, "max_backoff_s": 0.5}
    a = _robot(tmp_path, "alpha", server, "fleet", **options)
    b = _robot(tmp_path, "beta", server, "fleet", **options)
    try:
        a.observe([obs(f"Apple|{i}", position=(i % 4, 0.9, 0.0), stamp=1.0) for i in range(20)])
        assert a.flush()
        wire = _Wire()
        a.link, wire.robots = wire, [b]
        server.kill()  # mid-run, as a crash would
        start = time.perf_counter()
        for step in range(30):  # keeps working: new objects and moves of known ones
            a.observe([obs(f"Apple|{step + 10}", position=((step + 10) % 4, 0.9, 1.0 + step / 10), stamp=2.0 + step)])
        assert time.perf_counter() - start < 2.0  # never waits for the server
        assert len(a.memory) == 40
        assert not a.flush(0.5)
        assert not a.status().online and a.status().pending > 0
        b.poll()  # the live link still carries what alpha sees while the server is down
        assert {f"Apple|{i}" for i in range(20, 40)} <= set(sg.object_ids(b.memory.graph))
        server = start_server(tmp_path / "db", port=port)  # same path, same port
        assert a.flush(15.0), a.status()
        records = raw_collection(server, "fleet").get(where={"robot_id": "alpha"}, include=["metadatas"])
        assert len(records["ids"]) == len(set(records["ids"])) == 40  # every object exactly once
        for rid, meta in zip(records["ids"], map(unpack, records["metadatas"])):
            object_id = meta["object_id"]
            assert (meta["x"], meta["y"], meta["z"]) == a.memory.get_object(object_id)["position"], rid
        b.sync(10.0)
        assert sorted(sg.object_ids(b.memory.graph)) == sorted(sg.object_ids(a.memory.graph))
        for object_id in sg.object_ids(a.memory.graph):
            assert b.memory.get_object(object_id)["position"] == a.memory.get_object(object_id)["position"]
        assert b.sync() == []
    finally:
        a.close(0.2)
        b.close(0.2)
        server.stop()


def test_a_hung_server_times_out_and_the_robot_keeps_working(tmp_path, chroma_server, collection):  # noqa: F811
    options = {"connect_timeout_s": 0.3, "request_timeout_s": 0.5, "retry_backoff_s": 0.1, "max_backoff_s": 0.3}
    a = _robot(tmp_path, "alpha", chroma_server, collection, **options)
    b = _robot(tmp_path, "beta", chroma_server, collection, **options)
    try:
        a.observe([obs("Apple|1", stamp=1.0)])
        assert a.flush()
        chroma_server.pause()
        try:
            start = time.perf_counter()
            a.observe([obs("Apple|2", position=(1.0, 0.9, 1.0), stamp=2.0)])
            assert time.perf_counter() - start < 0.5
            assert not a.flush(1.5)
            deadline = time.monotonic() + 5
            while a.status().online and time.monotonic() < deadline:
                time.sleep(0.05)
            error = a.status().last_error
            assert not a.status().online and ("Timeout" in error or "answers" in error), error
        finally:
            chroma_server.resume()
        assert a.flush(10.0)
        b.sync(10.0)
        assert sorted(sg.object_ids(b.memory.graph)) == ["Apple|1", "Apple|2"]
    finally:
        a.close(0.2)
        b.close(0.2)


_ROBOT = r"""
import sys, time
sys.path.insert(0, {test_dir!r})
from helpers import HashEmbedder, grid, obs
from karma_memory.core import scene_graph as sg
from karma_memory.core.fleet import ChromaBackend, ChromaConfig
from karma_memory.core.long_term import LongTermMemory, LtmConfig
memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder(), directory={directory!r})
memory.add_areas(grid(0, 4, 0, 4))
backend = ChromaBackend(memory, ChromaConfig("crashy", port={port}, collection={collection!r}, flush_interval_s=0.05,
                                             pull_interval_s=0.05), HashEmbedder())
for step in range(100000):
    object_id = f"Apple|{{step % 50}}"
    backend.observe([obs(object_id, position=(step % 4, 0.9, step / 100), stamp=float(step))])
    print(object_id, step, flush=True)
    if step % 10 == 9:
        backend.poll(); memory.save()
    time.sleep(0.01)
"""


def test_kill_9_robot_catches_up_from_local_copy_and_server(tmp_path, chroma_server, collection):  # noqa: F811
    directory = tmp_path / "crashy"
    code = _ROBOT.format(test_dir=str(ROOT / "test"), directory=str(directory), port=chroma_server.port,
                         collection=collection)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    last: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            object_id, step = line.split()
            last[object_id] = int(step)
            if int(step) >= 75:  # past a full round of 50 objects, mid-way through the second
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert len(last) == 50
    # restart from the local copy (saved every 10 steps: older than what was observed) + outbox + server
    memory = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder(), directory=directory)
    memory.load()
    config = ChromaConfig("crashy", port=chroma_server.port, collection=collection, flush_interval_s=0.05,
                          pull_interval_s=0.05)
    restarted = ChromaBackend(memory, config, HashEmbedder())
    other = _robot(tmp_path, "beta", chroma_server, collection)
    try:
        restarted.sync(10.0)
        assert restarted.flush(10.0)
        for robot in (restarted, other):
            if robot is other:
                robot.sync(10.0)
            assert len(robot.memory) == 50
            for object_id, step in last.items():
                seen = robot.memory.get_object(object_id)["last_seen"]
                assert seen >= step, (object_id, seen, step)  # nothing observed before the kill is lost
        records = raw_collection(chroma_server, collection).get(where={"robot_id": "crashy"}, include=["metadatas"])
        assert len(records["ids"]) == 50  # once per object, however often it was replayed
        for meta in map(unpack, records["metadatas"]):
            assert meta["stamp"] == restarted.memory.get_object(meta["object_id"])["last_seen"]
        assert restarted.status().pending == 0
    finally:
        restarted.close()
        other.close()


def test_simulated_robot_b_knows_what_robot_a_saw(tmp_path, chroma_server, collection):  # noqa: F811
    """``karma fleet``'s robots: A looks around a real iTHOR kitchen, B (map only) learns A's movable objects."""
    from karma_memory.fleet import build_robot, learnt_from_others, look_around, main

    a = build_robot("robot_a", "FloorPlan1", "chroma", chroma_server.port, collection, tmp_path, HashEmbedder())
    b = build_robot("robot_b", "FloorPlan1", "chroma", chroma_server.port, collection, tmp_path, HashEmbedder())
    try:
        movable_before = {o for o in sg.object_ids(b.memory.ltm.graph) if b.memory.ltm.graph.nodes[o]["movable"]}
        assert not movable_before  # the map holds furniture only
        assert look_around(a) > 0
        seen = {o for o in sg.object_ids(a.memory.ltm.graph) if a.memory.ltm.graph.nodes[o]["movable"]}
        assert len(seen) >= 5
        assert a.backend.flush(10.0)
        b.backend.sync(10.0)
        assert {r["id"] for t in ("Apple", "Mug", "Egg") for r in b.memory.ltm_objects_of_type(t)} <= seen
        assert learnt_from_others(b) == len(seen)
        apple = b.memory.ltm_objects_of_type("Apple")
        assert apple and apple[0]["position"] == a.memory.ltm.get_object(apple[0]["id"])["position"]
    finally:
        a.close()
        b.close()
    with pytest.raises(SystemExit):  # argparse rejects it before anything starts
        main(["up", "--robots", "0"])


def test_a_robot_without_a_map_takes_the_fleets_areas(tmp_path, chroma_server, collection):  # noqa: F811
    a = _robot(tmp_path, "alpha", chroma_server, collection)
    empty = LongTermMemory(LtmConfig(semantic_weight=0), HashEmbedder(), directory=tmp_path / "beta")
    b = ChromaBackend(empty, ChromaConfig("beta", port=chroma_server.port, collection=collection,
                                          flush_interval_s=0.05, pull_interval_s=0.05), HashEmbedder())
    try:
        a.observe([obs("Apple|1", position=(3.9, 0.9, 3.9), stamp=1.0)])
        assert a.publish_areas() == len(sg.area_ids(a.memory.graph)) > 1
        assert a.flush()
        b.sync()
        assert sorted(sg.area_ids(b.memory.graph)) == sorted(sg.area_ids(a.memory.graph))
        for area in sg.area_ids(a.memory.graph):
            assert b.memory.graph.nodes[area]["position"] == a.memory.graph.nodes[area]["position"]
            assert set(b.memory.graph.successors(area)) >= {n for n in a.memory.graph.successors(area)
                                                           if a.memory.graph.nodes[n].get("level") == sg.AREA}
        assert b.memory.get_object("Apple|1")["area"] == a.memory.get_object("Apple|1")["area"]
        assert not sg.validate_graph(b.memory.graph)
        assert b.memory.rank_areas("Apple", k=1)[0].area_id == a.memory.get_object("Apple|1")["area"]
    finally:
        a.close()
        b.close()


def test_the_live_link_delivers_before_the_server_and_the_server_fills_its_gaps(tmp_path, chroma_server,  # noqa: F811
                                                                               collection, caplog):
    wire = _Wire()
    # pulls far apart: what arrives within a second came over the link
    a = _robot(tmp_path, "alpha", chroma_server, collection, pull_interval_s=60.0, live_pull_interval_s=60.0)
    b = _robot(tmp_path, "beta", chroma_server, collection, pull_interval_s=60.0, live_pull_interval_s=60.0)
    a.link = b.link = wire
    wire.robots = [a, b]
    try:
        time.sleep(0.5)  # both made their first pull
        b.poll()
        a.observe([obs("Mug|1", position=(2.1, 1.0, 2.0), states=("dirty",), stamp=1.0)])
        changes = b.poll()
        assert [(c.object_id, c.kind) for c in changes] == [("Mug|1", "added")]
        assert _view(b.memory, "Mug|1") == _view(a.memory, "Mug|1")
        assert a.poll() == []  # its own record does not come back
        assert (a.status().live_sent, b.status().live_received) == (1, 1)
        # a message the link loses is brought by the next pull; what arrives twice changes nothing
        wire.lose = True
        a.observe([obs("Mug|1", position=(0.5, 1.0, 3.5), stamp=2.0)])
        assert b.poll() == [] and _view(b.memory, "Mug|1") != _view(a.memory, "Mug|1")
        assert a.flush()
        assert [(c.object_id, c.kind) for c in b.sync()] == [("Mug|1", "moved")]
        assert _view(b.memory, "Mug|1") == _view(a.memory, "Mug|1")
        wire.lose = False
        a.observe([obs("Mug|1", position=(0.5, 1.0, 3.5), states=("cleaned",), stamp=3.0)])
        assert [c.object_id for c in b.poll()] == ["Mug|1"] and a.flush() and b.sync() == []
        assert b.memory.get_object("Mug|1")["states"] == ["cleaned"]
        # records that fail validation, or that speak for another robot, are rejected and never merged
        rid, meta, _ = to_wire(ObjectRecord("Apple|1", "alpha", 1, True, "Apple", (1.0, 0.9, 1.0),
                                            fields={f: (4.0, "alpha", 1) for f in FIELDS}))
        with caplog.at_level(logging.WARNING, logger="karma_memory.fleet"):
            accepted = b.receive("alpha", [{"id": rid, "meta": dict(meta, schema_version=99)},
                                           {"id": rid, "meta": dict(meta, x=None)},
                                           {"meta": meta}, "garbage",
                                           {"id": rid, "meta": meta}])
            assert b.receive("gamma", [{"id": rid, "meta": meta}]) == 0  # alpha's record sent by gamma
        assert accepted == 1
        assert [c.object_id for c in b.poll()] == ["Apple|1"]
        text = "\n".join(r.getMessage() for r in caplog.records)
        for reason in ("unknown schema version 99", "missing field 'x'", "has no id", "not from its writer"):
            assert reason in text, reason
        assert b.status().rejected == 5
        # a link that fails never breaks observing: the server carries the records
        wire.robots = None  # type: ignore[assignment] — iterating it raises
        a.observe([obs("Bowl|1", position=(1.0, 1.0, 1.0), stamp=5.0)])
        assert a.flush() and "Bowl|1" in [c.object_id for c in b.sync()]
    finally:
        a.close()
        b.close()
