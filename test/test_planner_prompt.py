"""Prompt builder: the prototype's message order, ablations, skill API from the schema, examples, token budget."""

from __future__ import annotations

import pytest

from helpers import HashEmbedder, grid
from karma_memory.core.errors import ConfigError
from karma_memory.core.long_term import LongTermMemory
from karma_memory.core.planner.base import ChatMessage
from karma_memory.core.planner.parsing import parse_plan
from karma_memory.core.planner.prompt import (
    EXPERIENCE_BANK,
    Example,
    approx_tokens,
    build_messages,
    flatten_messages,
    plan_to_json,
    select_examples,
    skill_api_text,
)
from karma_memory.core.priors import ithor_scene_lists
from karma_memory.core.short_term import MemoryUnit
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall


@pytest.fixture(scope="module")
def kitchen() -> LongTermMemory:
    objects = [dict(o) for o in ithor_scene_lists()["FloorPlan1"]]
    return LongTermMemory.from_thor_objects(objects, grid(-2.0, 1.0, -2.0, 2.0), scene="FloorPlan1",
                                            embedder=HashEmbedder())


STM = "\n".join(MemoryUnit(f"Apple|{i}", "Apple", (0.1 * i, 0.9, 0.0), ("cleaned",), relation="inside Fridge|1")
                .as_fact() for i in range(3))


def build(**kw):
    args = dict(stm_text=STM, ltm_text="Topological graph:\n{name: area_0, type: Area, contains: [Fridge], "
                "adjacent nodes: [], position: (0.00, 0.00, 0.00)}", area_ranking=None,
                completed=["throw the apple in the trash"], examples=None)
    args.update(kw)
    return build_messages("wash the apple", **args)


def total_tokens(messages) -> int:
    return sum(approx_tokens(m.content) + 4 for m in messages)


def test_messages_follow_the_prototype_order_and_ask_for_json():
    msgs = build()
    assert [m.role for m in msgs] == ["user", "user", "system", "user", "user", "user", "user", "user"]
    skills, api, role, examples, emphasis, stm, ltm, instruction = (m.content for m in msgs)
    assert skills.startswith("Available skills:") and all(s in skills for s in SKILL_SCHEMA)
    assert api.startswith("Skill API")
    assert "Explore" in role and '{"steps":' in role and "JSON" in role
    assert examples.count("#EXAMPLE") == 3
    assert "previously performed tasks" in emphasis and "{throw the apple in the trash}" in emphasis
    assert stm.startswith("Short-term memory") and "{apple is inside the fridge}" in stm
    assert ltm.startswith("Long-term memory") and "{name: area_0" in ltm and "summarised" not in ltm
    assert instruction.endswith("Answer with the JSON plan only.") and "wash the apple" in instruction
    assert all(isinstance(m, ChatMessage) for m in msgs)


@pytest.mark.parametrize("stm, ltm", [(None, "x"), ("x", None), (None, None)])
def test_ablations_omit_the_memory_blocks(stm, ltm):
    msgs = build(stm_text=stm, ltm_text=ltm)
    texts = [m.content for m in msgs]
    assert any(t.startswith("Short-term memory") for t in texts) == (stm is not None)
    assert any(t.startswith("Long-term memory") for t in texts) == (ltm is not None)
    assert texts[-1].startswith("You are a Robot Task Decomposition Expert")


def test_empty_stm_says_so_and_held_object_is_stated():
    msgs = build(stm_text="", held_object="Knife|1")
    assert "(no short-term memory)" in msgs[5].content
    assert "holding Knife|1" in msgs[-1].content


def test_skill_api_has_one_line_per_skill_with_its_arguments():
    text = skill_api_text()
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(lines) == len(SKILL_SCHEMA)
    for line, (skill, params) in zip(lines, SKILL_SCHEMA.items()):
        assert line.startswith(f"- {skill}(")
        for name, (_, required) in params.items():
            assert f"{name}: " in line and (required or "(optional)" in line)
    explore = next(line for line in lines if line.startswith("- Explore("))
    assert "NOT known" in explore and "most likely first" in explore
    assert "Explore first" in next(line for line in lines if line.startswith("- GoToObject("))
    assert "DropHandObject(): " in text
    # a skill added to the schema later still gets a line
    extra = skill_api_text({**SKILL_SCHEMA, "Wave": {"object": ("object", True)}})
    assert "- Wave(object: str): no description" in extra


def test_experience_bank_examples_are_valid_plans():
    assert len(EXPERIENCE_BANK) == 4
    for example in EXPERIENCE_BANK:
        plan = parse_plan(plan_to_json(example.steps))
        assert plan.steps == example.steps and plan.repaired == ()
        assert example.to_text(1).startswith("#EXAMPLE 1 - Task Description:")


def test_examples_first_three_without_embedder_and_most_similar_with_one():
    assert select_examples("wash the apple") == list(EXPERIENCE_BANK[:3])
    chosen = select_examples("slice the bread and put it on a plate", embedder=HashEmbedder())
    assert len(chosen) == 3 and chosen[0].task.startswith("Slice the bread")
    assert select_examples("x", k=0) == []
    assert len(select_examples("x", k=9, embedder=HashEmbedder())) == 4
    with pytest.raises(ConfigError, match="-1"):
        select_examples("x", k=-1)
    msgs = build_messages("slice the bread", stm_text=None, ltm_text=None, area_ranking=None, completed=[],
                          examples=None, embedder=HashEmbedder())
    assert msgs[3].content.startswith("Task decomposition examples:\n\n#EXAMPLE 1 - Task Description: Slice the bread")


def test_explicit_and_empty_example_lists():
    mine = Example("Open the fridge.", (SkillCall("OpenObject", {"object": "Fridge"}),), memory="{fridge is closed}")
    msgs = build(examples=[mine])
    assert "#EXAMPLE 1 - Task Description: Open the fridge." in msgs[3].content
    assert "Memory: {fridge is closed}" in msgs[3].content and "#EXAMPLE 2" not in msgs[3].content
    assert not any("#EXAMPLE" in m.content for m in build(examples=[]))


def test_whole_graph_fits_a_generous_budget(kitchen):
    msgs = build(ltm_text=kitchen.to_prompt(), area_ranking=kitchen.rank_areas("Apple", use_semantic=False))
    ltm = msgs[6].content
    assert "summarised" not in ltm and ltm.count("{name: area_") == len(kitchen.area_positions())
    assert "best first: area_4 (Apple last seen here" in ltm
    assert total_tokens(msgs) <= 6000


def test_large_graph_is_summarised_to_top_ranked_areas(kitchen):
    ranking = kitchen.rank_areas("Apple", use_semantic=False)
    base = total_tokens(build(ltm_text=None, area_ranking=ranking))
    budget = base + 500  # room for about three areas of this kitchen
    msgs = build(ltm_text=kitchen.to_prompt(), area_ranking=ranking, token_budget=budget)
    assert total_tokens(msgs) <= budget
    ltm = msgs[6].content
    kept = [line.split(",")[0][len("{name: "):] for line in ltm.splitlines() if line.startswith("{name: ")]
    n_areas = len(kitchen.area_positions())
    assert 1 <= len(kept) < n_areas
    assert kept == [a.area_id for a in ranking[: len(kept)]], "best-ranked areas, best first"
    assert f"summarised to fit the prompt: showing {len(kept)} of {n_areas} areas" in ltm
    assert ltm.splitlines()[1] == "Topological graph:"
    # the movable objects listed under a kept area stay with it
    assert "Apple" in ltm
    assert msgs[3].content.count("#EXAMPLE") == 3, "examples are kept while the graph can shrink"


def test_summary_without_ranking_keeps_graph_order(kitchen):
    base = total_tokens(build(ltm_text=None))
    msgs = build(ltm_text=kitchen.to_prompt(), area_ranking=None, token_budget=base + 400)
    ltm = msgs[6].content
    kept = [line.split(",")[0][len("{name: "):] for line in ltm.splitlines() if line.startswith("{name: ")]
    assert kept == [f"area_{i}" for i in range(len(kept))] and "first in graph order" in ltm


def test_examples_then_stm_shrink_when_memory_alone_is_too_big():
    stm = "\n".join(f"{{object {i} is at ({i}.00, 0.90, 0.00)}} {{object {i} is cleaned}}" for i in range(400))
    base = total_tokens(build(stm_text="", ltm_text=None, examples=[]))
    msgs = build(stm_text=stm, ltm_text=None, token_budget=base + 300)
    assert total_tokens(msgs) <= base + 300
    assert not any("#EXAMPLE" in m.content for m in msgs)
    stm_msg = next(m.content for m in msgs if m.content.startswith("Short-term memory"))
    assert "{object 0 is at" in stm_msg and "{object 399" not in stm_msg
    assert "of 400 facts shown" in stm_msg


def test_budget_too_small_and_bad_inputs_are_config_errors():
    with pytest.raises(ConfigError, match="token_budget=300 is too small"):
        build(token_budget=300)
    with pytest.raises(ConfigError, match="token_budget"):
        build(token_budget=10)
    with pytest.raises(ConfigError, match="instruction"):
        build_messages("  ", stm_text=None, ltm_text=None, area_ranking=None, completed=[], examples=None)
    with pytest.raises(ConfigError, match="area_ranking"):
        build(area_ranking=[3.5], token_budget=2200, ltm_text="{name: area_0, x}\n" * 200)


def test_area_ids_as_strings_are_accepted_as_ranking(kitchen):
    base = total_tokens(build(ltm_text=None))
    msgs = build(ltm_text=kitchen.to_prompt(), area_ranking=["area_8", "area_7"], token_budget=base + 400)
    kept = [line.split(",")[0][len("{name: "):] for line in msgs[6].content.splitlines()
            if line.startswith("{name: ")]
    assert kept[:2] == ["area_8", "area_7"]


def test_flatten_keeps_system_first_and_repair_turns():
    msgs = build()
    flat = flatten_messages(msgs)
    assert [m.role for m in flat] == ["system", "user"]
    assert flat[1].content.startswith("Available skills") and flat[1].content.endswith("JSON plan only.")
    repair = (*msgs, ChatMessage("assistant", "oops"), ChatMessage("user", "fix it"))
    assert [m.role for m in flatten_messages(repair)] == ["system", "user", "assistant", "user"]
