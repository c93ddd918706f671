"""The dashboard's web app: routes, the login rule and the server that runs it.

Read-only: every route is a GET that renders what ``dashboard.data`` read. Pages are Jinja2 templates with
autoescape on (every text from an agent, an LLM or a failure is escaped; nothing is marked safe but the charts,
which escape their own labels). Live updates: ``static/live.js`` asks for the same URL every few seconds with
``X-Dashboard-Fragment: 1`` and swaps in the page's content block.

Safe by default: it binds ``AGENTFLEET_DASHBOARD_ADDRESS`` (127.0.0.1). Bound anywhere else it refuses to start
without ``AGENTFLEET_DASHBOARD_PASSWORD``; with a password set every page asks for HTTP basic auth
(``AGENTFLEET_DASHBOARD_USER``), compared in constant time. No page shows a setting.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from agentfleet.protocol.status import TaskStatus
from agentfleet.settings import Settings
from dashboard import charts, data

HERE = Path(__file__).resolve().parent
REFRESH_SECONDS = 5
FRAGMENT_HEADER = "X-Dashboard-Fragment"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class UnsafeBind(RuntimeError):
    """The dashboard was asked to listen beyond loopback without a password."""


def is_loopback(address: str) -> bool:
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def login_required(settings: Settings) -> bool:
    """A password, once set, guards every page; beyond loopback one must be set (``check_bind``)."""
    return settings.dashboard_password is not None and bool(settings.dashboard_password.get_secret_value())


def check_bind(settings: Settings) -> None:
    if not is_loopback(settings.dashboard_address) and not login_required(settings):
        raise UnsafeBind(
            f"refusing to serve the dashboard on {settings.dashboard_address}: beyond loopback it needs "
            "AGENTFLEET_DASHBOARD_PASSWORD (and AGENTFLEET_DASHBOARD_USER, default operator)"
        )


def _authorized(header: str | None, settings: Settings) -> bool:
    if settings.dashboard_password is None or not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = hmac.compare_digest(user.encode(), settings.dashboard_user.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.dashboard_password.get_secret_value().encode())
    return user_ok and password_ok


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every page is HTML: escape everything, always
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["eth"] = lambda v: "-" if v is None else f"{v:,.4f}"
    env.filters["short"] = lambda v, n=10: "-" if not v else (v if len(str(v)) <= n + 2 else f"{str(v)[:n]}…")
    env.filters["clock"] = lambda v: "-" if v is None else time.strftime("%H:%M:%S", time.localtime(v))
    env.filters["ago"] = _ago
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.0f} %"
    env.filters["usd"] = lambda v: f"${v:,.6f}" if v else "$0"
    return env


def _ago(value: float | None) -> str:
    if value is None:
        return "-"
    seconds = max(0, int(time.time() - value))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def create_app(settings: Settings, *, sources: data.Sources | None = None) -> FastAPI:
    """The app for ``settings`` (``sources``: what to read from; tests pass their own Redis client)."""
    src = sources or data.Sources(settings)
    env = templates()
    guarded = login_required(settings)
    app = FastAPI(title="agentfleet dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method not in ("GET", "HEAD"):
            response: Response = Response("read-only", status_code=405, headers={"Allow": "GET, HEAD"})
        elif (
            guarded
            and request.url.path != "/healthz"
            and not _authorized(request.headers.get("authorization"), settings)
        ):
            response = Response(
                "login required",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="agentfleet dashboard", charset="UTF-8"'},
            )
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def page(request: Request, name: str, title: str, **context: Any) -> HTMLResponse:
        template = env.get_template(name)
        values = {"title": title, "refresh": REFRESH_SECONDS, "path": request.url.path, **context}
        if request.headers.get(FRAGMENT_HEADER) == "1":
            body = "".join(template.blocks["content"](template.new_context(values)))
            return HTMLResponse(body)
        return HTMLResponse(template.render(values))

    @app.get("/", response_class=HTMLResponse)
    def market(
        request: Request,
        tag: str = Query("", max_length=64),
        requester: str = Query("", max_length=64),
        min_reward: float = Query(0.0, ge=0),
        status: str = Query("", max_length=16),
    ) -> HTMLResponse:
        filters = data.MarketFilters(tag=tag.strip(), requester=requester.strip(), min_reward=min_reward, status=status)
        view = data.market(src, filters)
        chart = charts.bars(
            "throughput: tasks created and completed",
            [(start, (created, completed)) for start, created, completed in view.throughput],
            ["created", "completed"],
            y_label=f"tasks per {view.bucket_seconds} s",
        )
        return page(
            request,
            "market.html",
            "market",
            view=view,
            filters=filters,
            chart=chart,
            groups=data.grouped(view.tasks),
            statuses=[s.name.lower() for s in TaskStatus if s != TaskStatus.NONE],
        )

    @app.get("/tasks/{task_id}", response_class=HTMLResponse)
    def task(request: Request, task_id: int) -> HTMLResponse:
        view = data.task(src, task_id)
        return page(request, "task.html", f"task {task_id}", view=view)

    @app.get("/agents", response_class=HTMLResponse)
    def agents(request: Request) -> HTMLResponse:
        view = data.agents(src)
        return page(request, "agents.html", "agents", view=view)

    @app.get("/agents/{address}", response_class=HTMLResponse)
    def agent(request: Request, address: str) -> HTMLResponse:
        view = data.agent(src, address)
        row = view.row
        earnings = charts.lines(
            "earnings (cumulative ETH) by block", [("earned", view.earnings)], y_label="ETH", step=True
        )
        reputation = charts.lines(
            "reputation by block", [("reputation", [(float(b), float(r)) for b, r in view.reputation])], step=True
        )
        scores = charts.lines("learning curve: score per learned task", [("score", view.scores)], y_label="score")
        weights = charts.hbars("capability weights", sorted((row.capabilities if row else {}).items()))
        return page(
            request,
            "agent.html",
            f"agent {row.name if row and row.name else address}",
            view=view,
            charts=[earnings, reputation, scores, weights],
        )

    @app.get("/fleet", response_class=HTMLResponse)
    def fleet(request: Request) -> HTMLResponse:
        view = data.fleet(src)
        return page(request, "fleet.html", "fleet", view=view)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        state = data.health(src)
        return JSONResponse(state, status_code=200 if all(state.values()) else 503)

    return app


def serve(settings: Settings, *, say: Callable[[str], object] = print) -> None:
    """Run the dashboard with uvicorn on the settings' address and port (refuses an unsafe bind)."""
    import uvicorn

    check_bind(settings)
    host = settings.dashboard_address
    shown = f"[{host}]" if ":" in host else host
    say(f"dashboard http://{shown}:{settings.dashboard_port}" + (" (basic auth)" if login_required(settings) else ""))
    uvicorn.run(
        create_app(settings),
        host=host,
        port=settings.dashboard_port,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )
