"""Turn model output text into a validated Plan: extract JSON, repair the safe slips, reject the rest; never execute."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.lexicon import THOR_OBJECT_TYPES
from karma_memory.core.planner.base import Plan
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall, validate_call

__all__ = ["MAX_STEPS", "MAX_TEXT_CHARS", "SKILL_ALIASES", "parse_plan", "extract_json", "resolve_skill"]

MAX_STEPS = 50
#: Longer model output is rejected outright (a runaway generation, not a plan).
MAX_TEXT_CHARS = 100_000
_MAX_CANDIDATES = 20


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).casefold()


#: Other names models use for our skills (keys compared case- and separator-insensitively).
SKILL_ALIASES: dict[str, str] = {
    "ToggleObjectOn": "ToggleOn", "ToggleObjectOff": "ToggleOff", "TurnOn": "ToggleOn", "TurnOff": "ToggleOff",
    "SwitchObjectOn": "SwitchOn", "SwitchObjectOff": "SwitchOff",
    "GoTo": "GoToObject", "NavigateTo": "GoToObject", "NavigateToObject": "GoToObject", "MoveTo": "GoToObject",
    "MoveToObject": "GoToObject", "Search": "Explore", "SearchObject": "Explore", "FindObject": "Explore",
    "Pickup": "PickupObject", "Pick": "PickupObject", "Put": "PutObject", "Place": "PutObject",
    "PlaceObject": "PutObject", "Open": "OpenObject", "Close": "CloseObject", "Slice": "SliceObject",
    "Throw": "ThrowObject", "Drop": "DropHandObject", "DropObject": "DropHandObject", "Clean": "CleanObject",
    "Wash": "CleanObject", "WashObject": "CleanObject", "Cook": "CookObject", "Fill": "FillObject",
    "Empty": "EmptyObject", "Break": "BreakObject",
}
_SKILL_KEYS: dict[str, str] = {**{_key(a): s for a, s in SKILL_ALIASES.items()}, **{_key(s): s for s in SKILL_SCHEMA}}

_STEP_LIST_KEYS = ("steps", "plan", "actions", "subtasks", "tasks")
_SKILL_KEYS_IN_STEP = ("skill", "action", "name", "function", "tool", "skill_name")
_ARGS_KEYS_IN_STEP = ("args", "arguments", "parameters", "params", "kwargs", "input")
_RATIONALE_KEYS = ("rationale", "reasoning", "explanation", "thought", "thoughts", "comment")
_ROBOT_ARGS = {"robot", "robots", "agent", "robotid"}
_AREA_ALIASES = {"area", "position", "positions", "location", "locations", "areaids", "nodes", "areanodes"}
_OBJECT_ALIASES = {"obj", "objectid", "objecttype", "target", "targetobject", "destobj", "swobj", "item",
                   "putobj", "objname", "objectname"}
_RECEPTACLE_ALIASES = {"recp", "recep", "receptacleobject", "receptacleobjectid", "receptacletype",
                       "destination", "into", "onto", "target", "targetreceptacle"}
_PUT_HELD_ALIASES = {"object", "obj", "putobj", "objectid", "objecttype", "item"}
_THOR_KEYS = {t.casefold(): t for t in THOR_OBJECT_TYPES}
_AREA_NUMBER = re.compile(r"^(?:area|node|area\s*node)?[\s_\-]*(\d+)$", re.IGNORECASE)
_CALL_LINE = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(.*\)\s*$", re.MULTILINE)
_DEF_LINE = re.compile(r"^\s*def\s+\w+\s*\(", re.MULTILINE)
_EXPECTED = '{"steps": [{"skill": "<SkillName>", "args": {...}}, ...]}'
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+\-]*)[ \t]*\n?(.*?)```", re.DOTALL)


def resolve_skill(name: str) -> str | None:
    """Canonical skill name for a (mis-spelled-case or aliased) name, or None.

    >>> resolve_skill("toggle_object_on"), resolve_skill("GoTo"), resolve_skill("Fly")
    ('ToggleOn', 'GoToObject', None)
    """
    return _SKILL_KEYS.get(_key(name)) if isinstance(name, str) else None


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


# ---- JSON extraction ---------------------------------------------------------------------------------------
def _match_end(text: str, start: int) -> int | None:
    """Index of the bracket closing the one at ``start`` (string-aware), or None when unterminated."""
    stack: list[str] = []
    in_string = escaped = False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if not stack or stack.pop() != c:
                return None
            if not stack:
                return i
    return None


def _drop_trailing_commas(text: str) -> str:
    """Remove commas directly before a closing bracket, outside strings."""
    out: list[str] = []
    in_string = escaped = False
    for i, c in enumerate(text):
        if in_string:
            escaped = (c == "\\") and not escaped
            if c == '"' and not escaped:
                in_string = False
        elif c == '"':
            in_string = True
        elif c == ",":
            rest = text[i + 1:].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(c)
    return "".join(out)


def _loads(candidate: str, notes: list[str]) -> Any:
    """json.loads, retrying once without trailing commas (a safe repair).

    Raises:
        json.JSONDecodeError: the candidate is not JSON.
        PlanValidationError: the JSON is nested too deeply to decode.
    """
    try:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as err:
            fixed = _drop_trailing_commas(candidate)
            if fixed == candidate:
                raise
            try:
                value = json.loads(fixed)
            except json.JSONDecodeError:
                raise err from None
            notes.append("removed trailing comma(s) from the JSON")
            return value
    except RecursionError:
        raise PlanValidationError("model output JSON is nested too deeply") from None


def _plan_like(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, Mapping) for v in value)
    if isinstance(value, Mapping):
        return any(k in value for k in _STEP_LIST_KEYS + _SKILL_KEYS_IN_STEP) or \
            (len(value) == 1 and resolve_skill(str(next(iter(value)))) is not None)
    return False


def _json_error(err: json.JSONDecodeError, candidate: str) -> str:
    if _match_end(candidate, 0) is None and candidate[:1] in "{[":
        return (f"invalid JSON in model output: unterminated {candidate[0]!r} block (output truncated?): "
                f"{_short(candidate)!r}")
    return f"invalid JSON in model output: {err.msg} at line {err.lineno} column {err.colno} in {_short(candidate)!r}"


def _looks_like_json(candidate: str) -> bool:
    """Worth reporting as broken JSON (an object, or a list holding strings/objects), not '[1]' in prose."""
    return bool(re.match(r"\s*(\{|\[\s*[\[{\"])", candidate))


def extract_json(text: str, notes: list[str] | None = None) -> tuple[Any, str]:
    """Find the plan JSON in model output: the whole text, a ```json fence, or the first balanced {...}/[...].

    Returns:
        (the decoded JSON value, the prose around it).

    Raises:
        PlanValidationError: no JSON at all (prose), or JSON that does not decode.

    >>> extract_json('Sure! ```json\\n{"steps": []}\\n``` Done.')[0]
    {'steps': []}
    """
    notes = [] if notes is None else notes
    stripped = text.strip()
    errors: list[str] = []
    fallback: tuple[Any, str] | None = None
    try:
        value = _loads(stripped, notes)
        if _plan_like(value):
            return value, ""
        if isinstance(value, Mapping):
            fallback = (value, "")
    except json.JSONDecodeError as err:
        if _looks_like_json(stripped):
            errors.append(_json_error(err, stripped))
    for match in _FENCE.finditer(text):
        lang, body = match.group(1).casefold(), match.group(2).strip()
        if lang in ("python", "py"):
            continue
        try:
            value = _loads(body, notes)
        except json.JSONDecodeError as err:
            if _looks_like_json(body):
                errors.append(_json_error(err, body))
            continue
        if _plan_like(value):
            return value, (text[: match.start()] + text[match.end():]).strip()
    pos = 0
    for _ in range(_MAX_CANDIDATES):
        found = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not found:
            break
        start = min(found)
        end = _match_end(text, start)
        if end is None:
            if _looks_like_json(text[start:]):  # truncated JSON: what follows are fragments of it, never a plan
                errors.append(_json_error(json.JSONDecodeError("unterminated", text, start), text[start:]))
                break
            pos = start + 1
            continue
        candidate = text[start:end + 1]
        try:
            value = _loads(candidate, notes)
        except json.JSONDecodeError as err:
            if _looks_like_json(candidate):
                errors.append(_json_error(err, candidate))
            pos = end + 1  # blocks inside a broken block are fragments of it, never a plan
            continue
        prose = (text[:start] + text[end + 1:]).strip()
        if _plan_like(value):
            return value, prose
        if isinstance(value, Mapping) and fallback is None:
            fallback = (value, prose)
        pos = end + 1
    if fallback is not None:
        return fallback
    if errors:
        raise PlanValidationError(errors[0])
    raise PlanValidationError(f"no JSON plan in model output (prose or no steps): {_short(text)!r}; expected "
                              f"{_EXPECTED}")


# ---- Python-code-like output -------------------------------------------------------------------------------
def _looks_like_code(text: str) -> bool:
    if _DEF_LINE.search(text) or re.search(r"```\s*(python|py)\b", text, re.IGNORECASE):
        return True
    return any(resolve_skill(m.group(1)) for m in _CALL_LINE.finditer(text))


def _code_of(text: str) -> str:
    fences = [m.group(2) for m in _FENCE.finditer(text) if m.group(1).casefold() in ("python", "py", "")]
    if fences:
        return "\n".join(fences)
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _DEF_LINE.match(line) or _CALL_LINE.match(line)), 0)
    return "\n".join(lines[start:])


def _literal(node: ast.expr, lineno: int) -> str | list[str] | None:
    """A string constant or list of them; None for a robot-name variable; anything else is rejected."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                      for e in node.elts):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    if isinstance(node, ast.Name) and _key(node.id).rstrip("0123456789") in _ROBOT_ARGS:
        return None
    raise PlanValidationError(f"Python code is not accepted as a plan: line {lineno}: argument "
                              f"{ast.unparse(node)!r} is not a string constant")


def _code_to_steps(code: str) -> list[dict[str, Any]]:
    """Convert simple call lines (``PickupObject(robot, 'Apple')``) to raw steps with ast — nothing is executed."""
    try:
        tree = ast.parse(code, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise PlanValidationError(f"Python code is not accepted as a plan and does not even parse: {err}") from None
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    calls: list[ast.Call] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef) and not node.decorator_list:
                visit(node.body)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                calls.append(node.value)
            elif isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                continue  # docstrings, pass
            else:
                raise PlanValidationError(f"Python code is not accepted as a plan: line {node.lineno}: "
                                          f"{type(node).__name__} statement {_short(ast.unparse(node), 60)!r}; "
                                          "only skill calls with string arguments can be converted")

    visit(tree.body)
    steps: list[dict[str, Any]] = []
    for call in calls:
        if not isinstance(call.func, ast.Name):
            raise PlanValidationError(f"Python code is not accepted as a plan: line {call.lineno}: call of "
                                      f"{ast.unparse(call.func)!r}; only skill calls can be converted")
        name = call.func.id
        if name in defined and not call.args and not call.keywords:
            continue  # the trailing task() invocation
        skill = resolve_skill(name)
        if skill is None:
            raise PlanValidationError(f"Python code is not accepted as a plan: line {call.lineno}: unknown "
                                      f"skill {name!r}")
        positional = [v for v in (_literal(a, call.lineno) for a in call.args) if v is not None]
        args: dict[str, Any] = {}
        params = list(SKILL_SCHEMA[skill])
        if skill == "PutObject" and len(positional) == 2:  # the paper's PutObject(robot, put_obj, recp)
            args["object"], args["receptacle"] = positional
        elif len(positional) > len(params):
            raise PlanValidationError(f"Python code: line {call.lineno}: {skill} takes {params}, got "
                                      f"{len(positional)} arguments")
        else:
            args.update(zip(params, positional))
        for kw in call.keywords:
            value = _literal(kw.value, call.lineno)
            if kw.arg is None:
                raise PlanValidationError(f"Python code: line {call.lineno}: **kwargs are not accepted")
            if value is not None:
                args[kw.arg] = value
        steps.append({"skill": name, "args": args})
    return steps


# ---- step normalisation ------------------------------------------------------------------------------------
def _steps_of(value: Any, notes: list[str]) -> tuple[list[Any], str]:
    """The list of raw steps (and a rationale) from decoded JSON."""
    if isinstance(value, list):
        return value, ""
    if not isinstance(value, Mapping):
        raise PlanValidationError(f"model output JSON is a {type(value).__name__}, not a plan object: "
                                  f"{_short(json.dumps(value))!r}")
    rationale = next((str(value[k]) for k in _RATIONALE_KEYS if isinstance(value.get(k), str)), "")
    if "steps" in value:
        steps = value["steps"]
    else:
        key = next((k for k in _STEP_LIST_KEYS if isinstance(value.get(k), list)), None)
        if key is not None:
            notes.append(f"read steps from key {key!r} instead of 'steps'")
            steps = value[key]
        elif _plan_like(value) and not any(isinstance(value.get(k), list) for k in _STEP_LIST_KEYS):
            notes.append("a single step object was given; treated as a one-step plan")
            steps = [value]
        else:
            raise PlanValidationError(f"model output JSON has no 'steps' list (keys: {sorted(map(str, value))})")
    if not isinstance(steps, list):
        raise PlanValidationError(f"'steps' must be a list, got {type(steps).__name__}: {_short(repr(steps))}")
    return steps, rationale


def _fix_type(value: Any, known: Sequence[str] | None, where: str, notes: list[str]) -> Any:
    if not isinstance(value, str) or "|" in value:
        return value
    name = value.strip()
    pool = {t.casefold(): t for t in known} if known is not None else _THOR_KEYS
    if (known is None or name not in known) and name.casefold() in pool and pool[name.casefold()] != name:
        notes.append(f"{where}: object {value!r} renamed to {pool[name.casefold()]!r}")
        return pool[name.casefold()]
    return value


def _fix_areas(value: Any, area_ids: Sequence[str] | None, where: str, notes: list[str]) -> Any:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s;]+", value) if p]
        notes.append(f"{where}: 'areas' given as the string {value!r}; read as the list {parts}")
        value = parts
    if area_ids is None or not isinstance(value, (list, tuple)):
        return value
    known = set(area_ids)
    kept: list[Any] = []
    for area in value:
        if isinstance(area, str) and area in known:
            kept.append(area)
            continue
        match = _AREA_NUMBER.match(str(area).strip()) if isinstance(area, (str, int)) and \
            not isinstance(area, bool) else None
        mapped = f"area_{match.group(1)}" if match else None
        if mapped in known:
            notes.append(f"{where}: area {area!r} read as {mapped!r}")
            kept.append(mapped)
        else:
            notes.append(f"{where}: dropped unknown area id {area!r}")
    return kept


def _normalise_step(raw: Any, index: int, known_types: Sequence[str] | None, area_ids: Sequence[str] | None,
                    notes: list[str]) -> SkillCall:
    where = f"step {index}"
    if not isinstance(raw, Mapping):
        raise PlanValidationError(f"{where}: must be an object with 'skill' and 'args', got "
                                  f"{type(raw).__name__} {_short(repr(raw), 60)}")
    raw = dict(raw)
    skill_key = next((k for k in _SKILL_KEYS_IN_STEP if k in raw), None)
    if skill_key is None and len(raw) == 1 and resolve_skill(str(next(iter(raw)))) is not None \
            and isinstance(next(iter(raw.values())), Mapping):
        name, args_raw = next(iter(raw.items()))
        notes.append(f"{where}: step written as {{{name!r}: {{...}}}}; read as skill + args")
        raw = {"skill": name, "args": args_raw}
        skill_key = "skill"
    if skill_key is None:
        raise PlanValidationError(f"{where}: no 'skill' key (keys: {sorted(map(str, raw))})")
    name = raw.pop(skill_key)
    if skill_key != "skill":
        notes.append(f"{where}: skill read from key {skill_key!r}")
    if not isinstance(name, str):
        raise PlanValidationError(f"{where}: 'skill' must be a string, got {name!r}")
    skill = resolve_skill(name)
    if skill is None:
        raise PlanValidationError(f"{where}: unknown skill {name!r}; known: {sorted(SKILL_SCHEMA)}")
    if skill != name:
        notes.append(f"{where}: skill {name!r} renamed to {skill!r}")
    args_key = next((k for k in _ARGS_KEYS_IN_STEP if k in raw), None)
    args: Any = raw.pop(args_key) if args_key else {}
    if args_key not in (None, "args"):
        notes.append(f"{where}: arguments read from key {args_key!r}")
    if isinstance(args, str) and args_key == "arguments":  # OpenAI tool-call style: a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError as err:
            raise PlanValidationError(f"{where} ({skill}): 'arguments' is not valid JSON: {err.msg}") from None
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise PlanValidationError(f"{where} ({skill}): 'args' must be an object, got {type(args).__name__} "
                                  f"{_short(repr(args), 60)}")
    args = dict(args)
    if raw:  # arguments written beside 'skill'
        notes.append(f"{where}: argument(s) {sorted(map(str, raw))} given outside 'args'")
        for k, v in raw.items():
            args.setdefault(k, v)
    schema = SKILL_SCHEMA[skill]
    for k in [k for k in args if _key(str(k)) in _ROBOT_ARGS]:
        del args[k]
        notes.append(f"{where}: dropped the robot argument {k!r}")
    if skill == "PutObject":
        rec = next((k for k in args if _key(str(k)) in _RECEPTACLE_ALIASES | {"receptacle"}), None)
        held = [k for k in args if _key(str(k)) in _PUT_HELD_ALIASES]
        if rec is None and held:
            raise PlanValidationError(f"{where} (PutObject): missing 'receptacle' (PutObject puts the held object "
                                      f"into/onto a receptacle; got {sorted(map(str, args))})")
        for k in held:
            notes.append(f"{where}: PutObject({k}={args[k]!r}, ...) two-argument form: kept only the receptacle")
            del args[k]
    for k in [k for k in args if k not in schema]:
        norm = _key(str(k))
        target = ("areas" if norm in _AREA_ALIASES else
                  "receptacle" if norm in _RECEPTACLE_ALIASES and "receptacle" in schema else
                  "object" if norm in _OBJECT_ALIASES | {"object"} else None)
        if target in schema and target not in args:
            args[target] = args.pop(k)
            notes.append(f"{where}: argument {k!r} renamed to {target!r}")
    for k in list(args):
        kind = schema.get(k, (None,))[0]
        if kind == "object":
            args[k] = _fix_type(args[k], known_types, where, notes)
        elif kind == "areas":
            args[k] = _fix_areas(args[k], area_ids, where, notes)
            if args[k] == [] and area_ids is not None:
                del args[k]
                notes.append(f"{where}: no known area left; Explore searches every area")
    try:
        return validate_call(SkillCall(skill, args), known_types)
    except PlanValidationError as err:
        raise PlanValidationError(f"{where}: {err}") from None


def parse_plan(text: str, known_types: Sequence[str] | None = None, area_ids: Sequence[str] | None = None, *,
               max_steps: int = MAX_STEPS, source: str = "", allow_code: bool = False) -> Plan:
    """Parse model output into a validated Plan; nothing in it is ever evaluated or executed.

    Accepted: a JSON object ``{"steps": [{"skill": ..., "args": {...}}, ...]}`` or a list of steps, raw, in a
    ```json fence or as the first balanced block in prose. Safe slips are repaired and noted in
    ``Plan.repaired``: skill case and aliases (ToggleObjectOn→ToggleOn, GoTo→GoToObject), the paper's
    ``PutObject(object, receptacle)`` form (keeps the receptacle), argument aliases, a dropped robot argument,
    object-type case, unknown Explore area ids (dropped), trailing commas.

    Args:
        text: the model output.
        known_types: object types of the scene (None = any type).
        area_ids: area node ids Explore may name (None = not checked).
        max_steps: the longest plan accepted.
        source: recorded in Plan.source.
        allow_code: convert Python-style call lines (``PickupObject(robot, 'Apple')``) into steps with
            ``ast.parse`` — parsed, never executed; only calls with string constants. False rejects code.

    Raises:
        PlanValidationError: naming the step number (1-based) and the problem; for prose, invalid JSON,
            code, unknown skills, bad arguments, an empty plan or more than ``max_steps`` steps.

    >>> parse_plan('{"steps": [{"skill": "toggleobjecton", "args": {"object": "Faucet"}}]}').steps
    (SkillCall(skill='ToggleOn', args={'object': 'Faucet'}),)
    """
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be an int >= 1, got {max_steps!r}")
    if not isinstance(text, str):
        raise PlanValidationError(f"model output must be text, got {type(text).__name__}")
    if not text.strip():
        raise PlanValidationError("empty model output: no plan")
    if len(text) > MAX_TEXT_CHARS:
        raise PlanValidationError(f"model output is {len(text)} characters (> {MAX_TEXT_CHARS}); not a plan")
    notes: list[str] = []
    try:
        value, prose = extract_json(text, notes)
        json_error = None if _plan_like(value) else "not a plan"
    except PlanValidationError as err:
        value, prose, json_error = None, "", str(err)
    if json_error is not None and _looks_like_code(text):
        if not allow_code:
            raise PlanValidationError(
                f"model answered with Python code ({_short(_code_of(text), 60)!r}); code is never executed: "
                f"answer with JSON {_EXPECTED}")
        notes = [n for n in notes if "trailing comma" not in n]
        value = _code_to_steps(_code_of(text))
        notes.append("converted Python-style skill calls to JSON steps (parsed with ast, not executed)")
    elif json_error is not None and value is None:
        raise PlanValidationError(json_error)
    steps, rationale = _steps_of(value, notes)
    if not steps:
        raise PlanValidationError("empty plan: 'steps' has no steps")
    if len(steps) > max_steps:
        raise PlanValidationError(f"plan has {len(steps)} steps; at most {max_steps} are allowed")
    calls: list[SkillCall] = []
    problems: list[str] = []
    for i, raw in enumerate(steps, start=1):
        try:
            calls.append(_normalise_step(raw, i, known_types, area_ids, notes))
        except PlanValidationError as err:
            problems.append(str(err))
    if problems:
        raise PlanValidationError("; ".join(problems))
    if not rationale and prose:
        rationale = _short(prose, 1000)
    return Plan(tuple(calls), source=source, rationale=rationale, repaired=tuple(notes))
