"""What every chat-model backend shares: the default prompt, the parse, and one repair round on bad output."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.planner.base import ChatMessage, Plan, PlanningContext
from karma_memory.core.planner.parsing import parse_plan
from karma_memory.core.planner.prompt import PLAN_FORMAT, build_messages

__all__ = ["Complete", "context_messages", "repair_message", "plan_with_repair", "check_number"]

#: Sends chat messages to a model and returns its text answer (raises PlanValidationError when unreachable).
Complete = Callable[[Sequence[ChatMessage]], str]

_MAX_ECHO_CHARS = 4000


def check_number(name: str, value: object, low: float, high: float | None = None, integer: bool = False) -> None:
    """Raise ConfigError naming ``name`` unless low <= value (<= high)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < low or (high is not None and value > high):
        span = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be {'an int' if integer else 'a number'} {span}, got {value!r}")


def context_messages(context: PlanningContext) -> tuple[ChatMessage, ...]:
    """The context's prompt, or a memory-less prompt built from its instruction when it carries none."""
    if context.messages:
        return tuple(context.messages)
    return build_messages(context.instruction, stm_text=None, ltm_text=None, area_ranking=None,
                          completed=list(context.completed), examples=None, held_object=context.held_object)


def repair_message(error: str) -> ChatMessage:
    """The follow-up asking the model to fix its previous answer."""
    return ChatMessage("user", f"Your previous answer is not a valid plan: {error}\nReply again with the corrected "
                               f"plan as JSON only, in the form {PLAN_FORMAT}, using only the listed skills "
                               "and argument names.")


def plan_with_repair(complete: Complete, context: PlanningContext, *, source: str, repair_rounds: int = 1,
                     max_steps: int = 50, allow_code: bool = False) -> Plan:
    """Ask the model, parse its answer; on invalid output send the error back up to ``repair_rounds`` times.

    Raises:
        PlanValidationError: naming the first and the last validation error when no answer is valid, or
            the backend failure raised by ``complete``.
    """
    messages = list(context_messages(context))
    known = list(context.known_types) or None
    areas = list(context.area_ids) or None
    errors: list[str] = []
    text = complete(messages)
    for round_ in range(repair_rounds + 1):
        try:
            plan = parse_plan(text, known, areas, max_steps=max_steps, source=source, allow_code=allow_code)
        except PlanValidationError as err:
            errors.append(str(err))
            if round_ == repair_rounds:
                break
            messages += [ChatMessage("assistant", text[:_MAX_ECHO_CHARS]), repair_message(str(err))]
            try:
                text = complete(messages)
            except PlanValidationError as failure:
                raise PlanValidationError(f"{failure} (while asking the model to repair: {err})") from failure
            continue
        if errors:
            notes = tuple(f"repair round {i + 1}: the model corrected its answer after: {e}"
                          for i, e in enumerate(errors))
            plan = dataclasses.replace(plan, repaired=notes + plan.repaired)
        return plan
    if len(errors) == 1:
        raise PlanValidationError(f"{source}: model output is not a valid plan: {errors[0]}")
    raise PlanValidationError(f"{source}: model output is not a valid plan: first answer: {errors[0]} | "
                              f"after {len(errors) - 1} repair round(s): {errors[-1]}")
