"""LLM providers: the real openai client against a local HTTP server, and the offline provider."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agentfleet import policy
from agentfleet.llm.base import LLMError, LLMOutputError, TaskView
from agentfleet.llm.offline import LABEL, OfflineProvider
from agentfleet.llm.openai_provider import OpenAIProvider
from testkit.llm import completion

TASK = TaskView(task_id=7, description="Summarise research on agent auctions", tags=("research",), reward_eth=1.0)


def provider(server: HTTPServer, **kwargs: Any) -> OpenAIProvider:
    return OpenAIProvider(api_key="sk-test-key-123456", base_url=server.url_for("/v1"), timeout=2.0, **kwargs)


def test_structured_output_is_parsed_and_usage_recorded(httpserver: HTTPServer) -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: Request) -> Response:
        seen.append(json.loads(request.data))
        return Response(
            json.dumps(completion('{"score": 82, "reasoning": "good match"}')), content_type="application/json"
        )

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(answer)
    fit, usage = provider(httpserver).evaluate_task_fit({"research": 90}, TASK)
    assert fit.score == 82 and usage.prompt_tokens == 100 and usage.completion_tokens == 20
    assert usage.cost_usd == pytest.approx((100 * 0.15 + 20 * 0.60) / 1e6)
    assert seen[0]["response_format"]["type"] == "json_schema"
    assert "untrusted" in seen[0]["messages"][0]["content"]


def test_server_rejecting_json_schema_gets_json_object_fallback(httpserver: HTTPServer) -> None:
    formats: list[str] = []

    def answer(request: Request) -> Response:
        body = json.loads(request.data)
        formats.append(body["response_format"]["type"])
        if body["response_format"]["type"] == "json_schema":
            error = {
                "error": {"message": "response_format json_schema is not supported", "type": "invalid_request_error"}
            }
            return Response(json.dumps(error), status=400, content_type="application/json")
        return Response(json.dumps(completion('{"score": 61, "feedback": "ok"}')), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(answer)
    llm = provider(httpserver)
    score, _ = llm.evaluate_task_result(TASK, "a result")
    again, _ = llm.evaluate_task_result(TASK, "another")  # remembers: no second json_schema attempt
    assert (score.score, again.score) == (61, 61)
    assert formats == ["json_schema", "json_object", "json_object"]


def test_429_is_retried_then_answered(httpserver: HTTPServer) -> None:
    calls = {"n": 0}

    def answer(_request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return Response('{"error": {"message": "slow down"}}', status=429, headers={"retry-after": "0"})
        return Response(
            json.dumps(completion('{"fraction": 0.6, "reasoning": "fair"}')), content_type="application/json"
        )

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(answer)
    advice, _ = provider(httpserver).calculate_bid_amount({"research": 90}, TASK, 50, 0)
    assert advice.fraction == 0.6 and calls["n"] == 2


def test_persistent_500_ends_in_a_visible_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_data("boom", status=500)
    with pytest.raises(LLMError, match="InternalServerError"):
        provider(httpserver, max_retries=1).execute_task("ResearchAgent", {"research": 90}, TASK)


def test_timeout_ends_in_a_visible_error(httpserver: HTTPServer) -> None:
    import time

    def slow(_request: Request) -> Response:
        time.sleep(1.5)
        return Response(json.dumps(completion('{"content": "late"}')), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(slow)
    llm = OpenAIProvider(api_key="sk-x", base_url=httpserver.url_for("/v1"), timeout=0.5, max_retries=0)
    with pytest.raises(LLMError, match="Timeout"):
        llm.execute_task("ResearchAgent", {"research": 90}, TASK)


@pytest.mark.parametrize("content", ["not json at all", '{"score": "high"}', '{"reasoning": "no score"}'])
def test_invalid_answers_are_output_errors(httpserver: HTTPServer, content: str) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_json(completion(content))
    with pytest.raises(LLMOutputError):
        provider(httpserver).evaluate_task_fit({"research": 90}, TASK)


def test_offline_provider_labels_every_output() -> None:
    llm = OfflineProvider()
    fit, _ = llm.evaluate_task_fit({"research": 90, "coding": 50}, TASK)
    result, _ = llm.execute_task("ResearchAgent", {"research": 90}, TASK)
    score, _ = llm.evaluate_task_result(TASK, result.content)
    assert fit.score > 50 and LABEL in fit.reasoning
    assert result.content.startswith(LABEL) and LABEL in score.feedback
    unfit, _ = llm.evaluate_task_fit({"coding": 90}, TASK)
    assert unfit.score == 0


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30), st.text(max_size=5)))
def test_policy_bounds_hold_for_any_llm_number(value: Any) -> None:
    reward = 10**18
    amount = policy.bid_amount(reward, value)
    assert policy.MIN_BID_FRACTION * reward - 1 <= amount <= reward
    score = policy.clamp_score(value)
    assert 0 <= score <= 100 and not math.isnan(score)


def test_results_are_limited_and_secrets_scrubbed() -> None:
    text = "key sk-live-abcdef123 " + "é" * policy.MAX_RESULT_BYTES
    cleaned = policy.limit_result(policy.scrub(text, ["sk-live-abcdef123"]))
    assert "sk-live" not in cleaned and len(cleaned.encode()) <= policy.MAX_RESULT_BYTES
    assert "\x00" not in policy.clean_task_text("a\x00b" * 3000) and len(policy.clean_task_text("x" * 10**5)) == 4000
