"""``agentfleet dashboard``: the read-only marketplace dashboard (``dashboard/``) served by uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from shell.console import console, load_settings


def dashboard(
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default AGENTFLEET_DASHBOARD_PORT, 8600).")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (default AGENTFLEET_DASHBOARD_ADDRESS, 127.0.0.1); beyond loopback "
            "AGENTFLEET_DASHBOARD_PASSWORD is required and every page asks for it (HTTP basic auth)."
        ),
    ] = None,
) -> None:
    """Serve the marketplace dashboard: the market, each task's timeline, the agents and the fleet (read-only)."""
    from dashboard.app import UnsafeBind, serve

    settings = load_settings()
    update: dict[str, object] = {}
    if port is not None:
        update["dashboard_port"] = port
    if address is not None:
        update["dashboard_address"] = address
    if update:
        settings = settings.model_copy(update=update)
    try:
        serve(settings, say=lambda line: console.print(Text(line)))
    except UnsafeBind as exc:
        console.print(Text(str(exc), style="red"))
        raise typer.Exit(code=2) from None
