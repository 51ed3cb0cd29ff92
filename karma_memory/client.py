"""A typed Python client for a running karma stack: tasks, memory services and latched topics."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from karma_memory.nodes.action_client import ActionClient

__all__ = ["KarmaClient"]


def _wait(future: Any, timeout: float) -> Any:
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f"no answer within {timeout} s")
    return future.result()


class KarmaClient:
    """A client node spun in a background thread, with blocking helpers for topics, services and actions.

    The façade users script the stack with (like nav2's BasicNavigator): ``execute_task``, ``call``,
    ``subscribe``/``latest``; spinning is hidden.
    """

    def __init__(self, name: str = "karma_client") -> None:
        self.node: Node = rclpy.create_node(name)
        self.messages: dict[str, list[Any]] = {}
        self._cond = threading.Condition()
        self._publishers: dict[str, Any] = {}
        # Clients are made once and kept: destroying one while the executor spins races inside rclpy
        # (ros2/rclpy#1355, #1385) and kills the spinning thread, after which nothing is ever answered.
        self._services: dict[str, Any] = {}
        self._actions: dict[str, ActionClient] = {}
        self._helpers: list[Node] = []
        self._running = True
        self._executor = MultiThreadedExecutor(num_threads=2)
        self._executor.add_node(self.node)
        self._thread: threading.Thread | None = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        """Spin until closed; an error inside rclpy is logged and spinning goes on."""
        while self._running:
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                return
            except Exception as err:  # noqa: BLE001 - a dead spinner would silently stop every answer
                if not self._running or not self._executor.context.ok():
                    return
                self.node.get_logger().error(f"executor error (still spinning): {err!r}", throttle_duration_sec=5.0)

    def subscribe(self, kind: type, topic: str, qos: QoSProfile | int = 10) -> list[Any]:
        """Record every message of ``topic``; returns the (live) list."""
        received = self.messages.setdefault(topic, [])

        def keep(msg: Any) -> None:
            with self._cond:
                received.append(msg)
                self._cond.notify_all()

        self.node.create_subscription(kind, topic, keep, qos)
        return received

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every message and every 50 ms)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def latest(self, topic: str) -> Any:
        return self.messages[topic][-1] if self.messages.get(topic) else None

    def publish(self, kind: type, topic: str, msg: Any, qos: QoSProfile | int = 10) -> None:
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(kind, topic, qos)
            deadline = time.monotonic() + 5.0
            while self._publishers[topic].get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        self._publishers[topic].publish(msg)

    def call(self, kind: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self._services.get(name)
        if client is None:
            client = self._services[name] = self.node.create_client(kind, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available")
        return _wait(client.call_async(request), timeout)

    def run_action(self, kind: type, name: str, goal: Any, timeout: float = 60.0,
                   on_feedback: Callable[[Any], None] | None = None,
                   cancel_when: Callable[[list[Any]], bool] | None = None) -> tuple[Any, Any, list[Any]]:
        """Send a goal and wait for its result: (status, result, feedback messages).

        ``cancel_when(feedback so far)`` returning True cancels the goal (the server stops at the next step).
        The feedback list stays live: ROS does not order feedback and result, so the last feedback messages
        may arrive just after the result (``wait_for(lambda: len(feedback) >= n)``).
        """
        client = self.wait_for_action(kind, name, timeout)
        feedback: list[Any] = []
        accepted: list[Any] = []

        def keep(message: Any) -> None:
            with self._cond:
                feedback.append(message.feedback)
                self._cond.notify_all()
            if on_feedback is not None:
                on_feedback(message.feedback)
            if cancel_when is not None and accepted and cancel_when(feedback):
                accepted[0].cancel_goal_async()

        handle = _wait(client.send_goal_async(goal, feedback_callback=keep), timeout)
        if not handle.accepted:
            raise RuntimeError(f"goal to {name} rejected")
        accepted.append(handle)
        response = _wait(handle.get_result_async(), timeout)
        return response.status, response.result, feedback

    def wait_for_action(self, kind: type, name: str, timeout: float = 10.0) -> ActionClient:
        """The one ActionClient for ``name``, once its server is available (TimeoutError if not).

        Waiting ahead of the first goal also lets the server discover this client's feedback subscription:
        feedback published before that match is lost (DDS discovery is not symmetric in time). Each client
        is made on its own helper node that joins the executor only afterwards: an ActionClient made on a
        spinning node can be polled before its constructor finished (ros2/rclpy#1589).
        """
        if name not in self._actions:
            helper = rclpy.create_node(f"{self.node.get_name()}_action_{len(self._helpers)}")
            self._helpers.append(helper)
            self._actions[name] = ActionClient(helper, kind, name)
            self._executor.add_node(helper)
        if not self._actions[name].wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f"action {name} not available")
        return self._actions[name]

    def execute_task(self, instruction: str, namespace: str = "", goal_conditions: str = "", scene: str = "",
                     timeout: float = 120.0, on_feedback: Callable[[Any], None] | None = None) -> Any:
        """Run an instruction through the planner's ExecuteTask action; returns the result message."""
        from karma_interfaces.action import ExecuteTask

        goal = ExecuteTask.Goal(instruction=instruction, goal_conditions=goal_conditions, scene=scene)
        _, result, _ = self.run_action(ExecuteTask, f"{namespace}/execute_task", goal, timeout, on_feedback)
        return result

    def close(self) -> None:
        if self._thread is None:
            return
        self._running = False
        self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=2.0)
        for client in self._actions.values():
            client.destroy()
        for helper in self._helpers:
            helper.destroy_node()
        self.node.destroy_node()
        self._thread = None
