"""agentfleet: the core every fleet process shares — settings, the protocol (task names, queues, statuses, Redis
keys, Celery app), the chain client, LLM providers, profiles and policy, and how agents bid (``bidding``)."""

__version__ = "0.1.0"
