"""A local prefilter before the LLM: an agent whose skills do not reach a task never pays for a fit evaluation.

Why: the listener routes a new task to every active fleet agent sharing a capability with the task's tags, and
each of them asks the LLM for a fit (and online, for bid advice) before deciding. In a large fleet most of those
asks come from agents that are weak at what the task needs and would refuse or lose anyway. This check is
pure Python on what the agent already knows (its capability weights, the task's tags and text): no network,
microseconds, the same answer every time.

The rule: an agent's *reach* for a task is the highest weight among its capabilities that the task names,
as a tag or as a word of its text (``data_analysis`` also matches "data analysis" and "data-analysis").
A task that names none of the agent's capabilities has reach 0. Below ``min_weight`` the agent refuses
without asking the LLM, with the reason in its result. A task without tags is left to the LLM (its text may
need a skill it does not name: "write a poem"). ``min_weight`` 0 turns the prefilter off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Reach:
    """How far an agent's skills reach into a task: the best matching weight and what matched."""

    weight: int
    matched: tuple[str, ...]

    def enough(self, min_weight: int) -> bool:
        return min_weight <= 0 or self.weight >= min_weight


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _named(capability: str, tags: set[str], text: str) -> bool:
    """The task names this capability: as a tag, or its words in a row in the text."""
    name = capability.lower()
    if name in tags:
        return True
    parts = _words(name)
    return bool(parts) and f" {' '.join(parts)} " in text


def reach(capabilities: dict[str, int], tags: list[str], description: str) -> Reach | None:
    """The agent's reach for the task (see the module's docstring); None for a task without tags."""
    if not tags:
        return None
    tag_set = {t.lower() for t in tags}
    text = f" {' '.join(_words(description))} "
    matched = sorted((c for c in capabilities if _named(c, tag_set, text)), key=lambda c: -capabilities[c])
    best = max((int(capabilities[c]) for c in matched), default=0)
    return Reach(weight=best, matched=tuple(matched))
