"""The read-only marketplace dashboard: a web app (FastAPI, server-rendered Jinja2 pages, inline SVG charts) that
shows the market, each task's whole life (its trace merged with the chain), the agents and the fleet; no writes."""
