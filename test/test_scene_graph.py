"""Scene graph: areas, navigability, incremental updates with provenance, prompt text, invariants."""

from __future__ import annotations

import networkx as nx
import pytest

from helpers import grid, obs
from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import InvalidObservationError, UnknownObjectError
from karma_memory.core.types import ObservationKind


def two_rooms():
    """Two 3 m × 3 m rooms joined by a one-cell doorway at z = 1.5."""
    import numpy as np

    left = grid(0.0, 2.75, 0.0, 2.75)
    right = grid(4.0, 6.75, 0.0, 2.75)
    door = np.array([[3.0, 1.5], [3.25, 1.5], [3.5, 1.5], [3.75, 1.5]])
    return np.vstack([left, door, right])


def test_areas_cover_reachable_space_and_sit_on_reachable_cells():
    graph = sg.new_scene_graph("two_rooms")
    cells = two_rooms()
    areas = sg.add_areas(graph, cells, spacing=1.5)
    assert len(areas) >= 8
    reachable = {(round(x, 2), round(z, 2)) for x, z in cells}
    for area in areas:
        x, y, z = graph.nodes[area]["position"]
        assert (round(x, 2), round(z, 2)) in reachable
        assert graph.has_edge("floor_0", area)
    assert sg.validate_graph(graph) == []


def test_navigability_edges_follow_reachable_paths():
    graph = sg.new_scene_graph()
    sg.add_areas(graph, two_rooms(), spacing=1.5)
    nav = nx.Graph((u, v) for u, v, d in graph.edges(data=True) if d["relation"] == "navigable")
    assert nx.is_connected(nav), "the doorway must connect the two rooms"
    # no edge jumps across the wall between x=3 and x=4 except through the doorway tiles
    for u, v in nav.edges:
        (x1, _, z1), (x2, _, z2) = graph.nodes[u]["position"], graph.nodes[v]["position"]
        assert abs(x1 - x2) <= 3.1 and abs(z1 - z2) <= 3.1


def test_walls_block_navigability():
    import numpy as np

    graph = sg.new_scene_graph()
    left, right = grid(0.0, 1.25, 0.0, 1.25), grid(1.75, 2.75, 0.0, 1.25)  # a gap of one cell at x=1.5
    sg.add_areas(graph, np.vstack([left, right]), spacing=1.5)
    nav = [(u, v) for u, v, d in graph.edges(data=True) if d["relation"] == "navigable"]
    assert nav == []


def test_add_move_state_remove_with_provenance_and_versions():
    graph = sg.new_scene_graph()
    sg.add_areas(graph, grid(0, 3, 0, 3), spacing=1.5)
    sg.apply_observation(graph, obs("Fridge|1", position=(0.2, 0.9, 0.2), movable=False, stamp=1))
    change = sg.apply_observation(graph, obs("Apple|1", position=(2.8, 0.9, 2.8), stamp=2))
    assert change.kind == "added" and change.area_id is not None
    v_after_add = graph.graph["version"]
    change = sg.apply_observation(graph, obs("Apple|1", position=(0.2, 0.9, 0.2), relations=[("inside", "Fridge|1")],
                                             kind=ObservationKind.MOVED, stamp=3, source="skill:PutObject"))
    assert change.kind == "moved"
    apple = sg.get_object(graph, "Apple|1")
    assert apple["area"] == graph.nodes["Fridge|1"]["area"]
    assert graph.edges["Apple|1", "Fridge|1"]["relation"] == "inside"
    assert [h["source"] for h in apple["history"]] == ["test", "skill:PutObject"]
    change = sg.apply_observation(graph, obs("Apple|1", position=(0.2, 0.9, 0.2), states=["cleaned"], stamp=4))
    assert change.kind == "state_changed" and sg.get_object(graph, "Apple|1")["states"] == ["cleaned"]
    changed, removed = sg.changes_since(graph, v_after_add)
    assert changed == ["Apple|1"] and removed == []
    sg.apply_observation(graph, obs("Apple|1", kind=ObservationKind.REMOVED, stamp=5))
    assert "Apple|1" not in graph
    assert sg.changes_since(graph, v_after_add)[1] == ["Apple|1"]
    assert sg.validate_graph(graph) == []


def test_stale_observation_is_ignored_newest_wins():
    graph = sg.new_scene_graph()
    sg.add_areas(graph, grid(0, 3, 0, 3))
    sg.apply_observation(graph, obs("Mug|1", position=(1, 1, 1), stamp=10))
    change = sg.apply_observation(graph, obs("Mug|1", position=(2, 1, 2), stamp=5))
    assert change.kind == "ignored"
    assert sg.get_object(graph, "Mug|1")["position"] == (1.0, 1.0, 1.0)


def test_relation_to_unseen_receptacle_links_when_it_appears():
    graph = sg.new_scene_graph()
    sg.add_areas(graph, grid(0, 3, 0, 3))
    sg.apply_observation(graph, obs("Apple|1", relations=[("on", "Plate|1")]))
    assert not graph.has_edge("Apple|1", "Plate|1")
    sg.apply_observation(graph, obs("Plate|1"))
    assert graph.edges["Apple|1", "Plate|1"]["relation"] == "on"


def test_unknown_object_and_wrong_level_errors_are_clear():
    graph = sg.new_scene_graph()
    sg.add_areas(graph, grid(0, 1, 0, 1))
    with pytest.raises(UnknownObjectError, match="Ghost"):
        sg.get_object(graph, "Ghost|1")
    with pytest.raises(InvalidObservationError, match="area"):
        sg.apply_observation(graph, obs("area_0", object_type="Apple"))
    with pytest.raises(UnknownObjectError):
        sg.add_areas(graph, grid(0, 1, 0, 1), floor="floor_9")


def test_prompt_text_follows_the_paper_format():
    graph = sg.new_scene_graph()
    sg.add_areas(graph, grid(0, 3, 0, 1.25), spacing=1.5)
    sg.apply_observation(graph, obs("Bed|1", position=(0.3, 0.5, 0.3), movable=False))
    sg.apply_observation(graph, obs("Book|1", position=(0.3, 0.6, 0.3), relations=[("on", "Bed|1")]))
    text = sg.to_prompt(graph)
    assert text.startswith("Topological graph:")
    assert "{name: area_0, type: Area, contains: [Bed], adjacent nodes: [area_1], position: (" in text
    assert "Book on Bed at (0.30, 0.60, 0.30) [Book|1]" in text


def test_node_link_round_trip_restores_tuples():
    graph = sg.new_scene_graph("s")
    sg.add_areas(graph, grid(0, 2, 0, 2))
    sg.apply_observation(graph, obs("Apple|1", position=(1, 1, 1)))
    back = sg.graph_from_data(sg.graph_to_data(graph))
    assert back.nodes["Apple|1"]["position"] == (1.0, 1.0, 1.0)
    assert nx.utils.graphs_equal(back, graph)


def test_malformed_graph_data_is_rejected():
    with pytest.raises(InvalidObservationError):
        sg.graph_from_data({"nodes": "not a list"})
    data = sg.graph_to_data(sg.new_scene_graph())
    data["nodes"].append({"id": "x", "level": "planet"})
    with pytest.raises(InvalidObservationError, match="unknown level"):
        sg.graph_from_data(data)
