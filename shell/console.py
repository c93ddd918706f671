"""The CLI's console and its settings loader, shared by every ``agentfleet`` command module."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from agentfleet.settings import AuctionModeChoice, Settings

console = Console(width=None if sys.stdout.isatty() else 160)


# The auctions of the tasks a command posts (demo, create-tasks); None: AGENTFLEET_AUCTION_MODE.
ModeOption = Annotated[
    AuctionModeChoice | None,
    typer.Option(help="Auctions: open, sealed or mixed (alternate); default AGENTFLEET_AUCTION_MODE (mixed)."),
]


def load_settings() -> Settings:
    """Settings, or a one-line error naming each bad variable (exit code 2) instead of a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "AGENTFLEET_" + "_".join(str(p) for p in error["loc"]).upper()
            console.print(f"[red]invalid setting {name}[/red]: {escape(str(error['msg']))}")
        raise typer.Exit(code=2) from None
