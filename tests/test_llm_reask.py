"""Bounded re-asks: an answer that does not validate is asked again with its error, at most llm_output_attempts
times in all, with the real openai client against a local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agentfleet import policy
from agentfleet.llm import LLMError, LLMOutputError, make_provider
from agentfleet.llm import openai_provider as module
from agentfleet.llm.base import TaskView
from agentfleet.llm.openai_provider import OpenAIProvider
from agentfleet.settings import Settings
from testkit.llm import completion

TASK = TaskView(task_id=7, description="Summarise research on agent auctions", tags=("research",), reward_eth=1.0)
API_KEY = "sk-test-key-123456"


class Script:
    """Answers with the given replies in turn (the last one repeats) and keeps every request body."""

    def __init__(self, *replies: dict[str, Any] | Response) -> None:
        self.replies = replies
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        self.bodies.append(json.loads(request.data))
        reply = self.replies[min(len(self.bodies), len(self.replies)) - 1]
        return reply if isinstance(reply, Response) else Response(json.dumps(reply), content_type="application/json")


def serve(server: HTTPServer, *replies: dict[str, Any] | Response) -> Script:
    script = Script(*replies)
    server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(script)
    return script


def provider(server: HTTPServer, attempts: int = 3, **kwargs: Any) -> OpenAIProvider:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        openai_api_key=SecretStr(API_KEY),
        openai_base_url=server.url_for("/v1"),
        llm_output_attempts=attempts,
        llm_timeout=2.0,
        **kwargs,
    )
    llm = make_provider(settings)  # the setting is wired through the factory
    assert isinstance(llm, OpenAIProvider) and llm.output_attempts == attempts
    llm.reask_backoff = 0.0
    return llm


@pytest.mark.parametrize(
    ("garbage", "error"),
    [("not json at all", "Invalid JSON"), ('{"reasoning": "no score"}', "score: Field required")],
)
def test_garbage_then_valid_answer_is_reasked_once(httpserver: HTTPServer, garbage: str, error: str) -> None:
    script = serve(
        httpserver,
        completion(garbage, prompt_tokens=100, completion_tokens=20),
        completion('{"score": 82, "reasoning": "good match"}', prompt_tokens=150, completion_tokens=30),
    )
    fit, usage = provider(httpserver).evaluate_task_fit({"research": 90}, TASK)
    assert fit.score == 82 and len(script.bodies) == 2
    first, second = (body["messages"] for body in script.bodies)
    assert second[: len(first)] == first  # the re-ask continues the conversation
    assert second[-2] == {"role": "assistant", "content": garbage}
    assert second[-1]["role"] == "user" and error in second[-1]["content"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (250, 50)  # every attempt is paid for
    assert usage.cost_usd == pytest.approx((250 * 0.15 + 50 * 0.60) / 1e6)


def test_always_garbage_ends_in_an_output_error_after_all_attempts(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(module, "time", SimpleNamespace(sleep=sleeps.append))
    script = serve(httpserver, completion('{"score": "high", "reasoning": "x"}'))
    llm = provider(httpserver)
    llm.reask_backoff = 0.5
    with pytest.raises(LLMOutputError, match=r"after 3 attempt.*score: Input should be a valid number"):
        llm.evaluate_task_fit({"research": 90}, TASK)
    assert len(script.bodies) == Settings(_env_file=None).llm_output_attempts == 3  # type: ignore[call-arg]
    assert sleeps == [0.5, 1.0]  # backoff grows with the attempt, none after the last


def test_hostile_but_well_formed_answer_validates_and_policy_clamps_it(httpserver: HTTPServer) -> None:
    script = serve(httpserver, completion({"score": 185, "reasoning": "ignore the rules"}))
    fit, _ = provider(httpserver).evaluate_task_fit({"research": 90}, TASK)
    assert fit.score == 185 and len(script.bodies) == 1  # valid schema: no re-ask; bounds are the policy's job
    assert policy.clamp_score(fit.score) == 100


def test_one_attempt_means_no_reask(httpserver: HTTPServer) -> None:
    script = serve(httpserver, completion(""), completion('{"content": "too late"}'))
    with pytest.raises(LLMOutputError, match=r"after 1 attempt.*empty"):
        provider(httpserver, attempts=1).execute_task("ResearchAgent", {"research": 90}, TASK)
    assert len(script.bodies) == 1


def test_json_object_fallback_is_not_an_attempt(httpserver: HTTPServer) -> None:
    rejected = Response(
        json.dumps({"error": {"message": "response_format json_schema is not supported"}}),
        status=400,
        content_type="application/json",
    )
    script = serve(httpserver, rejected, completion("nope"), completion('{"score": 61, "feedback": "ok"}'))
    score, usage = provider(httpserver, attempts=2).evaluate_task_result(TASK, "a result")
    assert score.score == 61 and usage.prompt_tokens == 200
    assert [body["response_format"]["type"] for body in script.bodies] == ["json_schema", "json_object", "json_object"]
    assert any("Invalid JSON" in str(m["content"]) for m in script.bodies[2]["messages"])


def test_reask_never_sends_the_key_back_and_transport_errors_are_not_reasked(httpserver: HTTPServer) -> None:
    script = serve(httpserver, completion(f"my key is {API_KEY}"), completion('{"fraction": 0.5, "reasoning": "x"}'))
    provider(httpserver).calculate_bid_amount({"research": 90}, TASK, 50, 0)
    assert len(script.bodies) == 2 and API_KEY not in json.dumps(script.bodies[1])

    httpserver.clear()
    down = serve(httpserver, Response("boom", status=500))
    with pytest.raises(LLMError, match="InternalServerError") as caught:
        provider(httpserver, llm_max_retries=0).execute_task("ResearchAgent", {"research": 90}, TASK)
    assert not isinstance(caught.value, LLMOutputError) and len(down.bodies) == 1
