"""Model output → validated Plan: JSON extraction, safe repairs (recorded), clear rejections, nothing executed."""

from __future__ import annotations

import json

import pytest

from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.planner.base import Plan
from karma_memory.core.planner.parsing import MAX_TEXT_CHARS, extract_json, parse_plan, resolve_skill
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall

AREAS = ["area_0", "area_1", "area_2", "area_3"]
TYPES = ["Apple", "Fridge", "Faucet", "Knife", "Bread", "CounterTop", "GarbageCan", "LightSwitch"]
GOOD = {"steps": [
    {"skill": "Explore", "args": {"object": "Apple", "areas": ["area_2", "area_0"]}},
    {"skill": "PickupObject", "args": {"object": "Apple"}},
    {"skill": "GoToObject", "args": {"object": "Fridge"}},
    {"skill": "OpenObject", "args": {"object": "Fridge"}},
    {"skill": "PutObject", "args": {"receptacle": "Fridge"}},
    {"skill": "DropHandObject", "args": {}},
]}
EXPECTED = (
    SkillCall("Explore", {"object": "Apple", "areas": ("area_2", "area_0")}),
    SkillCall("PickupObject", {"object": "Apple"}),
    SkillCall("GoToObject", {"object": "Fridge"}),
    SkillCall("OpenObject", {"object": "Fridge"}),
    SkillCall("PutObject", {"receptacle": "Fridge"}),
    SkillCall("DropHandObject", {}),
)


def parse(text, **kw) -> Plan:
    kw.setdefault("known_types", TYPES)
    kw.setdefault("area_ids", AREAS)
    return parse_plan(text, **kw)


def one(skill, **args) -> str:
    return json.dumps({"steps": [{"skill": skill, "args": args}]})


# ---- accepted forms ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("wrap", [
    lambda j: j,
    lambda j: f"  \n{j}\n",
    lambda j: f"Here is the plan:\n```json\n{j}\n```\nLet me know if you need more.",
    lambda j: f"```\n{j}\n```",
    lambda j: f"Sure! The plan is {j} and that is all.",
    lambda j: f"Note [1]: see below.\n{j}",
])
def test_plan_json_is_found_raw_fenced_or_in_prose(wrap):
    plan = parse(wrap(json.dumps(GOOD, indent=2)), source="test")
    assert plan.steps == EXPECTED and plan.repaired == () and plan.source == "test"


def test_top_level_list_of_steps_is_accepted():
    assert parse(json.dumps(GOOD["steps"])).steps == EXPECTED


def test_rationale_comes_from_the_json_or_the_surrounding_prose():
    assert parse(json.dumps({**GOOD, "reasoning": "apple goes cold"})).rationale == "apple goes cold"
    assert parse("I will cool the apple. " + json.dumps(GOOD)).rationale == "I will cool the apple."


def test_plan_is_data_of_validated_calls():
    plan = parse(json.dumps(GOOD))
    assert isinstance(plan.steps, tuple) and all(isinstance(s, SkillCall) for s in plan.steps)
    assert isinstance(plan.steps[0].args["areas"], tuple)


# ---- repairs (each recorded) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, skill", [
    ("ToggleObjectOn", "ToggleOn"), ("toggleon", "ToggleOn"), ("toggle_object_off", "ToggleOff"),
    ("GoTo", "GoToObject"), ("PickUpObject", "PickupObject"), ("pickup", "PickupObject"),
    ("SwitchObjectOff", "SwitchOff"), ("Search", "Explore"),
])
def test_skill_case_and_aliases_are_repaired(name, skill):
    args = {} if skill == "DropHandObject" else {"object": "Faucet"}
    plan = parse(one(name, **args))
    assert plan.steps[0].skill == skill
    assert plan.repaired == (f"step 1: skill {name!r} renamed to {skill!r}",)
    assert resolve_skill(name) == skill


def test_two_argument_putobject_keeps_the_receptacle():
    plan = parse(one("PutObject", object="Apple", receptacle="Fridge"))
    assert plan.steps == (SkillCall("PutObject", {"receptacle": "Fridge"}),)
    assert "two-argument form: kept only the receptacle" in plan.repaired[0]
    # the paper's parameter names, with the robot argument
    plan = parse(one("PutObject", robot="robot1", put_obj="Apple", recp="Fridge"))
    assert plan.steps == (SkillCall("PutObject", {"receptacle": "Fridge"}),)
    assert any("robot" in n for n in plan.repaired) and any("'recp' renamed to 'receptacle'" in n
                                                            for n in plan.repaired)


def test_unknown_explore_areas_are_dropped_and_numbers_mapped():
    plan = parse(one("Explore", object="Apple", areas=["area_9", "area_1", "Area node 3", 2]))
    assert plan.steps[0].args["areas"] == ("area_1", "area_3", "area_2")
    assert plan.repaired == ("step 1: dropped unknown area id 'area_9'", "step 1: area 'Area node 3' read as "
                             "'area_3'", "step 1: area 2 read as 'area_2'")
    plan = parse(one("Explore", object="Apple", areas=["kitchen"]))
    assert plan.steps[0].args == {"object": "Apple"}
    assert plan.repaired[-1] == "step 1: no known area left; Explore searches every area"
    # without known area ids nothing is dropped, and a non-string id is an error
    assert parse(one("Explore", object="Apple", areas=["x"]), area_ids=None).steps[0].args["areas"] == ("x",)
    with pytest.raises(PlanValidationError, match="step 1: Explore: 'areas' must be a list of area ids"):
        parse(one("Explore", object="Apple", areas=[1.5]), area_ids=None)


def test_argument_aliases_flat_args_and_type_case():
    text = json.dumps({"steps": [
        {"skill": "Explore", "object": "apple", "positions": "area_1, area_2"},
        {"action": "SliceObject", "arguments": json.dumps({"obj": "Bread"})},
        {"OpenObject": {"object": "Fridge"}},
    ]})
    plan = parse(text)
    assert plan.steps == (SkillCall("Explore", {"object": "Apple", "areas": ("area_1", "area_2")}),
                          SkillCall("SliceObject", {"object": "Bread"}), SkillCall("OpenObject", {"object": "Fridge"}))
    notes = " | ".join(plan.repaired)
    for fragment in ("given outside 'args'", "'positions' renamed to 'areas'", "object 'apple' renamed to 'Apple'",
                     "skill read from key 'action'", "arguments read from key 'arguments'", "'obj' renamed",
                     "read as skill + args", "'areas' given as the string"):
        assert fragment in notes


def test_other_step_list_keys_single_step_and_trailing_commas():
    plan = parse('{"plan": [{"skill": "PickupObject", "args": {"object": "Apple"},},],}')
    assert plan.steps == (SkillCall("PickupObject", {"object": "Apple"}),)
    assert plan.repaired == ("removed trailing comma(s) from the JSON", "read steps from key 'plan' instead of 'steps'")
    plan = parse('{"skill": "DropHandObject", "args": {}}')
    assert plan.steps == (SkillCall("DropHandObject", {}),) and "one-step plan" in plan.repaired[0]


def test_object_ids_pass_and_thor_case_is_fixed_without_scene_types():
    plan = parse(one("PickupObject", object="Apple|+01.20|+00.90|-00.30"))
    assert plan.steps[0].args["object"] == "Apple|+01.20|+00.90|-00.30" and plan.repaired == ()
    plan = parse_plan(one("PickupObject", object="butterknife"))
    assert plan.steps[0].args["object"] == "ButterKnife" and "renamed to 'ButterKnife'" in plan.repaired[0]


# ---- rejections (clear messages naming the step and the problem) ---------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("", "empty model output"),
    ("   \n", "empty model output"),
    ("I would first look for the apple, then wash it in the sink.", "no JSON plan in model output"),
    ("[1, 2, 3]", "no JSON plan in model output"),
    ('{"steps": [{"skill": "PickupObject" "args": {}}]}', "invalid JSON in model output: Expecting ',' delimiter"),
    ('```json\n{"steps": [{"skill": "PickupObject", "args": {"object": "Apple"}}\n```',
     "unterminated '{' block (output truncated?)"),
    ('{"steps": [{"skill": "PickupObject", "args": {"object": "Apple"}', "output truncated?"),
    ('{"answer": "put it in the fridge"}', "no 'steps' list (keys: ['answer'])"),
    ('{"steps": []}', "empty plan"),
    ('{"steps": {"skill": "DropHandObject"}}', "'steps' must be a list"),
    (one("Fly", object="Apple"), "step 1: unknown skill 'Fly'; known: ['BreakObject'"),
    (one("PickupObject", object=3), "step 1: PickupObject: 'object' must be a non-empty string, got 3"),
    (one("PickupObject", object=["Apple"]), "step 1: PickupObject: 'object' must be a non-empty string"),
    (one("PickupObject"), "step 1: PickupObject: missing argument 'object'"),
    (one("PickupObject", object="Apple", speed="fast"), "step 1: PickupObject: unexpected argument(s) ['speed']"),
    (one("Explore", object="Apple", areas={"a": 1}), "step 1: Explore: 'areas' must be a list of area ids"),
    (one("PickupObject", object="Banana"), "step 1: PickupObject: unknown object type 'Banana'"),
    (one("PutObject", object="Fridge"), "step 1 (PutObject): missing 'receptacle'"),
    ('{"steps": ["PickupObject(Apple)"]}', "step 1: must be an object with 'skill' and 'args', got str"),
    ('{"steps": [{"args": {"object": "Apple"}}]}', "step 1: no 'skill' key"),
    ('{"steps": [{"skill": 7, "args": {}}]}', "step 1: 'skill' must be a string, got 7"),
    ('{"steps": [{"skill": "PickupObject", "args": "Apple"}]}', "step 1 (PickupObject): 'args' must be an object"),
    ('{"steps": [{"skill": "SliceObject", "arguments": "{bad"}]}', "step 1 (SliceObject): 'arguments' is not valid"),
])
def test_bad_output_is_rejected_with_a_clear_message(text, message):
    with pytest.raises(PlanValidationError) as info:
        parse(text)
    assert message in str(info.value)


def test_every_bad_step_is_named_with_its_number():
    steps = [{"skill": "PickupObject", "args": {"object": "Apple"}}, {"skill": "Fly", "args": {}},
             {"skill": "GoToObject", "args": {}}]
    with pytest.raises(PlanValidationError) as info:
        parse(json.dumps({"steps": steps}))
    message = str(info.value)
    assert "step 2: unknown skill 'Fly'" in message and "step 3: GoToObject: missing argument 'object'" in message
    assert "step 1" not in message


def test_plan_length_is_bounded():
    steps = [{"skill": "DropHandObject", "args": {}}] * 51
    with pytest.raises(PlanValidationError, match="plan has 51 steps; at most 50 are allowed"):
        parse(json.dumps({"steps": steps}))
    assert len(parse(json.dumps({"steps": steps[:50]})).steps) == 50
    with pytest.raises(PlanValidationError, match="at most 3"):
        parse(json.dumps({"steps": steps[:4]}), max_steps=3)
    with pytest.raises(ConfigError, match="max_steps"):
        parse(json.dumps(GOOD), max_steps=0)


def test_pathological_text_is_rejected_not_crashing():
    with pytest.raises(PlanValidationError, match="characters"):
        parse("x" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(PlanValidationError, match="nested too deeply"):
        parse("[" * 50_000 + "]" * 50_000)
    with pytest.raises(PlanValidationError, match="must be text"):
        parse_plan(None)  # type: ignore[arg-type]


# ---- Python-code-like output: rejected by default, never executed --------------------------------------------
CODE = '''def wash_apple():
    """Wash the apple."""
    Explore(robot, 'Apple', ['area_1', 'area_2'])
    PickupObject(robot, 'Apple')
    GoToObject(robot, 'Fridge')
    PutObject(robot, 'Apple', 'Fridge')
    ToggleObjectOn(robot, obj='Faucet')

wash_apple()
'''


@pytest.mark.parametrize("text", [CODE, f"```python\n{CODE}```", "PickupObject(robot, 'Apple')\nDropHandObject(robot)"])
def test_python_code_is_rejected_by_default(text):
    with pytest.raises(PlanValidationError) as info:
        parse(text)
    message = str(info.value)
    assert "model answered with Python code" in message and "never executed" in message and '{"steps"' in message


def test_simple_call_lines_convert_with_ast_when_allowed():
    plan = parse(CODE, allow_code=True)
    assert plan.steps == (SkillCall("Explore", {"object": "Apple", "areas": ("area_1", "area_2")}),
                          SkillCall("PickupObject", {"object": "Apple"}), SkillCall("GoToObject", {"object": "Fridge"}),
                          SkillCall("PutObject", {"receptacle": "Fridge"}), SkillCall("ToggleOn", {"object": "Faucet"}))
    assert "converted Python-style skill calls to JSON steps (parsed with ast, not executed)" in plan.repaired


@pytest.mark.parametrize("code, message", [
    ("def task():\n    import os\n    os.system('touch /tmp/karma_pwned')\n", "line 2: Import statement"),
    ("def task():\n    __import__('os').system('x')\n", "call of \"__import__('os').system\""),
    ("def task():\n    for o in ['Apple']:\n        PickupObject(robot, o)\n", "line 2: For statement"),
    ("def task():\n    obj = 'Apple'\n    PickupObject(robot, obj)\n", "line 2: Assign statement"),
    ("def task():\n    PickupObject(robot, name)\n", "argument 'name' is not a string constant"),
    ("def task():\n    PickupObject(robot, 'Apple'.upper())\n", "is not a string constant"),
    ("def task():\n    Teleport(robot, 'Apple')\n", "line 2: unknown skill 'Teleport'"),
    ("def task(:\n    PickupObject(robot, 'Apple')\n", "does not even parse"),
    ("def task():\n    PickupObject(robot, 'Apple', 'Fridge')\n", "PickupObject takes ['object'], got 2"),
])
def test_code_beyond_plain_skill_calls_is_rejected_even_when_allowed(code, message, tmp_path):
    with pytest.raises(PlanValidationError) as info:
        parse(code, allow_code=True)
    assert message in str(info.value)


def test_nothing_in_the_output_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"def task():\n    open({str(marker)!r}, 'w').write('x')\ntask()",
        f"import pathlib; pathlib.Path({str(marker)!r}).touch()",
        f"__import__('pathlib').Path({str(marker)!r}).touch()",
    ]
    for text in payloads:
        for allow in (False, True):
            with pytest.raises(PlanValidationError):
                parse(text, allow_code=allow)
    assert not marker.exists()


def test_json_wins_over_code_lookalikes():
    text = "PickupObject(robot, 'Apple') would be the code; as JSON:\n" + one("PickupObject", object="Apple")
    assert parse(text).steps == (SkillCall("PickupObject", {"object": "Apple"}),)


def test_a_truncated_plan_is_never_cut_down_to_its_complete_steps():
    text = 'Plan: {"steps": [{"skill": "PickupObject", "args": {"object": "Apple"}}, {"skill": "GoToObj'
    with pytest.raises(PlanValidationError, match="output truncated"):
        parse(text)
    text = '{"steps": [{"skill": "PickupObject", "args": {"object": "Apple"}} {"skill": "DropHandObject"}]}'
    with pytest.raises(PlanValidationError, match="invalid JSON"):
        parse(text)


def test_extract_json_reports_prose_around_the_block():
    value, prose = extract_json('before {"steps": []} after')
    assert value == {"steps": []} and prose == "before  after"


def test_every_schema_skill_round_trips():
    for skill, params in SKILL_SCHEMA.items():
        args = {name: (["area_1"] if kind == "areas" else "Apple") for name, (kind, _) in params.items()}
        assert parse(one(skill, **args), known_types=None).steps[0].skill == skill
