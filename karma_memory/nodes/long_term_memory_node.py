"""Long-term memory node: observations in; latched scene graph, deltas and markers out; query/save/load/reset."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from typing import Any, Iterable

from karma_interfaces.msg import SceneGraph, SceneGraphDelta
from karma_interfaces.srv import QueryLongTermMemory
from std_msgs.msg import String
from visualization_msgs.msg import Marker

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import InvalidObservationError, KarmaMemoryError
from karma_memory.core.fleet import LtmBackend, make_backend
from karma_memory.core.fleet.settings import backend_settings, fleet_parameters, status_dict
from karma_memory.core.long_term import GRAPH_FILE, LongTermMemory, LtmConfig
from karma_memory.core.types import ObjectObservation, ObservationKind
from karma_memory.nodes import memory_conversions as mc
from karma_memory.nodes.common import Param, run_node
from karma_memory.nodes.fleet_link import RosFleetLink
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
    **{name: Param(default, text, read_only=True) for name, (default, text) in fleet_parameters().items()},
}


def _build(values: dict[str, Any]) -> tuple[LtmConfig, MarkerStyle]:
    check_memory_parameters(values)
    backend_settings(values)  # a bad ltm_backend / fleet.* value fails at start, with its name
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
        self._start_backend()  # after the start-up load: the backend continues from the loaded graph
        self.get_logger().info(f"long-term memory ready: {len(self.memory)} objects, "
                               f"{len(sg.area_ids(self.memory.graph))} areas, version {self.change_token()}, "
                               f"backend {self.backend.name}")

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
        self.backend.observe(observations)  # local: observe_many; chroma: also queued for the fleet
        if self.change_token() == before:
            return False
        self._publish_delta(o.object_id for o in observations)
        return True

    def publish_state(self) -> None:
        self.graph_pub.publish(self.messages.snapshot(self.memory.graph, self._now()))

    def render_markers(self) -> list[Marker]:
        return scene_graph_markers(self.memory.graph, self.style, 0.0, self.marker_cache)  # stamp 0: latest tf

    def reset_memory(self) -> str:
        self.memory.reset(keep_areas=True)
        self.backend.resync()
        if self.backend.name == "local":
            return "objects forgotten; areas kept"
        return "objects forgotten here (the fleet's records stay on the server; new changes are merged); areas kept"

    def after_load(self) -> None:
        """Pull the fleet again from the loaded graph's own watermarks.

        At start-up the backend does not exist yet: :meth:`_start_backend` builds it from the loaded graph.
        """
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.resync()

    def replaced(self) -> None:
        self.messages.track(self.memory.graph)  # deltas count from the new graph
        self.marker_cache.clear()
        super().replaced()

    def on_params(self, config: tuple[LtmConfig, MarkerStyle], changed: dict[str, Any]) -> None:
        self.memory.config, self.style = config
        self.marker_cache.clear()

    def close(self) -> None:
        """Send what the fleet outbox holds (briefly), stop syncing, then save as every memory node does."""
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
        super().close()

    # ---- fleet backend (ltm_backend, fleet.*) -------------------------------------------------------
    def _start_backend(self) -> None:
        name, config, node = backend_settings(self.params.values, self.get_namespace())
        log = self.get_logger()
        if config is not None and not config.outbox and self.directory is None:
            outbox = f"{tempfile.mkdtemp(prefix='karma_fleet_')}/fleet_outbox.sqlite3"
            config = dataclasses.replace(config, outbox=outbox)
            log.warning(f"fleet: no memory_dir, so the outbox is {outbox}: queued writes do not survive a restart")
        before = self.change_token()
        self.backend: LtmBackend = make_backend(name, self.memory, config, logger=log)
        self._backlog_limit = 10 * config.batch_size if config is not None else 0
        self._status_seen: tuple[bool, bool] | None = None
        self.status_pub = self.create_publisher(String, "long_term_memory/fleet_status", LATCHED)
        if config is not None:
            link = ""
            if node["live_topic"]:
                self.backend.link = RosFleetLink(self, node["live_topic"], self.backend.receive)
                link = f", live on {node['live_topic']}"
            log.info(f"fleet: robot {config.robot_id!r} shares its memory through chroma server "
                     f"{config.host}:{config.port}, collection {config.collection!r}{link}")
            self.create_timer(node["poll_interval_s"], self._poll_fleet)
            self.create_timer(node["status_interval_s"], self._publish_fleet_status)
        if self.change_token() != before:  # the outbox held writes newer than the saved graph
            self.replaced()
        self._publish_fleet_status()

    def _poll_fleet(self) -> None:
        """Merge what other robots wrote (fetched by the backend's pull thread) and publish it like a local change."""
        before = self.change_token()
        changes = self.backend.poll()
        if self.change_token() != before:
            self._publish_delta(c.object_id for c in changes)
            self.changed()

    def _publish_fleet_status(self) -> None:
        """Latched JSON of the backend's status; a log line when the connection or the backlog trend changes."""
        status = self.backend.status()
        seen = (status.online, bool(self._backlog_limit) and status.pending >= self._backlog_limit)
        if self._status_seen is not None and seen != self._status_seen:
            self.get_logger().info(f"fleet: {'online' if status.online else 'OFFLINE'}, {status.pending} writes "
                                   f"queued{' (backlog growing)' if seen[1] else ''}, {status.pushed} pushed, "
                                   f"{status.merged} merged from other robots")
        self._status_seen = seen
        self.status_pub.publish(String(data=json.dumps(status_dict(status), sort_keys=True)))

    # ---- own topics and services --------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_delta(self, touched: Iterable[str] = ()) -> None:
        """Publish what changed since the last delta; ``touched`` (ids just changed) keeps it incremental."""
        self.delta_pub.publish(self.messages.delta(self.memory.graph, self._now(), touched))

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
