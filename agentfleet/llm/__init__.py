"""LLM providers (seed: OpenAIIntegration): the OpenAI SDK for any OpenAI-compatible server, and an offline
provider for demos and tests whose every output says it is offline."""

from agentfleet.llm.base import LLMError, LLMOutputError, LLMProvider, TaskView, Usage
from agentfleet.llm.factory import make_provider

__all__ = ["LLMError", "LLMOutputError", "LLMProvider", "TaskView", "Usage", "make_provider"]
