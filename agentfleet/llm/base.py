"""The provider interface, its structured outputs, and what every provider must guarantee."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, Field


class LLMError(RuntimeError):
    """The provider could not answer (after its own retries)."""


class LLMOutputError(LLMError):
    """The provider answered, but not with what the schema asks for (invalid JSON, wrong fields)."""


class FitEvaluation(BaseModel):
    score: float = Field(description="0-100: how well the agent's capabilities fit the task")
    reasoning: str = Field(description="one or two sentences")


class BidAdvice(BaseModel):
    fraction: float = Field(description="suggested bid as a fraction of the reward, 0-1")
    reasoning: str


class ExecutionResult(BaseModel):
    content: str = Field(description="the complete deliverable")


class ResultScore(BaseModel):
    score: float = Field(description="0-100 quality score of the result for the task")
    feedback: str


@dataclass(frozen=True)
class TaskView:
    """The task as a prompt may see it: untrusted text, cleaned and bounded by the caller."""

    task_id: int
    description: str
    tags: tuple[str, ...]
    reward_eth: float


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""

    def __add__(self, other: Usage) -> Usage:
        """Usage of several requests (re-asks) as one: every attempt is paid for, so every attempt counts."""
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
            self.model or other.model,
        )


class LLMProvider(Protocol):
    name: str
    offline: bool

    def evaluate_task_fit(self, capabilities: dict[str, int], task: TaskView) -> tuple[FitEvaluation, Usage]: ...

    def calculate_bid_amount(
        self, capabilities: dict[str, int], task: TaskView, reputation: int, workload: int
    ) -> tuple[BidAdvice, Usage]: ...

    def execute_task(
        self, agent_name: str, capabilities: dict[str, int], task: TaskView
    ) -> tuple[ExecutionResult, Usage]: ...

    def evaluate_task_result(self, task: TaskView, result: str) -> tuple[ResultScore, Usage]: ...
