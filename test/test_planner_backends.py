"""LLM planner backends over real HTTP to a scripted local server: plans, retries, repair round, timeouts, registry."""

from __future__ import annotations

import socket
import time
from unittest.mock import MagicMock

import pytest

from llm_server import FakeLLMServer, plan_json
from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.planner.backends import (
    OpenAICompatBackend,
    backend_names,
    make_backend,
    register_backend,
)
from karma_memory.core.planner.backends.openai_compat import chat_completions_url
from karma_memory.core.planner.base import ChatMessage, Plan, PlannerBackend, PlanningContext
from karma_memory.core.planner.prompt import build_messages
from karma_memory.core.skills import SkillCall

APPLE = [("Explore", {"object": "Apple", "areas": ["area_1"]}), ("PickupObject", {"object": "Apple"})]
APPLE_STEPS = (SkillCall("Explore", {"object": "Apple", "areas": ("area_1",)}),
               SkillCall("PickupObject", {"object": "Apple"}))


@pytest.fixture
def server():
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("KARMA_LLM_API_KEY", raising=False)


def backend(server, **kw) -> OpenAICompatBackend:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 5)
    return OpenAICompatBackend(server.base_url, "test-model", **kw)


def context(**kw) -> PlanningContext:
    messages = build_messages("pick up the apple", stm_text="{apple is dirty}", ltm_text=None, area_ranking=None,
                              completed=[], examples=[])
    kw.setdefault("messages", messages)
    kw.setdefault("known_types", ["Apple", "Fridge", "Faucet"])
    kw.setdefault("area_ids", ["area_0", "area_1"])
    return PlanningContext("pick up the apple", **kw)


# ---- happy path and request shape ----------------------------------------------------------------------------
def test_valid_plan_over_http_and_request_shape(server):
    server.reply_plan(*APPLE)
    ctx = context()
    plan = backend(server).plan(ctx)
    assert isinstance(plan, Plan) and plan.steps == APPLE_STEPS
    assert plan.source == "openai:test-model" and plan.repaired == ()
    request = server.requests[0]
    assert server.paths == ["/v1/chat/completions"]
    assert request["model"] == "test-model" and request["temperature"] == 0 and request["max_tokens"] == 1024
    assert request["response_format"] == {"type": "json_object"} and request["stream"] is False
    assert request["messages"] == [{"role": m.role, "content": m.content} for m in ctx.messages]
    assert "Authorization" not in server.headers[0]


def test_api_key_from_argument_or_environment_is_sent_but_never_shown(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    server.reply_plan(*APPLE).reply_plan(*APPLE).reply_plan(*APPLE)
    backend(server).plan(context())
    monkeypatch.setenv("KARMA_LLM_API_KEY", "sk-karma")
    backend(server).plan(context())
    chosen = backend(server, api_key="sk-explicit")
    chosen.plan(context())
    assert [h.get("Authorization") for h in server.headers] == ["Bearer sk-openai", "Bearer sk-karma",
                                                                "Bearer sk-explicit"]
    assert "sk-" not in repr(chosen) and "sk-" not in str(vars(chosen).get("name"))


def test_context_without_messages_gets_a_default_prompt(server):
    server.reply_plan(*APPLE)
    backend(server).plan(PlanningContext("bring me the apple", completed=("wash the apple",)))
    contents = [m["content"] for m in server.requests[0]["messages"]]
    assert "bring me the apple" in contents[-1] and any("{wash the apple}" in c for c in contents)


def test_flatten_sends_one_system_and_one_user_message(server):
    server.reply_plan(*APPLE)
    backend(server, flatten=True).plan(context())
    assert [m["role"] for m in server.requests[0]["messages"]] == ["system", "user"]


@pytest.mark.parametrize("base", ["{root}", "{root}/", "{root}/v1", "{root}/v1/chat/completions"])
def test_base_url_forms(server, base):
    server.reply_plan(*APPLE)
    OpenAICompatBackend(base.format(root=server.base_url), "m").plan(context())
    assert server.paths == ["/v1/chat/completions"]


def test_scene_types_and_area_ids_from_the_context_validate_the_plan(server):
    server.reply_plan(("Explore", {"object": "Apple", "areas": ["area_7", "area_1"]}))
    plan = backend(server).plan(context())
    assert plan.steps[0].args["areas"] == ("area_1",) and "dropped unknown area id 'area_7'" in plan.repaired[0]
    server.reply_plan(("PickupObject", {"object": "Banana"})).reply_plan(("PickupObject", {"object": "Banana"}))
    with pytest.raises(PlanValidationError, match="unknown object type 'Banana'"):
        backend(server).plan(context())


# ---- bad model output and the repair round -------------------------------------------------------------------
BAD_OUTPUTS = {
    "prose": ("First I will look for the apple, then pick it up.", "no JSON plan in model output"),
    "invalid json": ('{"steps": [{"skill": "Explore" "args": {}}]}', "invalid JSON in model output"),
    "unknown skill": (plan_json(("Teleport", {"object": "Apple"})), "step 1: unknown skill 'Teleport'"),
    "python def": ("def task():\n    PickupObject(robot, 'Apple')\ntask()", "model answered with Python code"),
    "wrong arg type": (plan_json(("PickupObject", {"object": 42})), "step 1: PickupObject: 'object' must be"),
    "empty plan": ('{"steps": []}', "empty plan"),
    "too long": (plan_json(*[("DropHandObject", {})] * 51), "plan has 51 steps; at most 50"),
    "empty content": ("", "empty model output"),
}


@pytest.mark.parametrize("kind", list(BAD_OUTPUTS))
def test_repair_round_fixes_bad_output(server, kind):
    bad, message = BAD_OUTPUTS[kind]
    server.reply_text(bad).reply_plan(*APPLE)
    plan = backend(server).plan(context())
    assert plan.steps == APPLE_STEPS
    assert plan.repaired[0].startswith("repair round 1: the model corrected its answer after: ")
    assert message in plan.repaired[0]
    second = server.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": bad}
    assert second[-1]["role"] == "user" and message in second[-1]["content"]
    assert '{"steps":' in second[-1]["content"]
    assert second[:-2] == server.requests[0]["messages"]


@pytest.mark.parametrize("kind", list(BAD_OUTPUTS))
def test_still_invalid_after_repair_raises_with_both_reasons(server, kind):
    bad, message = BAD_OUTPUTS[kind]
    server.reply_text(bad).reply_text("Sorry, I cannot produce JSON.")
    with pytest.raises(PlanValidationError) as info:
        backend(server).plan(context())
    text = str(info.value)
    assert text.startswith("openai:test-model: model output is not a valid plan: first answer: ")
    assert message in text and "after 1 repair round(s): no JSON plan in model output" in text
    assert len(server.requests) == 2


def test_server_failing_during_the_repair_round_names_both(server):
    server.reply_text("prose only").reply_status(500, "gpu fell off")
    with pytest.raises(PlanValidationError) as info:
        backend(server, max_retries=0).plan(context())
    text = str(info.value)
    assert text.startswith("LLM backend unavailable:") and "gpu fell off" in text
    assert "(while asking the model to repair: no JSON plan in model output" in text


def test_no_repair_round_when_disabled(server):
    server.reply_text("just prose")
    with pytest.raises(PlanValidationError, match="not a valid plan: no JSON plan in model output"):
        backend(server, repair_rounds=0).plan(context())
    assert len(server.requests) == 1


def test_code_conversion_can_be_enabled(server):
    server.reply_text("def task():\n    PickupObject(robot, 'Apple')\ntask()")
    plan = backend(server, allow_code=True).plan(context())
    assert plan.steps == (SkillCall("PickupObject", {"object": "Apple"}),)
    assert any("parsed with ast, not executed" in n for n in plan.repaired)


# ---- transport failures: retries, timeouts, fallbacks ------------------------------------------------------
def test_5xx_is_retried_with_backoff_then_succeeds(server):
    server.reply_status(500).reply_status(503).reply_plan(*APPLE)
    assert backend(server, max_retries=2).plan(context()).steps == APPLE_STEPS
    assert len(server.requests) == 3


def test_persistent_5xx_raises_unavailable_naming_url_and_reason(server):
    for _ in range(3):
        server.reply_status(500, "model crashed")
    with pytest.raises(PlanValidationError) as info:
        backend(server, max_retries=2).plan(context())
    text = str(info.value)
    assert text.startswith(f"LLM backend unavailable: {server.base_url}/v1/chat/completions: HTTP 500")
    assert "model crashed" in text and "(after 3 attempts)" in text
    assert len(server.requests) == 3


def test_backoff_grows_between_retries(server):
    for _ in range(3):
        server.reply_status(502)
    start = time.monotonic()
    with pytest.raises(PlanValidationError, match="after 3 attempts"):
        backend(server, max_retries=2, backoff_s=0.2).plan(context())
    assert time.monotonic() - start >= 0.2 + 0.4 - 0.05


def test_429_honours_retry_after(server):
    server.reply_status(429, "slow down", **{"Retry-After": "0"}).reply_plan(*APPLE)
    assert backend(server, backoff_s=5).plan(context()).steps == APPLE_STEPS


def test_dropped_connection_is_retried(server):
    server.drop().reply_plan(*APPLE)
    assert backend(server, max_retries=1).plan(context()).steps == APPLE_STEPS
    assert len(server.requests) == 2


def test_connection_refused_raises_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAICompatBackend(f"http://127.0.0.1:{port}", "m", max_retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(PlanValidationError) as info:
        llm.plan(context())
    text = str(info.value)
    assert f"LLM backend unavailable: http://127.0.0.1:{port}/v1/chat/completions: cannot connect" in text
    assert "(after 2 attempts)" in text


def test_stalled_server_is_cut_by_the_timeout(server):
    server.stall(10)
    llm = backend(server, timeout_s=1, max_retries=0)
    start = time.monotonic()
    with pytest.raises(PlanValidationError) as info:
        llm.plan(context())
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 3, elapsed
    assert "LLM backend unavailable" in str(info.value) and "no answer within timeout_s=1" in str(info.value)


def test_stall_then_answer_succeeds_on_retry(server):
    server.stall(10).reply_plan(*APPLE)
    start = time.monotonic()
    assert backend(server, timeout_s=1, max_retries=1).plan(context()).steps == APPLE_STEPS
    assert time.monotonic() - start < 3


def test_response_format_400_falls_back_without_json_mode(server):
    server.reply_response_format_400().reply_plan(*APPLE).reply_plan(*APPLE)
    llm = backend(server, max_retries=0)
    assert llm.plan(context()).steps == APPLE_STEPS
    assert "response_format" in server.requests[0] and "response_format" not in server.requests[1]
    assert llm.json_mode is False
    llm.plan(context())
    assert "response_format" not in server.requests[2], "the fallback sticks"


@pytest.mark.parametrize("status, hint", [(401, "check the API key"), (404, "check base_url and model"),
                                          (400, "bad request")])
def test_client_errors_are_not_retried(server, status, hint):
    server.reply_status(status, "bad request")
    with pytest.raises(PlanValidationError) as info:
        backend(server, max_retries=3).plan(context())
    assert f"rejected the request: HTTP {status}" in str(info.value) and hint in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b'{"choices": []}', b'{"object": "list"}'])
def test_malformed_response_is_a_clear_error(server, body):
    server.reply_raw(200, body)
    with pytest.raises(PlanValidationError, match="malformed chat-completions response"):
        backend(server).plan(context())


# ---- configuration and registry ------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, message", [
    ({"base_url": "ftp://x"}, "base_url"), ({"base_url": ""}, "base_url"), ({"model": " "}, "model"),
    ({"timeout_s": 0}, "timeout_s"), ({"max_retries": -1}, "max_retries"), ({"max_retries": 1.5}, "max_retries"),
    ({"temperature": 3}, "temperature"), ({"max_tokens": 0}, "max_tokens"), ({"repair_rounds": 9}, "repair_rounds"),
])
def test_bad_settings_are_config_errors(kw, message):
    args = {"base_url": "http://127.0.0.1:1", "model": "m", **kw}
    with pytest.raises(ConfigError, match=message):
        OpenAICompatBackend(**args)


def test_chat_completions_url_forms():
    assert chat_completions_url("http://h:1/v1/chat/completions/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("https://h/api") == "https://h/api/v1/chat/completions"


def test_registry_builds_backends_by_name(server):
    assert {"openai", "llamacpp"} <= set(backend_names())
    llm = make_backend("openai", base_url=server.base_url, model="test-model", max_retries=0)
    assert isinstance(llm, OpenAICompatBackend) and isinstance(llm, PlannerBackend)
    server.reply_plan(*APPLE)
    assert llm.plan(context()).steps == APPLE_STEPS
    with pytest.raises(ConfigError, match="unknown planner backend 'gpt'; known: .*openai"):
        make_backend("gpt")
    with pytest.raises(ConfigError, match="planner backend 'openai': bad parameters"):
        make_backend("openai", base_url=server.base_url, model="m", temprature=0)
    with pytest.raises(ConfigError, match="model"):
        make_backend("openai", base_url=server.base_url)


def test_register_a_backend_factory():
    fake = MagicMock(spec=PlannerBackend)
    fake.name = "fake"
    fake.plan.return_value = Plan((SkillCall("DropHandObject", {}),), source="fake")
    factory = MagicMock(return_value=fake)
    register_backend("fake-test", factory, replace=True)
    built = make_backend("fake-test", depth=2)
    factory.assert_called_once_with(depth=2)
    assert built.plan(PlanningContext("x")).source == "fake"
    with pytest.raises(ConfigError, match="already registered"):
        register_backend("fake-test", MagicMock())
    with pytest.raises(ConfigError, match="lower-case"):
        register_backend("Fake", factory)
    with pytest.raises(ConfigError, match="callable"):
        register_backend("fake-x", 3)  # type: ignore[arg-type]
    register_backend("fake-bad", lambda: object(), replace=True)
    with pytest.raises(ConfigError, match="lacks name/plan"):
        make_backend("fake-bad")


def test_repair_message_carries_the_error_and_the_json_form():
    from karma_memory.core.planner.backends._chat import repair_message
    from karma_memory.core.planner.prompt import PLAN_FORMAT

    msg = repair_message("step 2: unknown skill 'Fly'")
    assert isinstance(msg, ChatMessage) and msg.role == "user"
    assert "step 2: unknown skill 'Fly'" in msg.content and PLAN_FORMAT in msg.content
