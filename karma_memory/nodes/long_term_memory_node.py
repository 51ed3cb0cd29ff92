"""Long-term memory node: observations in; latched scene graph, deltas and markers out; query/save/load/reset."""

from __future__ import annotations

import dataclasses
from typing import Any

from karma_interfaces.msg import SceneGraph, SceneGraphDelta
from karma_interfaces.srv import QueryLongTermMemory
from visualization_msgs.msg import Marker

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import InvalidObservationError, KarmaMemoryError
from karma_memory.core.long_term import GRAPH_FILE, LongTermMemory, LtmConfig
from karma_memory.core.types import ObjectObservation, ObservationKind
from karma_memory.nodes import memory_conversions as mc
from karma_memory.nodes.common import Param, run_node
from karma_memory.nodes.markers import MarkerStyle, scene_graph_markers
from karma_memory.nodes.memory_base import MEMORY_PARAMETERS, MemoryNode, check_memory_parameters
from karma_memory.nodes.qos import EVENTS, LATCHED

__all__ = ["PARAMETERS", "LongTermMemoryNode", "main"]

PARAMETERS: dict[str, Param] = {
    "scene": Param("", "iTHOR scene (FloorPlanN) whose map builds the graph when no saved memory exists; '' = empty",
                   read_only=True),
    "scene_objects": Param(True, "with scene: also pre-fill the scene's objects (the paper's prior exploration)",
                           read_only=True),
    **MEMORY_PARAMETERS,
    **{f.name: Param(f.default, f"LtmConfig.{f.name} (see karma_memory.core.long_term)",
                     read_only=f.name in ("area_spacing", "grid_size")) for f in dataclasses.fields(LtmConfig)},
    **{f"markers.{f.name}": Param(f.default, f"MarkerStyle.{f.name}") for f in dataclasses.fields(MarkerStyle)
       if f.name != "stm_radius"},
}


def _build(values: dict[str, Any]) -> tuple[LtmConfig, MarkerStyle]:
    check_memory_parameters(values)
    style = MarkerStyle.from_mapping({k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("markers.")})
    return LtmConfig(**{f.name: values[f.name] for f in dataclasses.fields(LtmConfig)}), style


class LongTermMemoryNode(MemoryNode):
    """Owns a LongTermMemory (3D scene graph) and serves it over topics and services."""

    file_name, uses_chroma = GRAPH_FILE, True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("long_term_memory", PARAMETERS, _build, **kwargs)
        config, self.style = self.params.config
        self.memory = LongTermMemory(config, directory=self.directory)
        self.messages, self.marker_cache = mc.SceneGraphMessages(), {}  # reuse what did not change
        self.graph_pub = self.create_publisher(SceneGraph, "scene_graph", LATCHED)
        self.delta_pub = self.create_publisher(SceneGraphDelta, "scene_graph/delta", EVENTS)
        self.create_service(QueryLongTermMemory, "long_term_memory/query", self._on_query)
        self.start()
        self.get_logger().info(f"long-term memory ready: {len(self.memory)} objects, "
                               f"{len(sg.area_ids(self.memory.graph))} areas, version {self.change_token()}")

    # ---- MemoryNode hooks ---------------------------------------------------------------------------
    def loaded(self) -> bool:
        return len(self.memory) > 0 or bool(sg.area_ids(self.memory.graph))

    def start_fresh(self) -> None:
        scene = self.params["scene"]
        if scene:
            self.memory = LongTermMemory.from_scene(scene, config=self.memory.config, directory=self.directory)
            if not self.params["scene_objects"]:
                self.memory.reset(keep_areas=True)

    def change_token(self) -> int:
        return int(self.memory.graph.graph["version"])

    def apply(self, observations: list[ObjectObservation]) -> bool:
        graph = self.memory.graph
        for obs in observations:  # check the whole batch first: a rejected message leaves memory unchanged
            level = graph.nodes[obs.object_id].get("level") if obs.object_id in graph else sg.OBJECT
            if level != sg.OBJECT:
                raise InvalidObservationError(f"object id {obs.object_id!r} names a {level} node")
            if obs.kind is ObservationKind.REMOVED and obs.object_id not in graph:
                self.get_logger().warning(f"REMOVED for unknown object id {obs.object_id!r} ignored")
        before = self.change_token()
        self.memory.observe_many(observations)
        if self.change_token() == before:
            return False
        self._publish_delta()
        return True

    def publish_state(self) -> None:
        self.graph_pub.publish(self.messages.snapshot(self.memory.graph, self._now()))

    def render_markers(self) -> list[Marker]:
        return scene_graph_markers(self.memory.graph, self.style, 0.0, self.marker_cache)  # stamp 0: latest tf

    def reset_memory(self) -> str:
        self.memory.reset(keep_areas=True)
        return "objects forgotten; areas kept"

    def replaced(self) -> None:
        self.messages.clear()
        self.marker_cache.clear()
        self.delta_version, self.delta_edges = self.change_token(), mc.graph_edges(self.memory.graph)
        super().replaced()

    def on_params(self, config: tuple[LtmConfig, MarkerStyle], changed: dict[str, Any]) -> None:
        self.memory.config, self.style = config
        self.marker_cache.clear()

    # ---- own topics and services --------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_delta(self) -> None:
        delta, self.delta_edges = self.messages.delta(self.memory.graph, self.delta_version, self.delta_edges,
                                                      self._now())
        self.delta_version = delta.to_version
        self.delta_pub.publish(delta)

    def _on_query(self, request: QueryLongTermMemory.Request,
                  response: QueryLongTermMemory.Response) -> QueryLongTermMemory.Response:
        k = int(request.max_results) or None
        try:
            if request.kind == request.RANK_AREAS:
                response.areas = [mc.area_score_to_msg(a) for a in self.memory.rank_areas(request.object_type, k=k)]
            elif request.kind == request.GET_OBJECT:
                response.objects = [mc.graph_node_to_msg(request.object_id, self.memory.get_object(request.object_id))]
            elif request.kind == request.FIND_BY_TYPE:
                ids = self.memory.objects_of_type(request.object_type)[:k]
                response.objects = [self.messages.node(i, self.memory.graph.nodes[i]) for i in ids]
            else:
                raise InvalidObservationError(f"unknown query kind {request.kind}; expected 0, 1 or 2")
        except KarmaMemoryError as err:
            response.success, response.message = False, str(err)
            return response
        response.success, response.message = True, f"{len(response.areas) + len(response.objects)} results"
        return response


def main(args: list[str] | None = None) -> int:
    """Console script ``long_term_memory``."""
    return run_node(LongTermMemoryNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
