"""Household instructions → intents (action + object phrase + target phrase), without grounding.

A small, explicit grammar, not a model: clauses are split on "then"/"and"/commas where the next
part starts with a verb; each clause is matched against verb patterns; object and target phrases
are kept as text (:class:`Phrase`) for the planner to ground with memory. This keeps language
understanding inspectable and testable, and leaves the memory-dependent part (which apple? the
"washed fruit"?) to grounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from karma_memory.core.errors import PlanValidationError

__all__ = ["Phrase", "Intent", "ACTIONS", "parse_instruction", "split_instruction", "STATE_WORDS"]

#: Intent actions the symbolic planner knows how to expand into skills.
ACTIONS = ("PUT", "WASH", "SLICE", "HEAT", "TOAST", "FILL", "TOGGLE_ON", "TOGGLE_OFF", "OPEN", "CLOSE",
           "CLEAN", "PICKUP", "COFFEE", "DARKEN", "BREAK")

#: words in an object phrase that name a remembered state (→ OBJECT_STATES)
STATE_WORDS = {
    "washed": "cleaned", "cleaned": "cleaned", "clean": "cleaned", "rinsed": "cleaned",
    "heated": "heated", "warm": "heated", "warmed": "heated", "hot": "heated", "microwaved": "heated",
    "cooked": "cooked", "toasted": "cooked", "toast": "cooked", "boiled": "cooked",
    "sliced": "sliced", "cut": "sliced", "chopped": "sliced",
    "filled": "filled", "full": "filled", "dirty": "dirty", "lit": "on", "opened": "opened",
}

_PRONOUNS = {"it", "them", "that", "this", "one", "itself"}
_DETERMINERS = re.compile(r"^(the|a|an|some|my|your|our|this|that|these|those|another|one)\s+")
_TRAILERS = re.compile(r"\s+(too|again|as well|also|back|away|first|out|up|now|please|here)$")
_LEADERS = re.compile(r"^(later|then|and|also|now|finally|first|please|afterwards)\s*,?\s+")


@dataclass(frozen=True)
class Phrase:
    """An object phrase as written, with what the grammar could read off it.

    Attributes:
        text: normalised phrase ("washed fruit", "thing i cleaned earlier").
        pronoun: the phrase is "it"/"them"/… (resolve from context).
        states: remembered states the phrase asks for ("washed" → cleaned).
        location: a location qualifier ("sink" in "the mug from the sink").
        same: "the same drawer" — reuse the last instance of that type.
        piece: "a piece/slice of …" — a slice of the object.
        there: "there" — the last target.
        where_was: "where the computer was" — the text of the object whose old place is meant.
        next_to: "next to the remote" — the text of the object whose place is meant.
    """

    text: str
    pronoun: bool = False
    states: tuple[str, ...] = ()
    location: str = ""
    same: bool = False
    there: bool = False
    where_was: str = ""
    next_to: str = ""
    piece: bool = False
    recall: str = ""  # "cleaned" in "the thing I cleaned earlier": what the robot did to it


@dataclass(frozen=True)
class Intent:
    """One thing to achieve: ``action`` on ``obj`` (into/onto ``target`` for PUT, ``tool`` appliance)."""

    action: str
    obj: Phrase | None = None
    target: Phrase | None = None
    tool: str = ""
    clause: str = field(default="", compare=False)


_VERB_START = re.compile(
    r"^(?:later,?\s+|then\s+|and\s+|also\s+|finally\s+|now\s+)*"
    r"(put|place|move|bring|set|take|serve|leave|hang|drop|return|carry|throw|toss|discard|dispose|chill|"
    r"wash|rinse|clean|slice|cut|chop|toast|cook|heat|warm|microwave|boil|fry|fill|turn|switch|shut|light|"
    r"open|close|pick|grab|hold|get|make|darken|break|smash)\b")


def _split_clauses(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text.strip().rstrip(".!").lower())
    text = re.sub(r"^(later|then|finally|next|afterwards|now|also)\s*,\s*", "", text)
    text = re.sub(r"\s*[;:]\s*|\s+-\s+|\s*\.\s+", ", ", text)
    parts = re.split(r",\s*(?:and\s+)?(?:then\s+)?|\s+and then\s+|\s+then\s+|\s+and\s+", text)
    clauses: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if clauses and not _VERB_START.match(part):
            clauses[-1] += " and " + part  # an object conjunction ("the loaf and the tomato")
        else:
            clauses.append(part)
    return clauses


def _phrase(raw: str) -> Phrase:
    text = raw.strip().strip(",")
    text = _LEADERS.sub("", text)
    while True:
        stripped = _TRAILERS.sub("", text)
        if stripped == text:
            break
        text = stripped
    where_was = next_to = location = ""
    match = re.match(r"^(?:back\s+)?(?:to\s+)?where\s+(?:the\s+|my\s+)?(.+?)\s+(?:was|were|is|used to be)$", text)
    if match:
        where_was = match.group(1)
    match = re.match(r"^(?:back\s+)?(?:next to|beside|near|by)\s+(.+)$", text)
    if match:
        next_to = _DETERMINERS.sub("", match.group(1))
        next_to = re.sub(r"\s+(you|i)\s+\w+$", "", next_to)
    text = re.sub(rf"^{_PREPOSITIONS}\s+", "", text)
    text = _DETERMINERS.sub("", text)
    same = bool(re.match(r"^same\s+", text))
    text = re.sub(r"^same\s+", "", text)
    match = re.match(r"^(.+?)\s+as\s+(?:the\s+|my\s+)?(.+)$", text)  # "same plate as the phone"
    if match and same:
        text, next_to = match.group(1), match.group(2)
    text = re.sub(r"\s+(?:next to|beside)\s+.+$", "", text)  # "the sponge next to the candle ..."
    if not re.match(r"^(thing|something|anything|one)\b", text):  # "something with a flame" describes
        text = re.sub(r"\s+with\s+(?:the|my|a|some)\s+.+$", "", text)  # "the plate with the bread"
    text = re.sub(r"\s+(?:that is|which is|that's)$", "", text)
    recall = ""
    match = re.search(r"\b(?:that\s+)?(?:i|you|we)\s+(\w+ed|lit|cut|put)\b", text)
    if match:
        recall = match.group(1)
    piece = bool(re.match(r"^(piece|slice|bit)s?\b", text))
    match = re.search(r"\s+(?:that is|which is|that's|lying|sitting|standing|hidden|kept|stored|left)?\s*(?:from|in|on|inside|out of|"
                      r"off)\s+(?:the\s+|a\s+)?([a-z ]+?)$", text)
    if match and not re.match(r"^(thing|something|what)\b", text):
        location = match.group(1).strip()
        text = text[: match.start()].strip()
    text = re.sub(r"\s+(lying|sitting|standing)( around| on the floor)?$", "", text)
    words = text.split()
    states = tuple(dict.fromkeys(STATE_WORDS[w] for w in words if w in STATE_WORDS))
    if recall in STATE_WORDS:
        states = tuple(dict.fromkeys(states + (STATE_WORDS[recall],)))
    return Phrase(text=text, pronoun=text in _PRONOUNS, states=states, location=location, same=same,
                  there=text in ("there", "here"), where_was=where_was, next_to=next_to, piece=piece, recall=recall)


_PREPOSITIONS = r"(?:into|inside|in|onto|on top of|on|to|at|next to|beside|by|under|back on|back in|back to|back)"


def _split_put(rest: str, first: bool = False) -> tuple[str, str] | None:
    """'the fruit from the sink in the fridge' → ('the fruit from the sink', 'the fridge'), last preposition wins
    (``first``: the first wins, for "serve what I cooked on a dish on the table")."""
    rest = re.sub(r"\s+(away|down|back|too|as well|also|again)$", "", rest)
    match = re.match(r"^(.*?\S)\s+(?:back\s+)?(?:next to|beside)\s+(.+)$", rest)
    if match and not re.search(rf"\s{_PREPOSITIONS}\s", " " + match.group(2) + " "):
        return match.group(1), "next to " + match.group(2)
    match = re.match(r"^(.*\S)\s+(where\s+.+)$", rest)
    if match:
        return match.group(1), match.group(2)
    candidates = list(re.finditer(rf"\s+({_PREPOSITIONS})\s+", rest))
    for found in (candidates if first else reversed(candidates)):
        obj, target = rest[: found.start()], rest[found.end():]
        prep = found.group(1)
        if prep in ("next to", "beside", "by"):
            target = "next to " + target
        if obj.strip() and target.strip() and not re.match(r"^(read|write|drink|wash|play|stir|wrap|lean|eat)\b",
                                                           target):
            return obj, target
    match = re.match(r"^(.*\S)\s+(there|here)$", rest)
    if match:
        return match.group(1), "there"
    return None


def _clause_intents(clause: str) -> list[Intent]:
    c = _LEADERS.sub("", clause)
    c = _LEADERS.sub("", c)

    def one(action: str, obj: str | None = None, target: str | None = None, tool: str = "") -> list[Intent]:
        return [Intent(action, _phrase(obj) if obj else None, _phrase(target) if target else None, tool, clause)]

    def each(action: str, objects: str, tool: str = "") -> list[Intent]:
        return [i for part in re.split(r"\s+and\s+|,\s*", objects) if part.strip()
                for i in one(action, part, tool=tool)]

    if re.match(r"^make (the |my )?bed\b", c):
        return one("CLEAN", "bed")
    if re.match(r"^darken\b", c):
        return [Intent("DARKEN", clause=clause)]
    if m := re.match(r"^make coffee(?: in (.+))?$", c):
        return one("COFFEE", m.group(1) or "mug")
    if m := re.match(r"^leave (?:the )?(tap|faucet|water|shower)\s+(running|on)$", c):
        return one("TOGGLE_ON", m.group(1))
    if m := re.match(r"^(?:wash|rinse|clean)\s+(.+?)(?:\s+(?:at|in|under)\s+(?:the\s+)?(?:sink|tap|faucet|basin))?$", c):
        washed = m.group(1)
        if re.search(r"\b(?:that is|which is|that's)$", washed):  # "the mug that is in the sink": where it is
            washed = c.split(None, 1)[1]
        return each("WASH", washed)
    if m := re.match(r"^(?:slice|cut|chop)(?:\s+up)?\s+(.+)$", c):
        return each("SLICE", m.group(1))
    if m := re.match(r"^toast\s+(.+?)(?:\s+in\s+(?:the\s+)?toaster)?$", c):
        return one("TOAST", m.group(1))
    if m := re.match(r"^(?:cook|heat|warm up|warm|microwave|boil|fry)\s+(.+?)"
                     r"(?:\s+(?:in|on|with)\s+(?:the\s+|a\s+)?(microwave|stove|stove burner|burner|toaster|pan|pot))?$", c):
        tool = {"stove": "StoveBurner", "stove burner": "StoveBurner", "burner": "StoveBurner", "pan": "StoveBurner",
                "pot": "StoveBurner", "microwave": "Microwave", "toaster": "Toaster"}.get(m.group(2) or "", "")
        return one("HEAT", m.group(1), tool=tool)
    if m := re.match(r"^chill\s+(.+)$", c):
        return one("PUT", m.group(1), "fridge")
    if m := re.match(r"^fill\s+(.+?)(?:\s+(?:at|in|from|with)\s+(?:the\s+)?(?:sink|tap|faucet|water))*$", c):
        return one("FILL", m.group(1))
    if m := re.match(r"^(?:throw|toss)\s+(?:away\s+)?(.+?)(?:\s+(?:away|out))?(?:\s+(?:in|into)\s+(?:the\s+)?"
                     r"(?:trash|bin|garbage|garbage can|trash can))?(?:\s+away)?$", c) or \
            re.match(r"^(?:discard|dispose of|bin)\s+(.+)$", c):
        return one("PUT", m.group(1), "garbage can")
    if m := re.match(r"^(?:turn|switch|shut)\s+(on|off)\s+(.+)$", c) or \
            re.match(r"^(?:turn|switch|shut)\s+(.+?)\s+(on|off)$", c):
        on_off, obj = (m.group(1), m.group(2)) if m.group(1) in ("on", "off") else (m.group(2), m.group(1))
        return one("TOGGLE_ON" if on_off == "on" else "TOGGLE_OFF", obj)
    if m := re.match(r"^light\s+(.+?)(?:\s+(?:and|then)\s+.*)?$", c):
        return one("TOGGLE_ON", m.group(1))
    if m := re.match(r"^(?:break|smash)\s+(.+)$", c):
        return one("BREAK", m.group(1))
    if m := re.match(r"^open\s+(.+)$", c):
        return one("OPEN", m.group(1))
    if m := re.match(r"^(?:close|shut)\s+(.+)$", c):
        return one("CLOSE", m.group(1))
    if m := re.match(r"^(?:take|get|pick up|pick|grab)\s+(.+?)\s+(?:out of|out|from|off)(?:\s+(?:the\s+)?.+)?$", c):
        return one("PICKUP", m.group(1))
    if m := re.match(r"^(put|place|move|bring|set|take|serve|leave|hang|drop|return|carry)\s+(.+)$", c):
        serve = m.group(1) == "serve"
        split = _split_put(m.group(2), first=serve)
        if split is None:
            raise PlanValidationError(f"cannot tell what to put where in {clause!r}")
        # "the apple and the mug", "serve the toast with something red": each object goes there
        joiner = r"\s+(?:and|with)\s+" if serve else r"\s+and\s+"
        objects = re.split(joiner + r"(?=(?:the|a|an|some|my|something|what)\b)", split[0])
        return [i for obj in objects for i in one("PUT", obj, split[1])]
    if m := re.match(r"^(?:pick up|pick|grab|hold|get|take)\s+(.+)$", c):
        return one("PICKUP", re.sub(r"^up\s+", "", m.group(1)))
    raise PlanValidationError(f"no known action in {clause!r} (known verbs: put, wash, slice, cook/heat, toast, "
                              "fill, throw away, turn on/off, light, open, close, pick up, make the bed)")


def split_instruction(text: str) -> list[str]:
    """Split a high-level instruction into its sub-instructions, in order.

    >>> split_instruction("Wash the apple, slice it, then put the washed fruit in the fridge.")
    ['wash the apple', 'slice it', 'put the washed fruit in the fridge']
    """
    if not isinstance(text, str) or not text.strip():
        raise PlanValidationError("empty instruction")
    return _split_clauses(text)


def parse_instruction(text: str) -> list[Intent]:
    """Parse one (sub-)instruction into intents, in order.

    Raises:
        PlanValidationError: naming the clause that has no known action.

    >>> [(i.action, i.obj.text, i.target.text if i.target else None) for i in parse_instruction(
    ...     "Take the tomato out of the fridge and wash it")]
    [('PICKUP', 'tomato', None), ('WASH', 'it', None)]
    >>> i = parse_instruction("Put the fruit from the sink in the fridge.")[0]
    >>> (i.obj.text, i.obj.location, i.target.text)
    ('fruit', 'sink', 'fridge')
    """
    if not isinstance(text, str) or not text.strip():
        raise PlanValidationError("empty instruction")
    intents: list[Intent] = []
    for clause in _split_clauses(text):
        intents.extend(_clause_intents(clause))
    return intents
