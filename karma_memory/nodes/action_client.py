"""An rclpy ActionClient that is safe to drive from a thread other than the one spinning the executor."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from rclpy.action import ActionClient as _RclpyActionClient
from rclpy.task import Future

__all__ = ["ActionClient"]

#: how long a finished goal's feedback callback stays registered for feedback that trails its result, s
FEEDBACK_GRACE_S = 5.0


class ActionClient(_RclpyActionClient):
    """rclpy's ActionClient with two fixes (rclpy 9.1.2, Kilted).

    - ``send_goal_async`` registers its goal once, under the client's lock. rclpy registers a second
      future for the same request after releasing the lock (a faulty backport of ros2/rclpy#1308): when
      the server answers in between, which a goal sent from another thread allows, the returned future
      never completes or the call raises ``list.remove(x): x not in list``.
    - Feedback that trails the result still reaches the goal's callback for ``FEEDBACK_GRACE_S``. Feedback
      (a topic) and result (a service) are not ordered; rclpy unregisters the feedback callback when the
      result arrives, so a goal's last feedback messages were dropped whenever the client's executor
      took them after the result (a loaded machine).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._finished: deque[tuple[float, bytes]] = deque()  # (when, goal uuid) of goals with a result

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

    def _remove_pending_result_request(self, future: Future) -> None:
        callbacks = dict(self._feedback_callbacks)
        super()._remove_pending_result_request(future)
        now = time.monotonic()
        for uuid in callbacks.keys() - self._feedback_callbacks.keys():  # kept a while for trailing feedback
            self._feedback_callbacks[uuid] = callbacks[uuid]
            self._finished.append((now, uuid))
        while self._finished and now - self._finished[0][0] > FEEDBACK_GRACE_S:
            self._feedback_callbacks.pop(self._finished.popleft()[1], None)
