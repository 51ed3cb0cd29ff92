"""AgentMemory over ROS: the memory nodes' services and topics behind the interface the agent and planner use.

Reads of the scene graph come from a local mirror kept by the latched ``scene_graph`` snapshot and
the ``scene_graph/delta`` stream (it also remembers each object's earlier receptacles, for "put it
back"); area ranking and short-term memory reads are service calls. Writes are observations: the
agent's interaction reports go to ``observations`` (both memories), a short-term-only forget goes to
``short_term_memory/observations``. Each write waits for the memory nodes' ``*/processed``
acknowledgement, so the next read sees it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Iterable

import networkx as nx

from karma_interfaces.msg import ObjectObservationArray, SceneGraph, SceneGraphDelta
from karma_interfaces.srv import QueryLongTermMemory, QueryShortTermMemory
from rclpy.callback_groups import CallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import Header

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import KarmaMemoryError
from karma_memory.core.long_term import AreaScore
from karma_memory.core.memory_access import ObjectRecord
from karma_memory.core.short_term import MemoryUnit
from karma_memory.core.types import ObjectObservation, ObservationKind
from karma_memory.nodes import conversions as cv
from karma_memory.nodes import memory_conversions as mc
from karma_memory.nodes.qos import EVENTS, LATCHED
from karma_memory.nodes.ros_executor import wait_future

__all__ = ["SceneGraphMirror", "RosAgentMemory"]

_PARENT_RELATIONS = ("on", "inside")


class SceneGraphMirror:
    """A thread-safe local copy of the long-term memory's scene graph, fed by snapshots and deltas (no ROS I/O).

    Nodes are kept as ObjectRecord-like dicts in the THOR frame; ``previous_parents`` remembers the
    receptacles each object left while the mirror was watching.
    """

    def __init__(self) -> None:
        self.version = -1
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: set[mc.EdgeKey] = set()
        self.previous_parents: dict[str, list[str]] = {}
        self._parents: dict[str, str] = {}
        self._lock = threading.Condition()

    @staticmethod
    def _record(msg: Any) -> dict[str, Any]:
        return {"id": msg.id, "level": mc.LEVEL_FROM_MSG.get(msg.level, "object"), "type": msg.object_type,
                "position": cv.point_to_thor(msg.position, f"position of {msg.id!r}"), "movable": bool(msg.movable),
                "states": list(msg.states), "area": msg.parent_id or None,
                "last_seen": cv.stamp_to_seconds(msg.last_seen)}

    def _reparent(self) -> None:
        parents: dict[str, str] = {}
        for u, v, relation in sorted(self.edges):
            if relation in _PARENT_RELATIONS:
                parents.setdefault(u, v)
        for obj, old in self._parents.items():
            if parents.get(obj) != old and obj in self.nodes:
                history = self.previous_parents.setdefault(obj, [])
                if not history or history[-1] != old:
                    history.append(old)
        self._parents = parents

    def apply_snapshot(self, msg: SceneGraph) -> None:
        """Replace the mirror with a full snapshot (any version: a reload may go back)."""
        nodes = {n.id: self._record(n) for n in msg.nodes}
        with self._lock:
            self.nodes, self.version = nodes, int(msg.version)
            self.edges = {(e.source, e.target, e.relation) for e in msg.edges}
            self._reparent()
            self._lock.notify_all()

    def apply_delta(self, msg: SceneGraphDelta) -> bool:
        """Apply a delta that starts at the mirror's version; False (nothing changed) when it does not."""
        upserted = {n.id: self._record(n) for n in msg.upserted_nodes}
        with self._lock:
            if int(msg.from_version) != self.version:
                return False
            self.nodes.update(upserted)
            for node_id in msg.removed_node_ids:
                self.nodes.pop(node_id, None)
            gone = set(msg.removed_node_ids)
            self.edges -= {(e.source, e.target, e.relation) for e in msg.removed_edges}
            self.edges = {e for e in self.edges if e[0] not in gone and e[1] not in gone}
            self.edges |= {(e.source, e.target, e.relation) for e in msg.upserted_edges}
            self.version = int(msg.to_version)
            self._reparent()
            self._lock.notify_all()
            return True

    def wait_for_version(self, version: int, timeout_s: float) -> bool:
        """Block until the mirror reached ``version`` (e.g. the one a memory node acknowledged)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.version < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def record(self, object_id: str) -> ObjectRecord | None:
        """The ObjectRecord of one object ({id, type, position, movable, states, parent, area, last_seen})."""
        with self._lock:
            node = self.nodes.get(object_id)
            if node is None or node["level"] != "object":
                return None
            return {k: v for k, v in node.items() if k != "level"} | {"parent": self._parents.get(object_id)}

    def objects_of_type(self, object_type: str) -> list[ObjectRecord]:
        """Records of a type, most recently seen first."""
        with self._lock:
            ids = [n for n, d in self.nodes.items() if d["level"] == "object" and d["type"] == object_type]
        records = [r for r in (self.record(i) for i in ids) if r is not None]
        return sorted(records, key=lambda r: -r["last_seen"])

    def previous_parent(self, object_id: str) -> str | None:
        """The receptacle the object was in or on before its current one, as far as the mirror saw."""
        with self._lock:
            current = self._parents.get(object_id)
            return next((p for p in reversed(self.previous_parents.get(object_id, [])) if p != current), None)

    def area_ids(self) -> list[str]:
        """Area ids in numeric order."""
        with self._lock:
            areas = [n for n, d in self.nodes.items() if d["level"] == "area"]
        return sorted(areas, key=lambda a: (len(a), a))

    def to_networkx(self) -> nx.DiGraph:
        """The mirror as a core scene graph (enough for ``scene_graph.to_prompt``)."""
        graph = nx.DiGraph()
        with self._lock:
            for node_id, d in self.nodes.items():
                graph.add_node(node_id, level=d["level"], object_type=d["type"], position=d["position"],
                               movable=d["movable"], states=list(d["states"]), area=d["area"],
                               last_seen=d["last_seen"])
            for u, v, relation in self.edges:
                if u in graph and v in graph:
                    graph.add_edge(u, v, relation=relation)
        return graph

    def object_types(self) -> list[str]:
        """Object types present."""
        with self._lock:
            return sorted({d["type"] for d in self.nodes.values() if d["level"] == "object" and d["type"]})


class RosAgentMemory:
    """karma_memory.core.memory_access.AgentMemory implemented over the memory nodes.

    Args:
        node: node to create clients, publishers and subscriptions on (spun by a MultiThreadedExecutor).
        use_ltm, use_stm: which memories the agent may use (the paper's ablations).
        timeout_s: longest wait for a service answer.
        sync_timeout_s: longest wait for a memory node to acknowledge a write.
    """

    def __init__(self, node: Node, use_ltm: bool = True, use_stm: bool = True, timeout_s: float = 10.0,
                 sync_timeout_s: float = 2.0, callback_group: CallbackGroup | None = None) -> None:
        self._node, self.use_ltm, self.use_stm = node, use_ltm, use_stm
        self.timeout_s, self.sync_timeout_s = timeout_s, sync_timeout_s
        group = callback_group or ReentrantCallbackGroup()
        self.mirror = SceneGraphMirror()
        self._acks: dict[str, OrderedDict[int, str]] = {}
        self._ack_lock = threading.Condition()
        self._pub = node.create_publisher(ObjectObservationArray, "observations", EVENTS)
        self._stm_pub = node.create_publisher(ObjectObservationArray, "short_term_memory/observations", EVENTS)
        node.create_subscription(SceneGraph, "scene_graph", self._on_snapshot, LATCHED, callback_group=group)
        node.create_subscription(SceneGraphDelta, "scene_graph/delta", self._on_delta, EVENTS, callback_group=group)
        for memory in ("long_term_memory", "short_term_memory"):
            node.create_subscription(Header, f"{memory}/processed", lambda m, k=memory: self._on_ack(k, m), EVENTS,
                                     callback_group=group)
        self._ltm = node.create_client(QueryLongTermMemory, "long_term_memory/query", callback_group=group)
        self._stm = node.create_client(QueryShortTermMemory, "short_term_memory/query", callback_group=group)

    # ---- subscriptions ------------------------------------------------------------------------------
    def _on_snapshot(self, msg: SceneGraph) -> None:
        try:
            self.mirror.apply_snapshot(msg)
        except KarmaMemoryError as err:
            self._node.get_logger().error(f"ignored malformed scene graph: {err}")

    def _on_delta(self, msg: SceneGraphDelta) -> None:
        try:
            self.mirror.apply_delta(msg)  # a gap is closed by the next snapshot
        except KarmaMemoryError as err:
            self._node.get_logger().error(f"ignored malformed scene graph delta: {err}")

    def _on_ack(self, memory: str, msg: Header) -> None:
        """Remember which message stamps each memory acknowledged (the last few hundred) and its token."""
        with self._ack_lock:
            acked = self._acks.setdefault(memory, OrderedDict())
            acked[msg.stamp.sec * 1_000_000_000 + msg.stamp.nanosec] = msg.frame_id
            while len(acked) > 512:
                acked.popitem(last=False)
            self._ack_lock.notify_all()

    # ---- plumbing -----------------------------------------------------------------------------------
    def _call(self, client: Any, request: Any) -> Any | None:
        """One service round trip; None (logged) when the service is missing, fails or times out."""
        if not client.wait_for_service(timeout_sec=self.timeout_s):
            self._node.get_logger().error(f"service {client.srv_name} not available")
            return None
        response = wait_future(client.call_async(request), self.timeout_s)
        if response is None:
            self._node.get_logger().error(f"service {client.srv_name} timed out")
        elif not response.success:
            self._node.get_logger().warning(f"{client.srv_name}: {response.message}")
        return response

    def _publish(self, observations: list[ObjectObservation], stm_only: bool = False) -> None:
        """Publish a write and wait until the memories in use processed it (and the mirror caught up)."""
        stamp = self._node.get_clock().now().nanoseconds * 1e-9
        msg = cv.observations_to_msg(observations, stamp)
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        (self._stm_pub if stm_only else self._pub).publish(msg)
        waiting = [m for m, used in (("long_term_memory", self.use_ltm and not stm_only),
                                     ("short_term_memory", self.use_stm)) if used]
        deadline = time.monotonic() + self.sync_timeout_s
        with self._ack_lock:
            while any(stamp_ns not in self._acks.get(m, {}) for m in waiting):
                left = deadline - time.monotonic()
                if left <= 0:
                    self._node.get_logger().warning(f"memories {waiting} did not acknowledge a write in time")
                    return
                self._ack_lock.wait(left)
            ltm_version = self._acks.get("long_term_memory", {}).get(stamp_ns, "")
        if "long_term_memory" in waiting and ltm_version.isdigit():
            self.mirror.wait_for_version(int(ltm_version), max(0.0, deadline - time.monotonic()))

    # ---- AgentMemory --------------------------------------------------------------------------------
    def observe(self, observations: Iterable[ObjectObservation]) -> None:
        """Report the agent's interactions (source ``skill:*``); what sensors saw reaches the memories directly."""
        interactions = [o for o in observations if o.source.startswith("skill:")]
        if interactions and (self.use_ltm or self.use_stm):
            self._publish(interactions)

    def _stm_query(self, **fields: Any) -> list[MemoryUnit]:
        if not self.use_stm:
            return []
        response = self._call(self._stm, QueryShortTermMemory.Request(**fields))
        if response is None or not response.success:
            return []
        return [mc.memory_unit_from_msg(u) for u in response.units]

    def stm_units(self) -> list[MemoryUnit]:
        return self._stm_query()

    def stm_recall(self, query: str, top_k: int = 3) -> list[MemoryUnit]:
        return self._stm_query(query=query, top_k=top_k) if query.strip() else []

    def stm_use(self, object_id: str) -> None:
        self._stm_query(object_id=object_id)

    def stm_forget(self, object_id: str) -> None:
        if self.use_stm:
            unit = next((u for u in self.stm_units() if u.object_id == object_id), None)
            if unit is not None:
                self._publish([ObjectObservation(object_id, unit.object_type, unit.position, ObservationKind.REMOVED,
                                                 stamp=unit.last_seen, source="agent")], stm_only=True)

    def ltm_objects_of_type(self, object_type: str) -> list[ObjectRecord]:
        return self.mirror.objects_of_type(object_type) if self.use_ltm else []

    def ltm_object(self, object_id: str) -> ObjectRecord | None:
        return self.mirror.record(object_id) if self.use_ltm else None

    def ltm_previous_parent(self, object_id: str) -> str | None:
        return self.mirror.previous_parent(object_id) if self.use_ltm else None

    def ltm_rank_areas(self, object_type: str, k: int | None = None) -> list[AreaScore]:
        if not self.use_ltm:
            return []
        request = QueryLongTermMemory.Request(kind=QueryLongTermMemory.Request.RANK_AREAS, object_type=object_type,
                                              max_results=int(k or 0))
        response = self._call(self._ltm, request)
        return [mc.area_score_from_msg(a) for a in response.areas] if response is not None and response.success else []

    def prompt_texts(self, instruction: str, object_type: str | None = None
                     ) -> tuple[str | None, str | None, list[AreaScore]]:
        """(STM facts recalled for the instruction, LTM graph text, area ranking) for a chat prompt."""
        stm_text = None
        if self.use_stm:
            units = self.stm_recall(instruction, top_k=0) if instruction.strip() else []
            stm_text = "\n".join(u.as_fact() for u in units) if units else "(no short-term memory)"
        ltm_text = sg.to_prompt(self.mirror.to_networkx()) if self.use_ltm else None
        ranking = self.ltm_rank_areas(object_type) if self.use_ltm and object_type else []
        return stm_text, ltm_text, ranking

    def ltm_forget(self, object_id: str) -> None:
        record = self.ltm_object(object_id)
        if record is not None:
            self._publish([ObjectObservation(object_id, record["type"], record["position"], ObservationKind.REMOVED,
                                             stamp=record["last_seen"], source="agent")])
