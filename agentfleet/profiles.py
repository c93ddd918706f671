"""Learning profiles (seed: AgentLearningConfig) and the predefined agent types (seed: run_agents.py).

A learning profile is how an agent decides *whether* and *how high* to bid; a capability profile
(research, development, ...) is *which queue* its work arrives on. Custom agents come from a JSON file
shaped like the seed's AGENT_DEFINITIONS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class LearningProfile(BaseModel):
    """Knobs of one learning profile; every field is bounded so a custom profile cannot be absurd."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    learning_rate: float = Field(default=0.001, gt=0, le=1, description="Adam step of the agent's DQN (trainer)")
    discount_factor: float = Field(default=0.95, ge=0, le=1, description="the DQN's gamma for later rewards")
    exploration_rate: float = Field(default=0.1, ge=0, le=1)
    risk_tolerance: float = Field(default=0.5, ge=0, le=1, description="0 = bid high and safe, 1 = undercut hard")
    confidence_factor: float = Field(default=0.7, ge=0, le=1)
    min_fit_to_bid: float = Field(default=40, ge=0, le=100, description="fit score below which the agent refuses")
    workload_penalty: float = Field(default=0.1, ge=0, le=1, description="how much each running task raises the price")
    specialization_bonus: float = Field(default=0.0, ge=0, le=1)


class AgentLearningConfig:
    """The six seed profiles and ``create_custom_profile(base_profile, **overrides)``."""

    PROFILES: ClassVar[dict[str, LearningProfile]] = {
        p.name: p
        for p in (
            LearningProfile(name="balanced"),
            LearningProfile(name="aggressive", exploration_rate=0.2, risk_tolerance=0.85, min_fit_to_bid=25),
            LearningProfile(name="conservative", exploration_rate=0.05, risk_tolerance=0.2, min_fit_to_bid=60),
            LearningProfile(name="explorer", exploration_rate=0.35, risk_tolerance=0.6, min_fit_to_bid=15),
            LearningProfile(name="specialist", risk_tolerance=0.4, min_fit_to_bid=70, specialization_bonus=0.3),
            LearningProfile(name="workload_sensitive", workload_penalty=0.35, min_fit_to_bid=45),
        )
    }

    @classmethod
    def get_profile(cls, name: str) -> LearningProfile:
        try:
            return cls.PROFILES[name]
        except KeyError:
            raise ValueError(f"unknown learning profile {name!r}; choose one of {sorted(cls.PROFILES)}") from None

    @classmethod
    def create_custom_profile(cls, base_profile: str, **overrides: Any) -> LearningProfile:
        base = cls.get_profile(base_profile)
        unknown = set(overrides) - set(LearningProfile.model_fields) - {"name"}
        if unknown:
            raise ValueError(f"unknown learning profile field(s): {sorted(unknown)}")
        try:
            return LearningProfile(**{**base.model_dump(), "name": f"{base_profile}+custom", **overrides})
        except ValidationError as exc:
            raise ValueError(f"invalid custom profile: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None


class AgentDefinition(BaseModel):
    """One agent of the fleet (seed AGENT_DEFINITIONS entry, plus weights and the queue profile)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    capabilities: list[str] = Field(min_length=1, max_length=16)
    weights: list[int] | None = None
    profile: str = Field(default="balanced", description="learning profile")
    queue: str = Field(default="research", pattern=r"^[a-z][a-z0-9_]{0,31}$", description="capability profile queue")

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, value: list[str]) -> list[str]:
        if any(not c or len(c.encode()) > 32 for c in value) or len(set(value)) != len(value):
            raise ValueError("capabilities must be unique, non-empty, at most 32 bytes each")
        return value

    def model_post_init(self, _context: Any) -> None:
        AgentLearningConfig.get_profile(self.profile)
        if self.weights is None:
            self.weights = [80] * len(self.capabilities)
        if len(self.weights) != len(self.capabilities) or any(not 0 <= w <= 100 for w in self.weights):
            raise ValueError("weights must match capabilities and lie in 0..100")

    @property
    def learning(self) -> LearningProfile:
        return AgentLearningConfig.get_profile(self.profile)


AGENT_TYPES: tuple[AgentDefinition, ...] = (
    AgentDefinition(
        name="ResearchAgent",
        capabilities=["research", "writing", "analysis"],
        weights=[90, 80, 75],
        profile="balanced",
        queue="research",
    ),
    AgentDefinition(
        name="DevelopmentAgent",
        capabilities=["coding", "testing", "blockchain"],
        weights=[90, 80, 65],
        profile="specialist",
        queue="development",
    ),
    AgentDefinition(
        name="AnalyticsAgent",
        capabilities=["data_analysis", "statistics", "visualization"],
        weights=[90, 85, 70],
        profile="conservative",
        queue="analytics",
    ),
    AgentDefinition(
        name="CreativeAgent",
        capabilities=["creative_writing", "content_creation", "storytelling"],
        weights=[90, 85, 80],
        profile="explorer",
        queue="creative",
    ),
    AgentDefinition(
        name="BlockchainExpertAgent",
        capabilities=["blockchain", "smart_contracts", "tokenomics"],
        weights=[95, 90, 75],
        profile="aggressive",
        queue="blockchain",
    ),
)


def load_agent_definitions(path: Path) -> list[AgentDefinition]:
    """Custom agents from a JSON list; a clear ValueError names the entry and field that is wrong."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read agent definitions {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of agent definitions")
    agents = []
    for index, entry in enumerate(raw):
        try:
            agents.append(AgentDefinition.model_validate(entry))
        except (ValidationError, ValueError) as exc:
            raise ValueError(f"{path}: agent #{index}: {exc}") from None
    return agents
