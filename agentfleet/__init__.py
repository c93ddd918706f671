"""agentfleet: the shared core of every fleet process (settings, chain client, profiles, LLM, CLI)."""

__version__ = "0.1.0"
