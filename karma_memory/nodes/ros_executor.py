"""A SkillExecutor over ROS: skills through the ExecuteSkill action, what the robot sees from ``observations``.

The agent (karma_memory.core.agent) runs unchanged on top of it. Blocking calls wait on futures that
other executor threads complete, so the owning node must spin in a MultiThreadedExecutor and this
executor be used from a callback (or another thread), never from the spinning thread itself.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from karma_interfaces.action import ExecuteSkill
from karma_interfaces.msg import ObjectObservationArray
from rclpy.callback_groups import CallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future

from karma_memory.core.errors import KarmaMemoryError
from karma_memory.core.skills import SkillCall, SkillResult
from karma_memory.core.types import ObjectObservation, ObservationKind
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.action_client import ActionClient
from karma_memory.nodes.qos import EVENTS

__all__ = ["RosSkillExecutor", "thor_object_from_observation", "is_sensor_array", "wait_future"]

#: Skills after which the robot holds the object acted on, and skills that empty its hand.
_PICKS = frozenset({"PickupObject"})
_RELEASES = frozenset({"PutObject", "DropHandObject", "ThrowObject"})
#: Observation sources that are not sensors (the agent's own interaction reports).
_AGENT_SOURCES = ("skill:", "agent")

_STATE_FLAGS: dict[str, dict[str, Any]] = {
    "sliced": {"sliceable": True, "isSliced": True},
    "cooked": {"cookable": True, "isCooked": True},
    "heated": {"temperature": "Hot"},
    "dirty": {"dirtyable": True, "isDirty": True},
    "cleaned": {"dirtyable": True, "isDirty": False},
    "filled": {"canFillWithLiquid": True, "isFilledWithLiquid": True},
    "used up": {"isUsedUp": True},
    "on": {"toggleable": True, "isToggled": True},
    "off": {"toggleable": True, "isToggled": False},
    "opened": {"openable": True, "isOpen": True},
    "closed": {"openable": True, "isOpen": False},
}


def thor_object_from_observation(obs: ObjectObservation) -> dict[str, Any]:
    """A THOR-metadata-like dict of an observed object (inverse of ``thor_object_observations``).

    It carries what an observation knows: id, type, position, size, states as THOR flags, parents
    (``on``/``inside`` relations) and pickupability; everything is ``visible``.

    >>> from karma_memory.core.types import Relation
    >>> o = thor_object_from_observation(ObjectObservation("Mug|1", "Mug", (1, 2, 3), states=("filled",),
    ...                                   relations=(Relation("on", "Table|1"),)))
    >>> o["isFilledWithLiquid"], o["parentReceptacles"], o["position"]
    (True, ['Table|1'], {'x': 1.0, 'y': 2.0, 'z': 3.0})
    """
    x, y, z = obs.position
    out: dict[str, Any] = {
        "objectId": obs.object_id, "objectType": obs.object_type, "position": {"x": x, "y": y, "z": z},
        "pickupable": obs.movable, "visible": True, "isPickedUp": False,
        "parentReceptacles": [r.target_id for r in obs.relations if r.predicate in ("on", "inside")],
    }
    if obs.size is not None:
        out["axisAlignedBoundingBox"] = {"center": dict(out["position"]),
                                         "size": dict(zip("xyz", (float(v) for v in obs.size)))}
    for state in obs.states:
        out.update(_STATE_FLAGS.get(state, {}))
    return out


def is_sensor_array(observations: list[ObjectObservation]) -> bool:
    """True for what a sensor reported (an empty view included), False for the agent's own interaction reports."""
    return not observations or any(not o.source.startswith(_AGENT_SOURCES) for o in observations)


def wait_future(future: Future, timeout_s: float) -> Any | None:
    """Block the calling thread until another executor thread completes ``future``; None on timeout."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout_s):
        return None
    return future.result()


class RosSkillExecutor:
    """SkillExecutor whose skills are ExecuteSkill goals and whose view is the sensor ``observations`` topic.

    After each skill it waits (up to ``observation_timeout_s``) for an observation array stamped after
    the goal was sent, so ``visible_objects()`` shows the world after the skill. The held object is
    tracked from skill results (PickupObject holds it; Put/Drop/Throw release it).

    Args:
        node: the node to create the action client and subscription on.
        action: relative name of the ExecuteSkill action.
        observations: relative name of the observations topic.
        timeout_s: longest wait for the action server and for one skill.
        observation_timeout_s: longest wait for the post-skill view.
        on_feedback: called with every feedback status string.
    """

    def __init__(self, node: Node, action: str = "execute_skill", observations: str = "observations",
                 timeout_s: float = 120.0, observation_timeout_s: float = 2.0,
                 on_feedback: Callable[[str], None] | None = None,
                 callback_group: CallbackGroup | None = None) -> None:
        self._node, self.timeout_s, self.observation_timeout_s = node, timeout_s, observation_timeout_s
        self.action = action
        self.on_feedback = on_feedback
        group = callback_group or ReentrantCallbackGroup()
        self._client = ActionClient(node, ExecuteSkill, action, callback_group=group)
        node.create_subscription(ObjectObservationArray, observations, self._on_observations, EVENTS,
                                 callback_group=group)
        self._lock = threading.Condition()
        self.world: dict[str, dict[str, Any]] = {}  # objectId -> last observed dict (for goal checking)
        self._visible: list[str] = []
        self._last_ns = -1
        self.held: str | None = None

    # ---- SkillExecutor ----------------------------------------------------------------------------
    def execute(self, call: SkillCall) -> SkillResult:
        """Run one skill on the robot; failures (invalid call, no server, timeout) come back as success=False."""
        try:
            goal = cv.skill_call_to_goal(call)
        except KarmaMemoryError as err:
            return SkillResult(False, f"invalid skill call: {err}")
        sent_ns = self._node.get_clock().now().nanoseconds
        reply = self._send(goal)
        if isinstance(reply, str):
            return SkillResult(False, reply)
        try:
            result = cv.skill_result_from_msg(reply)
        except KarmaMemoryError as err:
            return SkillResult(False, f"malformed skill result: {err}")
        placed = self.held if result.success and call.skill == "PutObject" else None
        if result.success and call.skill in _PICKS:
            self.held = result.object_id
        elif result.success and call.skill in _RELEASES:
            self.held = None
        self.wait_for_view(sent_ns)
        if placed is not None:
            self._placed(placed, str(call.args.get("receptacle", "")))
        return result

    def _placed(self, object_id: str, receptacle: str) -> None:
        """The robot knows where it put an object even when it cannot see it there (inside a fridge)."""
        with self._lock:
            obj = self.world.get(object_id)
            if obj is None or object_id in self._visible:
                return
            target = self.world.get(receptacle) if "|" in receptacle else next(
                (self.world[i] for i in self._visible if self.world[i]["objectType"] == receptacle), None)
            if target is not None:
                obj.update(parentReceptacles=[target["objectId"]], position=dict(target["position"]),
                           isPickedUp=False)

    def visible_objects(self) -> list[dict]:
        """THOR-like dicts of the objects in the latest sensor observation (the held one marked isPickedUp)."""
        with self._lock:
            out = [dict(self.world[i]) for i in self._visible if i in self.world]
            if self.held is not None and self.held in self.world and self.held not in self._visible:
                out.append(dict(self.world[self.held]))
        for obj in out:
            obj["isPickedUp"] = obj["objectId"] == self.held
        return out

    # ---- plumbing ---------------------------------------------------------------------------------
    def _send(self, goal: ExecuteSkill.Goal) -> ExecuteSkill.Result | str:
        """The one wait/send/accept/result sequence; returns the result, or why there is none."""
        if not self._client.wait_for_server(timeout_sec=self.timeout_s):
            return f"ExecuteSkill server {self.action!r} not available after {self.timeout_s:.0f} s"
        feedback = (lambda msg: self.on_feedback(msg.feedback.status)) if self.on_feedback else None
        handle = wait_future(self._client.send_goal_async(goal, feedback_callback=feedback), self.timeout_s)
        if handle is None or not handle.accepted:
            return f"{goal.skill} goal {'timed out' if handle is None else 'was rejected'}"
        response = wait_future(handle.get_result_async(), self.timeout_s)
        if response is None:
            handle.cancel_goal_async()
            return f"{goal.skill} did not finish within {self.timeout_s:.0f} s (cancelled)"
        return response.result

    def wait_for_view(self, after_ns: int) -> bool:
        """Wait until a sensor observation stamped at or after ``after_ns`` arrived; False on timeout."""
        deadline = time.monotonic() + self.observation_timeout_s
        with self._lock:
            while self._last_ns < after_ns:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._node.get_logger().warning("no observations after the skill; planning on the last view")
                    return False
                self._lock.wait(left)
        return True

    def _on_observations(self, msg: ObjectObservationArray) -> None:
        try:
            observations = cv.observations_from_msg(msg)
        except KarmaMemoryError as err:
            self._node.get_logger().error(f"ignored malformed observations: {err}")
            return
        if not is_sensor_array(observations):
            return
        with self._lock:
            for obs in observations:
                if obs.kind is ObservationKind.REMOVED:
                    self.world.pop(obs.object_id, None)
                else:
                    self.world[obs.object_id] = thor_object_from_observation(obs)
            self._visible = [o.object_id for o in observations if o.kind is not ObservationKind.REMOVED]
            stamp = msg.header.stamp
            self._last_ns = max(self._last_ns, stamp.sec * 1_000_000_000 + stamp.nanosec)
            self._lock.notify_all()
