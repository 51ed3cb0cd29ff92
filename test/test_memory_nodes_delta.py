"""Incremental scene-graph deltas are exactly the full diff, and the publishing duty cycle of the memory nodes."""

from __future__ import annotations

import random
import time
from typing import Iterator

import pytest
from rclpy.parameter import Parameter

from helpers import grid, obs
from karma_memory.core.errors import ConfigError
from karma_memory.core.long_term import LongTermMemory
from karma_memory.core.types import ObservationKind
from karma_memory.nodes import memory_conversions as mc
from karma_memory.nodes.common import Coalescer
from karma_memory.nodes.ros_memory import SceneGraphMirror
from ros_fixtures import ros_session

TYPES = ("Apple", "Mug", "Bowl", "Plate", "CounterTop", "Fridge", "Cabinet")


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    yield from ros_session()


def _edges(msgs: list) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.relation) for e in msgs}


def _random_batch(rng: random.Random, stamp: float, ids: list[str], size: int) -> list:
    """Adds, moves (in and out of areas), relations to known and unknown receptacles, removals, re-adds."""
    batch = []
    for object_id in rng.sample(ids, size):
        kind = rng.choice([ObservationKind.SEEN, ObservationKind.MOVED, ObservationKind.MOVED, ObservationKind.REMOVED])
        relations = [(rng.choice(["on", "inside", "near"]), rng.choice(ids))] if rng.random() < 0.5 else []
        position = (rng.uniform(-1, 4), 0.9, rng.uniform(-1, 4))
        batch.append(obs(object_id, object_id.split("|")[0], position=position, kind=kind, relations=relations,
                         movable=rng.random() < 0.8, stamp=stamp))
    return batch


@pytest.mark.parametrize("seed", range(4))
def test_incremental_deltas_equal_the_full_diff(seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"{rng.choice(TYPES)}|{k}" for k in range(40)]
    ltm = LongTermMemory()
    ltm.add_areas(grid(0, 3, 0, 3))
    messages = mc.SceneGraphMessages()
    messages.track(ltm.graph)
    mirror = SceneGraphMirror()
    mirror.apply_snapshot(mc.scene_graph_to_msg(ltm.graph, 0.0))
    base, edges = ltm.graph.graph["version"], mc.graph_edges(ltm.graph)
    for step in range(60):
        batch = _random_batch(rng, 1.0 + step, ids, rng.randint(1, 8))
        if step % 7 == 3:  # the same object twice in one batch: its first version is overwritten
            batch.append(batch[0])
        ltm.observe_many(batch)
        hint = [o.object_id for o in batch] if step % 11 else []  # sometimes no hint at all
        delta = messages.delta(ltm.graph, float(step), hint)
        full, edges = mc.scene_graph_delta_to_msg(ltm.graph, base, edges, float(step))
        base = full.to_version
        assert (delta.from_version, delta.to_version) == (full.from_version, full.to_version)
        assert {n.id for n in delta.upserted_nodes} == {n.id for n in full.upserted_nodes}
        assert set(delta.removed_node_ids) == set(full.removed_node_ids)
        assert _edges(delta.upserted_edges) == _edges(full.upserted_edges)
        assert _edges(delta.removed_edges) == _edges(full.removed_edges)
        assert mirror.apply_delta(delta)
    fresh = SceneGraphMirror()
    fresh.apply_snapshot(mc.scene_graph_to_msg(ltm.graph, 99.0))
    assert mirror.nodes == fresh.nodes and mirror.edges == fresh.edges == mc.graph_edges(ltm.graph)
    print(f"full diffs: {messages.full_deltas} of 60")
    assert messages.full_deltas < 20  # most deltas were incremental


def test_foreign_changes_fall_back_to_a_full_diff() -> None:
    ltm = LongTermMemory()
    ltm.add_areas(grid(0, 2, 0, 2))
    ltm.observe(obs("Table|1", position=(1.0, 0.4, 1.0), movable=False))
    messages = mc.SceneGraphMessages()
    messages.track(ltm.graph)
    ltm.add_areas(grid(5, 6, 5, 6))  # bumps the version on nodes nobody names in the hint
    ltm.observe(obs("Apple|1", position=(1.0, 0.9, 1.0), relations=[("on", "Table|1")], stamp=2.0))
    delta = messages.delta(ltm.graph, 2.0, ["Apple|1"])
    assert messages.full_deltas == 1
    new_areas = {n for n, d in ltm.graph.nodes(data=True) if d.get("level") == "area" and d["position"][0] > 4}
    assert new_areas and new_areas <= {n.id for n in delta.upserted_nodes}
    assert ("Apple|1", "Table|1", "on") in _edges(delta.upserted_edges)
    ltm.observe(obs("Apple|1", position=(1.1, 0.9, 1.0), kind=ObservationKind.MOVED, stamp=3.0))  # relation gone
    delta = messages.delta(ltm.graph, 3.0, ["Apple|1"])
    assert messages.full_deltas == 1 and ("Apple|1", "Table|1", "on") in _edges(delta.removed_edges)


def test_a_snapshot_resyncs_edges_changed_without_a_version_bump() -> None:
    ltm = LongTermMemory()
    ltm.add_areas(grid(0, 2, 0, 2))
    for name in ("Table|1", "Apple|1"):
        ltm.observe(obs(name, position=(1.0, 0.9, 1.0), stamp=1.0))
    messages = mc.SceneGraphMessages()
    messages.track(ltm.graph)
    ltm.graph.add_edge("Apple|1", "Table|1", relation="on")  # someone edits the graph behind the versions
    snapshot = messages.snapshot(ltm.graph, 1.0)
    assert ("Apple|1", "Table|1", "on") in _edges(snapshot.edges)
    ltm.observe(obs("Apple|1", position=(3.0, 0.9, 3.0), kind=ObservationKind.MOVED, stamp=2.0))
    delta = messages.delta(ltm.graph, 2.0, ["Apple|1"])
    assert ("Apple|1", "Table|1", "on") in _edges(delta.removed_edges)  # known since the snapshot


def test_track_restarts_the_baseline() -> None:
    ltm = LongTermMemory()
    ltm.observe(obs("Apple|1", stamp=1.0))
    messages = mc.SceneGraphMessages()
    messages.track(ltm.graph)
    replacement = LongTermMemory()
    replacement.observe(obs("Mug|1", stamp=1.0))
    replacement.observe(obs("Mug|2", stamp=1.0))
    messages.track(replacement.graph)
    assert messages.version == replacement.graph.graph["version"]
    replacement.observe(obs("Mug|1", position=(1.0, 0.9, 0.0), kind=ObservationKind.MOVED, stamp=2.0))
    delta = messages.delta(replacement.graph, 2.0, ["Mug|1"])
    assert [n.id for n in delta.upserted_nodes] == ["Mug|1"] and delta.from_version == messages.version - 1


# ------------------------------------------------------------------------------------- node publishing


def test_coalescer_stretches_its_interval_to_bound_the_publishing_duty(ros: None) -> None:
    import rclpy

    node = rclpy.create_node("coalescer_probe")
    published: list[float] = []

    def costly() -> None:  # ~20 ms of CPU, like a snapshot of a large graph
        published.append(time.monotonic())
        end = time.thread_time() + 0.02
        while time.thread_time() < end:
            pass

    try:
        with pytest.raises(ConfigError, match="max_duty"):
            Coalescer(node, 0.1, costly, max_duty=0.0)
        coalescer = Coalescer(node, 0.05, costly, max_duty=0.1)
        coalescer.mark()  # leading edge: at once
        assert len(published) == 1 and coalescer.cost_s >= 0.019
        assert coalescer.interval_s == pytest.approx(coalescer.cost_s / 0.1) and coalescer.interval_s >= 0.19
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        coalescer.mark()  # inside the stretched interval: folded into a later publication
        assert len(published) == 1
        deadline = time.monotonic() + 3.0
        while len(published) < 2 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        assert len(published) == 2
        assert published[1] - published[0] >= coalescer.interval_s * 0.9  # not at the 50 ms minimum
        coalescer.min_interval_s = 0.5  # a runtime parameter change reaches the timer too
        assert coalescer._timer.timer_period_ns == 500_000_000 and coalescer.interval_s >= 0.5
        coalescer.cost_s = 60.0  # however costly, a publication at least every max_interval_s
        assert coalescer.interval_s == coalescer.max_interval_s == 5.0
        executor.remove_node(node)
    finally:
        node.destroy_node()


def test_memory_nodes_queue_observations_deeper_than_events(ros: None, tmp_path) -> None:
    from karma_memory.nodes.short_term_memory_node import ShortTermMemoryNode

    common = [Parameter("warm_up", value=False), Parameter("markers.enabled", value=False)]
    node = ShortTermMemoryNode(parameter_overrides=common + [Parameter("observations_depth", value=333)])
    try:
        depths = {s.topic_name: s.qos_profile.depth for s in node.subscriptions
                  if s.msg_type.__name__ == "ObjectObservationArray"}
        assert depths == {"/observations": 333, "/short_term_memory/observations": 333}
    finally:
        node.destroy_node()
    with pytest.raises(ConfigError, match="observations_depth"):
        ShortTermMemoryNode(parameter_overrides=common + [Parameter("observations_depth", value=0)])
