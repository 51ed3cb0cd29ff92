"""MarkerArray rendering of the scene graph and the short-term memory (pure functions, no node)."""

from __future__ import annotations

import dataclasses

import pytest
from visualization_msgs.msg import Marker

from helpers import grid, obs
from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import ConfigError
from karma_memory.core.long_term import LongTermMemory
from karma_memory.core.short_term import MemoryUnit
from karma_memory.core.types import ObservationKind
from karma_memory.nodes.markers import (
    MarkerStyle,
    delete_all,
    marker_array,
    marker_keys,
    scene_graph_markers,
    stable_id,
    stm_markers,
    type_color,
)


@pytest.fixture
def memory() -> LongTermMemory:
    ltm = LongTermMemory()
    ltm.add_areas(grid(0, 3, 0, 3))
    ltm.observe(obs("Table|1", position=(1.0, 0.4, 1.0), movable=False))
    ltm.observe(obs("Fridge|1", position=(2.5, 0.9, 2.5), movable=False))
    ltm.observe(obs("Apple|1", position=(1.0, 0.9, 1.0), relations=[("on", "Table|1")], states=["sliced"]))
    ltm.observe(obs("Egg|1", position=(2.5, 0.9, 2.5), relations=[("inside", "Fridge|1")]))
    return ltm


def _by_ns(markers: list[Marker], ns: str) -> list[Marker]:
    return [m for m in markers if m.ns == ns]


def test_scene_graph_markers_cover_objects_areas_and_edges(memory: LongTermMemory) -> None:
    markers = scene_graph_markers(memory.graph, stamp=2.5)
    objects, labels = _by_ns(markers, "objects"), _by_ns(markers, "object_labels")
    assert len(objects) == len(labels) == 4
    assert all(m.type == Marker.CUBE and m.action == Marker.ADD and m.header.frame_id == "map" for m in objects)
    assert len(_by_ns(markers, "areas")) == len(sg.area_ids(memory.graph)) == len(_by_ns(markers, "area_labels"))
    apple = next(m for m in labels if m.text.startswith("Apple"))
    assert apple.text == "Apple (sliced)"
    # THOR (x=1, y=0.9, z=1) is map (x=z=1, y=-x=-1, z=y=0.9); the label floats above the box
    box = next(m for m in objects if m.id == stable_id("Apple|1", set()))
    assert (box.pose.position.x, box.pose.position.y, box.pose.position.z) == pytest.approx((1.0, -1.0, 0.9))
    assert apple.pose.position.z > box.pose.position.z
    assert box.header.stamp.sec == 2 and box.header.stamp.nanosec == 500_000_000
    (nav,) = _by_ns(markers, "navigability")
    navigable = [(u, v) for u, v, d in memory.graph.edges(data=True) if d["relation"] == sg.NAVIGABLE]
    assert nav.type == Marker.LINE_LIST and len(nav.points) == len(navigable)  # one segment per pair, 2 points
    (rel,) = _by_ns(markers, "relations")
    assert len(rel.points) == len(rel.colors) == 4  # apple-on-table, egg-inside-fridge
    assert rel.colors[0] != rel.colors[2]  # on and inside differ


def test_colours_are_stable_per_type_and_ids_unique(memory: LongTermMemory) -> None:
    assert type_color("Apple") == type_color("Apple") and type_color("Apple") != type_color("Egg")
    markers = scene_graph_markers(memory.graph)
    for ns in ("objects", "areas", "object_labels"):
        ids = [m.id for m in _by_ns(markers, ns)]
        assert len(ids) == len(set(ids)) and all(0 <= i < 2**31 for i in ids)
    used: set[int] = set()
    first = stable_id("x", used)
    assert stable_id("x", used) == first + 1  # a clash probes to the next free id
    again = scene_graph_markers(memory.graph)
    assert marker_keys(again) == marker_keys(markers)


def test_stale_markers_are_deleted(memory: LongTermMemory) -> None:
    before = scene_graph_markers(memory.graph)
    shown = marker_keys(before)
    memory.observe(obs("Egg|1", kind=ObservationKind.REMOVED, stamp=5.0))
    after = scene_graph_markers(memory.graph)
    array = marker_array(after, shown)
    deletes = [m for m in array.markers if m.action == Marker.DELETE]
    egg = stable_id("Egg|1", set())
    assert {(m.ns, m.id) for m in deletes} == {("objects", egg), ("object_labels", egg)}
    assert array.markers[len(deletes):] == after  # deletions come first, then the full render
    cleared = marker_array(after, shown, clear=True)
    assert cleared.markers[0].action == Marker.DELETEALL and len(cleared.markers) == len(after) + 1
    assert delete_all().action == Marker.DELETEALL


def test_stm_markers_list_units_by_recency() -> None:
    units = [MemoryUnit("Apple|1", "Apple", (0.0, 1.0, 0.0), ("cleaned",), last_seen=1.0, hits=3),
             MemoryUnit("Mug|1", "Mug", (1.0, 1.0, 0.0), (), last_seen=2.0)]
    markers = stm_markers(units, MarkerStyle(stm_radius=0.3))
    spheres, labels = _by_ns(markers, "stm_units"), _by_ns(markers, "stm_labels")
    assert [m.type for m in spheres] == [Marker.SPHERE] * 2 and spheres[0].scale.x == pytest.approx(0.6)
    assert [m.text for m in labels] == ["Mug hits=0", "Apple hits=3 (cleaned)"]
    assert stm_markers([]) == []
    assert marker_array([], {("stm_units", 1)}).markers[0].action == Marker.DELETE


def test_caches_reuse_unchanged_markers_and_match_a_fresh_render(memory: LongTermMemory) -> None:
    cache: dict = {}
    first = scene_graph_markers(memory.graph, cache=cache)
    assert first == scene_graph_markers(memory.graph)
    memory.observe(obs("Apple|1", position=(2.0, 0.9, 2.0), kind=ObservationKind.MOVED, stamp=9.0))
    again = scene_graph_markers(memory.graph, cache=cache)
    assert again == scene_graph_markers(memory.graph)  # the moved apple was re-rendered
    table = next(m for m in again if m.ns == "objects" and m.id == stable_id("Table|1", set()))
    assert any(m is table for m in first), "an unchanged object reuses its marker"
    unit = MemoryUnit("Apple|1", "Apple", (0.0, 1.0, 0.0), last_seen=1.0)
    units_cache: dict = {}
    a = stm_markers([unit], cache=units_cache)
    b = stm_markers([unit], cache=units_cache)
    assert a == b and a[0] is b[0]
    c = stm_markers([dataclasses.replace(unit, hits=1)], cache=units_cache)
    assert c[1].text == "Apple hits=1" and set(units_cache) == {dataclasses.replace(unit, hits=1)}


@pytest.mark.parametrize("bad", [{"text_scale": 0.0}, {"object_alpha": 1.5}, {"line_width": float("nan")},
                                 {"frame_id": ""}, {"area_radius": -1.0}])
def test_style_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        MarkerStyle.from_mapping(bad)
    assert MarkerStyle.from_mapping({"enabled": True, "text_scale": 0.2}).text_scale == 0.2
