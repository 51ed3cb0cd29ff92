"""llama.cpp backend: the GBNF plan grammar (checked as a regular language), lazy import, the planning loop."""

from __future__ import annotations

import codecs
import json
import re
import sys
import types
from collections import deque

import pytest

from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.planner.backends import make_backend
from karma_memory.core.planner.backends.llamacpp import LlamaCppBackend, plan_grammar
from karma_memory.core.planner.base import PlannerBackend, PlanningContext
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall

_TOKEN = re.compile(r'\s*(?:(?P<lit>"(?:\\.|[^"\\])*")|(?P<cls>\[(?:\\.|[^\]\\])*\])|(?P<name>[a-z][a-z0-9-]*)'
                    r"|(?P<rep>\{\d+,\d*\})|(?P<op>[()|*+?]))")


def gbnf_rules(grammar: str) -> dict[str, str]:
    rules = {}
    for line in grammar.strip().splitlines():
        name, sep, body = line.partition(" ::= ")
        assert sep and re.fullmatch(r"[a-z][a-z0-9-]*", name), f"bad rule line {line!r}"
        assert name not in rules, f"rule {name} defined twice"
        rules[name] = body
    return rules


def gbnf_to_regex(grammar: str) -> re.Pattern[str]:
    """Translate our (non-recursive) GBNF to a Python regex, so the language it accepts can be tested."""
    rules = gbnf_rules(grammar)

    def convert(name: str, seen: tuple[str, ...] = ()) -> str:
        assert name in rules, f"rule {name!r} referenced but not defined"
        assert name not in seen, f"recursive rule {name}"
        body, pos, out = rules[name], 0, []
        while body[pos:].strip():
            match = _TOKEN.match(body, pos)
            assert match, f"cannot read rule {name} at {body[pos:]!r}"
            pos = match.end()
            if match["lit"]:
                out.append(re.escape(codecs.decode(match["lit"][1:-1], "unicode_escape")))
            elif match["cls"]:
                out.append(match["cls"])
            elif match["name"]:
                out.append("(?:" + convert(match["name"], seen + (name,)) + ")")
            elif match["rep"]:
                out.append(match["rep"])
            else:
                out.append("(?:" if match["op"] == "(" else match["op"])
        return "".join(out)

    return re.compile(convert("root"))


def steps_json(*steps, indent=None) -> str:
    return json.dumps({"steps": [{"skill": s, "args": a} for s, a in steps]}, indent=indent)


def example_args(params) -> dict:
    return {n: (["area_1"] if kind == "areas" else "Apple") for n, (kind, _) in params.items()}


# ---- the grammar -----------------------------------------------------------------------------------------------
def test_grammar_names_every_skill_and_defines_every_rule():
    grammar = plan_grammar()
    rules = gbnf_rules(grammar)
    for skill in SKILL_SCHEMA:
        assert f'"\\"{skill}\\""' in grammar
    assert rules["step"].count("|") == len(SKILL_SCHEMA) - 1
    gbnf_to_regex(grammar)  # raises if a referenced rule is missing or recursive


def test_grammar_accepts_every_valid_step_in_compact_and_indented_json():
    pattern = gbnf_to_regex(plan_grammar())
    for skill, params in SKILL_SCHEMA.items():
        for indent in (None, 2):
            text = steps_json((skill, example_args(params)), indent=indent)
            assert pattern.fullmatch(text), text
    required_only = {s: {n: v for n, v in example_args(p).items() if p[n][1]} for s, p in SKILL_SCHEMA.items()}
    assert pattern.fullmatch(steps_json(*required_only.items()))
    assert pattern.fullmatch(steps_json(("PickupObject", {"object": "Apple|+01.20|+00.90|-00.30"})))
    assert pattern.fullmatch(steps_json(("Explore", {"object": "Apple", "areas": []})))


@pytest.mark.parametrize("text", [
    steps_json(("Teleport", {"object": "Apple"})),                       # unknown skill
    steps_json(("PickupObject", {})),                                     # missing required argument
    steps_json(("PickupObject", {"obj": "Apple"})),                       # wrong argument name
    steps_json(("PutObject", {"object": "Apple", "receptacle": "Fridge"})),  # extra argument
    steps_json(("PickupObject", {"object": 3})),                          # wrong type
    steps_json(("Explore", {"object": "Apple", "areas": "area_1"})),      # areas not a list
    '{"steps": []}',                                                      # empty plan
    "def task():\n    PickupObject(robot, 'Apple')",                      # code
    "Sure! " + steps_json(("PickupObject", {"object": "Apple"})),         # prose
])
def test_grammar_rejects_what_parse_plan_would_reject(text):
    assert not gbnf_to_regex(plan_grammar()).fullmatch(text)


def test_grammar_enumerates_scene_types_and_area_ids():
    grammar = plan_grammar(known_types=["Apple", "Fridge"], area_ids=["area_0", "area_1"])
    pattern = gbnf_to_regex(grammar)
    assert pattern.fullmatch(steps_json(("Explore", {"object": "Fridge", "areas": ["area_1", "area_0"]})))
    assert pattern.fullmatch(steps_json(("PickupObject", {"object": "Apple|+01.20|+00.90|-00.30"})))
    assert not pattern.fullmatch(steps_json(("PickupObject", {"object": "Banana"})))
    assert not pattern.fullmatch(steps_json(("Explore", {"object": "Apple", "areas": ["area_7"]})))
    assert gbnf_rules(grammar)["object-type"] == '"Apple" | "Fridge"'


def test_grammar_from_a_custom_schema():
    schema = {"Wave": {}, "Look": {"areas": ("areas", False), "object": ("object", False)}}
    pattern = gbnf_to_regex(plan_grammar(schema=schema))
    assert pattern.fullmatch(steps_json(("Wave", {}), ("Look", {}), ("Look", {"areas": ["a"]})))
    with pytest.raises(ConfigError, match="at least one skill"):
        plan_grammar(schema={})


# ---- the backend, with llama_cpp missing or replaced by an in-process fake -----------------------------------
def test_missing_llama_cpp_is_a_clear_config_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="pip install llama-cpp-python and give model_path"):
        LlamaCppBackend(tmp_path / "m.gguf")
    with pytest.raises(ConfigError, match="pip install llama-cpp-python"):
        make_backend("llamacpp", model_path=str(tmp_path / "m.gguf"))


class FakeLlama:
    """Stands in for llama_cpp.Llama: scripted answers, records calls."""

    last: FakeLlama | None = None

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.replies: deque[str] = deque()
        self.calls: list[dict] = []
        FakeLlama.last = self

    def create_chat_completion(self, messages, temperature, max_tokens, grammar):
        self.calls.append({"messages": messages, "temperature": temperature, "grammar": grammar})
        if not self.replies:
            raise ValueError("Requested tokens exceed context window")
        return {"choices": [{"message": {"role": "assistant", "content": self.replies.popleft()}}]}


class FakeGrammar:
    @classmethod
    def from_string(cls, text, verbose=True):
        grammar = cls()
        grammar.text = text
        return grammar


@pytest.fixture
def fake_llama(monkeypatch, tmp_path):
    module = types.ModuleType("llama_cpp")
    module.Llama = FakeLlama
    module.LlamaGrammar = FakeGrammar
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    return model


def test_model_path_is_required_and_must_exist(fake_llama, tmp_path):
    with pytest.raises(ConfigError, match="needs a model"):
        LlamaCppBackend(None)
    with pytest.raises(ConfigError, match="is not a file"):
        LlamaCppBackend(tmp_path / "missing.gguf")


def test_plans_with_the_grammar_of_the_context(fake_llama):
    llm = make_backend("llamacpp", model_path=str(fake_llama), seed=7)
    assert isinstance(llm, PlannerBackend) and llm.name == "llamacpp:tiny"
    assert FakeLlama.last.kwargs["model_path"] == str(fake_llama) and FakeLlama.last.kwargs["seed"] == 7
    FakeLlama.last.replies.append(steps_json(("PickupObject", {"object": "Apple"})))
    ctx = PlanningContext("pick up the apple", known_types=("Apple", "Fridge"), area_ids=("area_0",))
    plan = llm.plan(ctx)
    assert plan.steps == (SkillCall("PickupObject", {"object": "Apple"}),) and plan.source == "llamacpp:tiny"
    call = FakeLlama.last.calls[0]
    assert '"Apple" | "Fridge"' in call["grammar"].text and call["temperature"] == 0.0
    assert call["messages"][-1]["role"] == "user" and "pick up the apple" in call["messages"][-1]["content"]


def test_repair_round_and_generation_failure(fake_llama):
    llm = LlamaCppBackend(fake_llama, use_grammar=False)
    FakeLlama.last.replies.extend(["I would drop it.", steps_json(("DropHandObject", {}))])
    plan = llm.plan(PlanningContext("drop it"))
    assert plan.steps == (SkillCall("DropHandObject", {}),) and plan.repaired[0].startswith("repair round 1")
    assert FakeLlama.last.calls[0]["grammar"] is None
    with pytest.raises(PlanValidationError, match="llama.cpp generation failed: ValueError: Requested tokens"):
        llm.plan(PlanningContext("drop it"))


def test_unknown_argument_kinds_get_a_string_rule():
    assert "string ::=" not in plan_grammar()
    grammar = plan_grammar(schema={"Say": {"text": ("text", True)}})
    assert gbnf_to_regex(grammar).fullmatch(steps_json(("Say", {"text": "hello there"})))
