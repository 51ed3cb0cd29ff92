"""Memory-augmented chat prompt in the KARMA prototype's message order, asking for a JSON plan."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from karma_memory.core.embedding import Embedder, cosine
from karma_memory.core.errors import ConfigError
from karma_memory.core.planner.base import ChatMessage
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall

__all__ = [
    "Example",
    "EXPERIENCE_BANK",
    "SKILL_DOCS",
    "PLAN_FORMAT",
    "approx_tokens",
    "build_messages",
    "flatten_messages",
    "select_examples",
    "skill_api_text",
    "plan_to_json",
]

#: What the model must answer with (also used in repair requests).
PLAN_FORMAT = '{"steps": [{"skill": "<SkillName>", "args": {"<arg>": "<value>"}}, ...]}'

#: One docstring-like explanation per skill (karma_spec.md §1.7); a skill missing here still gets a line.
SKILL_DOCS: dict[str, str] = {
    "Explore": "Search for an object whose location is NOT known (no memory of it): visit the listed area "
               "nodes in order, most likely first, until it is seen. Omit areas to search everywhere.",
    "GoToObject": "Navigate to an object whose location IS known (from short-term memory or the scene "
                  "graph). If you do not know where it is, use Explore first.",
    "PickupObject": "Pick up an object within reach; the hand must be empty.",
    "PutObject": "Put the object currently held into/onto the receptacle (go to it first; open it first "
                 "if it is closed).",
    "DropHandObject": "Drop the held object where the robot stands.",
    "ThrowObject": "Throw the held object (named) into a GarbageCan within reach.",
    "OpenObject": "Open an openable object within reach (fridge, cabinet, drawer, microwave, ...).",
    "CloseObject": "Close an opened object within reach.",
    "SliceObject": "Slice an object within reach; a Knife or ButterKnife must be held first.",
    "ToggleOn": "Turn on a toggleable appliance within reach (faucet, stove burner, microwave, lamp, ...).",
    "ToggleOff": "Turn off a toggleable appliance within reach.",
    "SwitchOn": "Switch on a light switch within reach.",
    "SwitchOff": "Switch off a light switch within reach.",
    "CleanObject": "Clean (wash) a dirty object within reach.",
    "CookObject": "Cook an object within reach (e.g. with a stove, microwave or toaster).",
    "FillObject": "Fill a container within reach with liquid (e.g. under a running faucet).",
    "EmptyObject": "Empty a filled container within reach.",
    "BreakObject": "Break a breakable object within reach.",
}

_ARG_TYPES = {"object": "str", "areas": "list[str]"}
_ARG_HELP = {"object": "a THOR object type (e.g. 'Apple') or an objectId from memory",
             "areas": "area node ids from the topological graph, most likely first"}

_ROLE = (
    "You are highly skilled in robotic task planning: you break a household task into an ordered "
    "sequence of the robot's skills. If you do not know the specific location of an object, or have no "
    "memory of it, use Explore to find it (listing the most likely areas first) before acting on it; if "
    "memory tells you where it is, use GoToObject instead. Use only the listed skills and arguments. "
    f"Answer with JSON only, exactly in this form: {PLAN_FORMAT}"
)

_EMPHASIS = (
    "When decomposing a task, consider the previously performed tasks and how they changed the objects' "
    "states and positions. Objects that were already moved, cleaned, sliced, opened or switched keep that "
    "state: reuse what memory says instead of exploring again or repeating work."
)


def approx_tokens(text: str) -> int:
    """Approximate token count (≈ 4 characters per token, the usual rule for BPE tokenizers).

    >>> approx_tokens("abcdefgh")
    2
    """
    return math.ceil(len(text) / 4)


def _message_tokens(message: ChatMessage) -> int:
    return approx_tokens(message.content) + 4  # role and separators


@dataclass(frozen=True)
class Example:
    """One in-context example: a task, optional memory it was planned with, and its JSON plan."""

    task: str
    steps: tuple[SkillCall, ...]
    memory: str = ""

    def to_text(self, number: int) -> str:
        """Render as the prompt's ``#EXAMPLE n`` block."""
        lines = [f"#EXAMPLE {number} - Task Description: {self.task}"]
        if self.memory:
            lines.append(f"Memory: {self.memory}")
        lines.append(f"Plan: {plan_to_json(self.steps)}")
        return "\n".join(lines)


def plan_to_json(steps: Iterable[SkillCall]) -> str:
    """Steps as the plan JSON the model must produce.

    >>> plan_to_json([SkillCall("PickupObject", {"object": "Apple"})])
    '{"steps": [{"skill": "PickupObject", "args": {"object": "Apple"}}]}'
    """
    return json.dumps({"steps": [{"skill": s.skill, "args": {k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in s.args.items()}} for s in steps]})


def _s(skill: str, obj: str | None = None, areas: Sequence[str] | None = None, *, key: str = "object") -> SkillCall:
    args: dict[str, str | tuple[str, ...]] = {} if obj is None else {key: obj}
    if areas:
        args["areas"] = tuple(areas)
    return SkillCall(skill, args)


#: Our own small experience bank (4 examples, like the prototype's experience.json), in the JSON plan format.
EXPERIENCE_BANK: tuple[Example, ...] = (
    Example(
        "Turn off the light and turn on the faucet.",
        (_s("Explore", "LightSwitch", ["area_2", "area_0"]), _s("SwitchOff", "LightSwitch"),
         _s("Explore", "Faucet", ["area_1", "area_3"]), _s("ToggleOn", "Faucet")),
    ),
    Example(
        "Put the washed mug in the coffee machine.",
        (_s("GoToObject", "Mug|-01.10|+00.95|+00.40"), _s("PickupObject", "Mug|-01.10|+00.95|+00.40"),
         _s("Explore", "CoffeeMachine", ["area_4", "area_1"]),
         _s("PutObject", "CoffeeMachine", key="receptacle")),
        memory="{mug [Mug|-01.10|+00.95|+00.40] is at (-1.10, 0.95, 0.40)} {mug is in the sink basin} "
               "{mug is cleaned}",
    ),
    Example(
        "Slice the bread and put a slice on the plate.",
        (_s("Explore", "Knife", ["area_3", "area_0"]), _s("PickupObject", "Knife"),
         _s("Explore", "Bread", ["area_3", "area_5"]), _s("SliceObject", "Bread"),
         _s("PutObject", "CounterTop", key="receptacle"), _s("PickupObject", "BreadSliced"),
         _s("Explore", "Plate", ["area_1"]), _s("PutObject", "Plate", key="receptacle")),
    ),
    Example(
        "Take the egg out of the fridge and throw it away.",
        (_s("GoToObject", "Fridge"), _s("OpenObject", "Fridge"), _s("PickupObject", "Egg"),
         _s("CloseObject", "Fridge"), _s("Explore", "GarbageCan", ["area_2", "area_6"]),
         _s("ThrowObject", "Egg")),
        memory="{egg [Egg|+00.30|+01.20|-02.10] is at (0.30, 1.20, -2.10)} {egg is inside the fridge}",
    ),
)


def select_examples(instruction: str, bank: Sequence[Example] = EXPERIENCE_BANK, k: int = 3,
                    embedder: Embedder | None = None) -> list[Example]:
    """Pick k in-context examples: top-k by task similarity when an embedder is given (HELPER-style), else the first k.

    Ties keep bank order, so the choice is deterministic.

    >>> [e.task for e in select_examples("anything", k=1)]
    ['Turn off the light and turn on the faucet.']
    """
    if k < 0:
        raise ConfigError(f"number of examples must be >= 0, got {k}")
    if embedder is None or len(bank) <= k:
        return list(bank[:k]) if embedder is None else list(bank)
    vectors = embedder.embed([instruction, *(e.task for e in bank)])
    sims = cosine(vectors[:1], vectors[1:])[0]
    order = sorted(range(len(bank)), key=lambda i: (-float(sims[i]), i))[:k]
    return [bank[i] for i in order]


def skill_api_text(schema: dict[str, dict[str, tuple[str, bool]]] | None = None) -> str:
    """The skill API generated from SKILL_SCHEMA: one line per skill with arguments and an explanation."""
    schema = SKILL_SCHEMA if schema is None else schema
    lines = ["Skill API (the JSON 'args' of each step use exactly these argument names):"]
    for skill, params in schema.items():
        sig = ", ".join(f"{name}: {_ARG_TYPES.get(kind, kind)}" + ("" if required else " (optional)")
                        for name, (kind, required) in params.items())
        lines.append(f"- {skill}({sig}): {SKILL_DOCS.get(skill, 'no description')}")
    kinds = sorted({kind for params in schema.values() for kind, _ in params.values()})
    lines += [f"  {kind}: {_ARG_HELP[kind]}" for kind in kinds if kind in _ARG_HELP]
    return "\n".join(lines)


def _ranked_ids(area_ranking: Sequence[Any] | None) -> list[str]:
    ids: list[str] = []
    for item in area_ranking or ():
        area = item if isinstance(item, str) else getattr(item, "area_id", None)
        if not isinstance(area, str):
            raise ConfigError(f"area_ranking items must be AreaScore or area-id strings, got {item!r}")
        if area not in ids:
            ids.append(area)
    return ids


def _ranking_text(area_ranking: Sequence[Any] | None, top: int = 5) -> str:
    parts = []
    for item in list(area_ranking or ())[:top]:
        if isinstance(item, str):
            parts.append(item)
        else:
            reason = getattr(item, "reason", "")
            parts.append(f"{item.area_id} ({reason})" if reason else item.area_id)
    return "Areas most likely to hold the task's objects, best first: " + "; ".join(parts) if parts else ""


def _ltm_blocks(ltm_text: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Split scene_graph.to_prompt text into header lines, per-area blocks (area line + indented lines), order."""
    header: list[str] = []
    blocks: dict[str, list[str]] = {}
    order: list[str] = []
    current: str | None = None
    for line in ltm_text.splitlines():
        if line.startswith("{name: "):
            current = line[len("{name: "):].split(",", 1)[0].strip()
            blocks[current] = [line]
            order.append(current)
        elif current is not None and line.startswith((" ", "\t")):
            blocks[current].append(line)
        elif current is None:
            header.append(line)
        else:  # an unindented non-area line after the areas: keep with the header text
            header.append(line)
    return header, blocks, order


def _ltm_message(ltm_text: str, area_ranking: Sequence[Any] | None, keep: int | None) -> str:
    """LTM message text; ``keep`` = number of areas to keep (None = the whole graph)."""
    body = ltm_text
    if keep is not None:
        header, blocks, order = _ltm_blocks(ltm_text)
        ranked = [a for a in _ranked_ids(area_ranking) if a in blocks]
        chosen = (ranked + [a for a in order if a not in ranked])[:keep]
        basis = "most likely to hold the task's objects, best first" if ranked else "first in graph order"
        lines = header + [line for area in chosen for line in blocks[area]]
        lines.append(f"(Long-term memory summarised to fit the prompt: showing {len(chosen)} of {len(order)} "
                     f"areas, those {basis}; other areas exist and Explore may name them.)")
        body = "\n".join(lines)
    parts = [f"Long-term memory (3D scene graph).\n{body}"]
    ranking = _ranking_text(area_ranking)
    if ranking:
        parts.append(ranking)
    parts.append("When you Explore for an object, list the areas to visit in 'areas' from the most to the least "
                 "likely to hold it.")
    return "\n".join(parts)


def build_messages(
    instruction: str,
    *,
    stm_text: str | None,
    ltm_text: str | None,
    area_ranking: Sequence[Any] | None,
    completed: Sequence[str],
    examples: Sequence[Example] | None,
    token_budget: int = 6000,
    embedder: Embedder | None = None,
    held_object: str | None = None,
) -> tuple[ChatMessage, ...]:
    """Build the memory-augmented prompt in the prototype's order (karma_spec.md §1.4).

    Order: skills list (user), skill API (user), role (system), examples (user), memory emphasis with the
    previously completed tasks (user), [short-term memory (user)], [long-term memory (user)], instruction
    (user). The model is asked for a JSON plan, never code (STYLE.md pattern 14).

    Args:
        instruction: the task to decompose.
        stm_text: recalled STM facts (ShortTermMemory.to_prompt); None omits the block (no-STM ablation).
        ltm_text: serialised scene graph (LongTermMemory.to_prompt); None omits the block (no-LTM ablation).
        area_ranking: LongTermMemory.rank_areas output (AreaScore) or area ids, best first; decides which
            areas survive when the graph must be summarised.
        completed: earlier instructions of the session, in order.
        examples: in-context examples; None = select_examples(instruction, embedder=embedder); [] = none.
        token_budget: approximate token limit of the whole prompt (approx_tokens, chars/4).
        embedder: used to pick examples by similarity when ``examples`` is None.
        held_object: what the robot holds now (closed-loop re-planning), if anything.

    Returns:
        The chat messages.

    Raises:
        ConfigError: if the instruction is empty, or the prompt cannot fit ``token_budget`` even with the
            graph cut to one area, no examples and no STM facts.
    """
    if not isinstance(instruction, str) or not instruction.strip():
        raise ConfigError(f"instruction must be a non-empty string, got {instruction!r}")
    if not isinstance(token_budget, int) or token_budget < 256:
        raise ConfigError(f"token_budget must be an int >= 256, got {token_budget!r}")
    _ranked_ids(area_ranking)  # validates the items before anything is built
    chosen = list(select_examples(instruction, embedder=embedder) if examples is None else examples)
    completed = [str(c) for c in completed]
    stm_lines = None if stm_text is None else stm_text.splitlines()
    ltm_keep: int | None = None
    n_areas = len(_ltm_blocks(ltm_text)[1]) if ltm_text is not None else 0
    stm_note = ""

    def assemble() -> list[ChatMessage]:
        msgs = [
            ChatMessage("user", "Available skills: " + ", ".join(SKILL_SCHEMA)),
            ChatMessage("user", skill_api_text()),
            ChatMessage("system", _ROLE),
        ]
        if chosen:
            msgs.append(ChatMessage("user", "Task decomposition examples:\n\n"
                                    + "\n\n".join(e.to_text(i + 1) for i, e in enumerate(chosen))))
        done = "; ".join(completed) if completed else "none"
        msgs.append(ChatMessage("user", f"{_EMPHASIS}\nThe previously completed tasks: {{{done}}}."))
        if stm_lines is not None:
            facts = "\n".join(stm_lines) if stm_lines else "(no short-term memory)"
            note = f"\n({stm_note})" if stm_note else ""
            msgs.append(ChatMessage("user", f"Short-term memory (recent objects and their states):\n{facts}{note}"))
        if ltm_text is not None:
            msgs.append(ChatMessage("user", _ltm_message(ltm_text, area_ranking, ltm_keep)))
        held = f" The robot is holding {held_object}." if held_object else ""
        msgs.append(ChatMessage("user", "You are a Robot Task Decomposition Expert. Please help me decompose the "
                                f"following task: {instruction.strip()}{held}\nAnswer with the JSON plan only."))
        return msgs

    def size(msgs: list[ChatMessage]) -> int:
        return sum(_message_tokens(m) for m in msgs)

    messages = assemble()
    # 1. summarise the scene graph to its best-ranked areas (the biggest and most compressible part)
    if size(messages) > token_budget and ltm_text is not None and n_areas > 1:
        lo, hi = 1, n_areas - 1
        while lo < hi:  # largest number of areas that fits
            ltm_keep = (lo + hi + 1) // 2
            if size(assemble()) <= token_budget:
                lo = ltm_keep
            else:
                hi = ltm_keep - 1
        ltm_keep = lo
        messages = assemble()
    # 2. drop the least similar examples
    while size(messages) > token_budget and chosen:
        chosen.pop()
        messages = assemble()
    # 3. keep the first (most relevant) STM facts
    total = len(stm_lines or ())
    while size(messages) > token_budget and stm_lines:
        stm_lines.pop()
        stm_note = f"short-term memory summarised to fit the prompt: {len(stm_lines)} of {total} facts shown"
        messages = assemble()
    if size(messages) > token_budget:
        raise ConfigError(f"prompt needs ~{size(messages)} tokens even when summarised; token_budget="
                          f"{token_budget} is too small")
    return tuple(messages)


def flatten_messages(messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
    """Merge the prompt into one system + one user message, for chat templates that demand alternating turns.

    Messages from the first assistant turn on (a repair round) are kept as they are.

    >>> flatten_messages([ChatMessage("user", "a"), ChatMessage("system", "s"), ChatMessage("user", "b")])
    (ChatMessage(role='system', content='s'), ChatMessage(role='user', content='a\\n\\nb'))
    """
    cut = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
    head, tail = messages[:cut], messages[cut:]
    system = [m.content for m in head if m.role == "system"]
    rest = [m.content for m in head if m.role != "system"]
    out = [ChatMessage("system", "\n\n".join(system))] if system else []
    if rest:
        out.append(ChatMessage("user", "\n\n".join(rest)))
    return (*out, *tail)
