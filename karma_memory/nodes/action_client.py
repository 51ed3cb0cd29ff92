"""An rclpy ActionClient whose ``send_goal_async`` is safe while another thread spins the executor."""

from __future__ import annotations

from typing import Any, Callable

from rclpy.action import ActionClient as _RclpyActionClient
from rclpy.task import Future

__all__ = ["ActionClient"]


class ActionClient(_RclpyActionClient):
    """rclpy's ActionClient with a ``send_goal_async`` that registers its goal once, under the client's lock.

    rclpy 9.1.2 (Kilted) registers a second future for the same request after releasing the lock
    (a faulty backport of ros2/rclpy#1308). When the server answers in between, which a goal sent from a
    thread other than the executor's allows, the returned future never completes or the call raises
    ``list.remove(x): x not in list``. Cancel and result requests are already correct there.
    """

    def send_goal_async(self, goal: Any, feedback_callback: Callable[[Any], None] | None = None,
                        goal_uuid: Any = None) -> Future:
        if not isinstance(goal, self._action_type.Goal):
            raise TypeError(f"Expected goal type ({type(self._action_type.Goal)}) but received ({type(goal)})")
        request = self._action_type.Impl.SendGoalService.Request()
        request.goal_id = self._generate_random_uuid() if goal_uuid is None else goal_uuid
        request.goal = goal
        future: Future = Future()
        with self._lock:  # the executor takes the response under this lock: all is registered before
            if feedback_callback is not None:
                self._feedback_callbacks[bytes(request.goal_id.uuid)] = feedback_callback
            sequence_number = self._client_handle.send_goal_request(request)
            if sequence_number in self._pending_goal_requests:
                raise RuntimeError(f"Sequence ({sequence_number}) conflicts with pending goal request")
            self._pending_goal_requests[sequence_number] = future
            self._goal_sequence_number_to_goal_id[sequence_number] = request.goal_id
            future.add_done_callback(self._remove_pending_goal_request)
            self.add_future(future)  # so the executor is aware
        return future
