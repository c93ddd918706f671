"""The offline provider: deterministic, no network, and labelled offline in every output.

Why: ``make demo`` and the tests must run with no API key. Fit comes from keyword overlap between the
agent's weighted capabilities and the task's tags and text; results and scores are clearly not an LLM's.
"""

from __future__ import annotations

import hashlib
import re

from agentfleet.llm.base import BidAdvice, ExecutionResult, FitEvaluation, ResultScore, TaskView, Usage

LABEL = "[offline provider: no LLM was called]"
_WORDS = re.compile(r"[a-z0-9_]+")


class OfflineProvider:
    name = "offline"
    offline = True

    def evaluate_task_fit(self, capabilities: dict[str, int], task: TaskView) -> tuple[FitEvaluation, Usage]:
        words = set(_WORDS.findall(task.description.lower())) | {t.lower() for t in task.tags}
        hits = [w for c, w in capabilities.items() if c.lower() in words or c.lower().split("_")[0] in words]
        score = 0.0 if not hits else min(100.0, 40 + 0.6 * max(hits))
        matched = sorted(c for c in capabilities if c.lower() in words)
        return FitEvaluation(score=score, reasoning=f"{LABEL} keyword match on {matched or 'nothing'}"), Usage()

    def calculate_bid_amount(
        self, capabilities: dict[str, int], task: TaskView, reputation: int, workload: int
    ) -> tuple[BidAdvice, Usage]:
        return BidAdvice(fraction=0.7, reasoning=f"{LABEL} no advice; the strategy decides"), Usage()

    def execute_task(
        self, agent_name: str, capabilities: dict[str, int], task: TaskView
    ) -> tuple[ExecutionResult, Usage]:
        digest = hashlib.sha256(task.description.encode()).hexdigest()[:12]
        content = (
            f"{LABEL}\nAgent {agent_name} would work on task {task.task_id} "
            f"(tags: {', '.join(task.tags) or 'none'}; task text sha256 {digest}) with capabilities "
            f"{', '.join(sorted(capabilities))}."
        )
        return ExecutionResult(content=content), Usage()

    def evaluate_task_result(self, task: TaskView, result: str) -> tuple[ResultScore, Usage]:
        covered = sum(1 for t in task.tags if t.lower() in result.lower())
        score = 55 + 40 * covered / max(1, len(task.tags)) if result.strip() else 0
        return ResultScore(score=score, feedback=f"{LABEL} tags covered: {covered}/{len(task.tags)}"), Usage()
