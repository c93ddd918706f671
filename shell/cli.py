"""The ``agentfleet`` command line (typer + rich): the commands that run things (demo, walkthrough, deploy,
listen, simulate, up, settings); market commands live in ``cli_market``, operator commands in ``cli_ops``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from shell import cli_dashboard, cli_market, cli_ops
from shell.console import ModeOption, console, load_settings

if TYPE_CHECKING:
    from rich.progress import Progress

    from shell.demo import TaskRow
    from trainer.simulator import MarketShape

app = typer.Typer(
    help="agentfleet: LLM agents competing for on-chain tasks, as a Celery worker fleet.", no_args_is_help=True
)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


INTERRUPT_GRACE = 20.0  # s: after the demo's first Ctrl-C, how long its orderly stop may take before it is forced


@app.command()
def demo(
    tasks: Annotated[int, typer.Option(min=1, max=200, help="Tasks to take through their whole life.")] = 24,
    out: Annotated[Path, typer.Option(help="Folder for the plot and the models.")] = Path("demo-output"),
    timeout: Annotated[
        float, typer.Option(min=5, help="Seconds the whole demo may take; then it stops and shows where the tasks are.")
    ] = 600,
    mode: ModeOption = None,
) -> None:
    """The main job on an embedded default: redis, anvil, listener, workers, trainer and keeper in one go."""
    from rich.progress import BarColumn, Progress, TextColumn

    from shell.demo import DemoFailed, run_demo
    from shell.interrupt import Interrupts

    settings = load_settings()
    if mode is not None:
        settings = settings.model_copy(update={"auction_mode": mode})
    console.rule("[bold]agentfleet demo[/bold]")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} final"),
        console=console,
    ) as progress:
        bar = progress.add_task("starting", total=tasks)

        def show(counts: dict[str, int]) -> None:
            interrupts.raise_if_seen()  # a Ctrl-C lost inside a finalizer comes back at the next report
            final = sum(counts.get(k, 0) for k in ("completed", "failed", "cancelled", "expired"))
            text = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            progress.update(bar, completed=final, description=text)

        with Interrupts(grace=INTERRUPT_GRACE, log=out / "demo.log") as interrupts:
            try:
                result = run_demo(tasks=tasks, out_dir=out, on_progress=show, base_settings=settings, timeout=timeout)
                interrupts.raise_if_seen()  # lost and no progress report after it: still an interrupt
            except KeyboardInterrupt:  # run_demo has stopped everything it started on the way out
                _interrupted(progress)
            except DemoFailed as failed:  # it has stopped everything too; one sentence and the tasks, no traceback
                if interrupts.seen:  # an error while stopping after Ctrl-C (a worker slow to exit): the interrupt
                    _interrupted(progress)
                progress.stop()
                console.print(Text(f"demo failed: {failed.reason}", style="red"), soft_wrap=True)  # one line
                console.print(_demo_table(failed.rows, failed.provider))
                console.print(f"logs: {failed.log}; every service the demo started has been stopped")
                raise typer.Exit(code=1) from None
    console.print(_demo_table(result.rows, result.provider))
    console.print(f"learning curves: {result.png}")
    console.print(f"models: {result.models_dir}")
    console.print(f"logs: {result.log}")
    console.print(f"done in {result.seconds:.1f} s; every service the demo started has been stopped")


def _interrupted(progress: Progress) -> NoReturn:
    from shell.services import kill_started_services

    progress.stop()
    leaked = kill_started_services()  # a Ctrl-C between a service's start and its stop being registered
    console.print(
        "interrupted: the demo stopped every process it started (nothing is left running)"
        + (f"; {leaked} had to be killed" if leaked else "")
    )
    raise typer.Exit(code=0) from None


def _demo_table(rows: list[TaskRow], provider: str) -> Table:
    """The demo's task table, the same whether the demo finished or not (then with the states it reached)."""
    table = Table(title=f"{len(rows)} tasks, provider: {provider}")
    for column in ("task", "auction", "tags", "status", "winner", "bid (ETH)", "score", "payment (ETH)", "reputation"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r.task_id),
            r.mode,
            Text(",".join(r.tags)),
            r.status,
            r.winner,
            f"{r.bid_eth:.3f}",
            "-" if r.score is None else str(r.score),
            f"{r.payment_eth:.3f}",
            r.reputation,
        )
    return table


@app.command()
def walkthrough(
    chain: Annotated[str, typer.Option(help="Embedded chain: 'inprocess' (py-evm) or 'anvil'.")] = "inprocess",
) -> None:
    """One task's whole life, step by step, with no Celery (the protocol in under a minute)."""
    from shell.walkthrough import run_embedded

    if chain not in {"inprocess", "anvil"}:
        raise typer.BadParameter("use 'inprocess' or 'anvil'", param_hint="--chain")
    console.rule("[bold]agentfleet walkthrough[/bold] (offline: no LLM is called)")
    result = run_embedded(chain=chain, say=lambda line: console.print(Text(f"  {line}")))
    table = Table(title="task outcome")
    for column in ("task", "winner", "bid (ETH)", "score", "payment (ETH)", "reputation"):
        table.add_column(column)
    table.add_row(
        str(result.task_id),
        result.winner_name,
        f"{result.price / 1e18:.2f}",
        str(result.score),
        f"{result.payment / 1e18:.2f}",
        f"{result.reputation_before} -> {result.reputation_after}",
    )
    console.print(table)


@app.command()
def deploy(
    fresh: Annotated[bool, typer.Option(help="Deploy anew even if the recorded deployment is live.")] = False,
) -> None:
    """Deploy (or reuse) the contracts on the configured chain and write contract_addresses.json."""
    from agentfleet.chain.deploy import deploy_all
    from agentfleet.chain.session import ChainSession

    settings = load_settings()
    session = ChainSession.open(settings)
    record = deploy_all(session.client, session.deployer, record_path=settings.contract_addresses_path, reuse=not fresh)
    console.print_json(json.dumps(record.model_dump(by_alias=True)))


@app.command()
def listen() -> None:
    """Follow the chain and turn confirmed events into Celery work (same as ``python -m chain_listener``)."""
    from chain_listener.listener import main

    main(load_settings())


@app.command()
def simulate(
    tasks: Annotated[int, typer.Option(min=100, max=100_000, help="Tasks in the market.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the market and the learner.")] = 11,
    out: Annotated[str, typer.Option(help="PNG of the learning curves.")] = "simulation.png",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds: one summary row per market, no plot.")] = "",
    market: Annotated[
        str,
        typer.Option(
            help="Market shape (default, crowded, sparse, strong, weak, specialist, generalist, whales, sealed: "
            "README \"Learning\"); 'all' with --seeds: each of them."
        ),
    ] = "default",
    jobs: Annotated[
        int, typer.Option(min=1, max=64, help="With --seeds: processes running seeds at once (one core each).")
    ] = 1,
    competitors: Annotated[
        str, typer.Option(help="Override the rivals: comma-separated profiles (one rival each), or 'none'.")
    ] = "",
    strength: Annotated[str, typer.Option(help="Override the rivals' skill range: low,high in 0..1.")] = "",
    focal_skill: Annotated[
        str, typer.Option(help="Override the focal agent's skill: one value in 0..1 per tag (5).")
    ] = "",
    reward: Annotated[str, typer.Option(help="Override the reward range: low,high in ETH.")] = "",
    tag_mix: Annotated[str, typer.Option(help="Override the tags' relative frequencies: 5 values.")] = "",
    auction: Annotated[str, typer.Option(help="Override the auction mode: open or sealed.")] = "",
    weights: Annotated[
        str,
        typer.Option(
            help="Capability weights: 'follow' (each scored task moves its winner's weight of the tag a quarter "
            "of the way to the score, as the chain does) or 'fixed' (as drawn, never moved)."
        ),
    ] = "",
) -> None:
    """Market simulator (no chain, no Celery): a learning agent against bid shading and the fixed profiles.
    The shape options change the named market (each, with --market all): e.g. --market sparse --strength
    0.6,0.95 is two strong rivals; the rows then carry the market's name with a '*'."""
    from rich.progress import Progress

    from trainer.simulator import MARKETS, compare, plot, summary

    names = list(MARKETS) if market == "all" and seeds else [market]
    unknown = [name for name in names if name not in MARKETS]
    if unknown:
        raise typer.BadParameter(
            f"unknown market {unknown[0]!r}; choose one of {', '.join(MARKETS)}", param_hint="--market"
        )
    overrides = _shape_overrides(competitors, strength, focal_skill, reward, tag_mix, auction, weights)
    shapes = [_reshaped(MARKETS[name], overrides) for name in names]
    for shape in shapes if overrides else []:
        console.print(f"[bold]{shape.name}[/bold]: {shape.description}")
    if seeds:
        try:
            chosen = [int(part) for part in seeds.split(",") if part.strip()]
        except ValueError:
            raise typer.BadParameter("use comma-separated integers, e.g. 1,2,3", param_hint="--seeds") from None
        if not chosen:
            raise typer.BadParameter("name at least one seed", param_hint="--seeds")
        _sweep_table(shapes, chosen, tasks, jobs)
        return
    with Progress(console=console) as progress:
        bar = progress.add_task("learning agent", total=tasks)
        results = compare(seed, tasks, progress=lambda _step: progress.advance(bar), market=shapes[0])
    table = Table("strategy of the focal agent", "profit, first 500", "profit, last 500", "wins, last 500", "total")
    for row in summary(results):
        table.add_row(
            str(row["strategy"]),
            f"{row['first']:.1f}",
            f"{row['last']:.1f}",
            str(row["last_wins"]),
            f"{row['total']:.1f}",
        )
    console.print(table)
    console.print(f"learning curves: {plot(results, out)}")


def _shape_overrides(
    competitors: str, strength: str, focal_skill: str, reward: str, tag_mix: str, auction: str, weights: str
) -> dict[str, Any]:
    """The ``simulate`` shape options given, parsed into :class:`MarketShape` fields (a clear error per option)."""
    from agentfleet.protocol.status import AuctionMode

    def numbers(text: str, option: str) -> tuple[float, ...]:
        try:
            return tuple(float(part) for part in text.split(","))
        except ValueError:
            raise typer.BadParameter(f"use comma-separated numbers, got {text!r}", param_hint=option) from None

    out: dict[str, Any] = {}
    if competitors:
        names = () if competitors.strip().lower() == "none" else tuple(p.strip() for p in competitors.split(","))
        out["competitors"] = names
    for field, text, option in (
        ("strength", strength, "--strength"),
        ("focal_skill", focal_skill, "--focal-skill"),
        ("reward", reward, "--reward"),
        ("tag_mix", tag_mix, "--tag-mix"),
    ):
        if text:
            out[field] = numbers(text, option)
    if auction:
        modes = {"open": AuctionMode.OPEN, "sealed": AuctionMode.SEALED}
        if auction.lower() not in modes:
            raise typer.BadParameter(f"choose open or sealed, got {auction!r}", param_hint="--auction")
        out["mode"] = modes[auction.lower()]
    if weights:
        follow = {"follow": True, "fixed": False}
        if weights.lower() not in follow:
            raise typer.BadParameter(f"choose follow or fixed, got {weights!r}", param_hint="--weights")
        out["weights_follow_scores"] = follow[weights.lower()]
    return out


def _reshaped(base: MarketShape, overrides: dict[str, Any]) -> MarketShape:
    """``base`` with the overrides, named ``base*``; the shape's own check turned into a usage error."""
    from dataclasses import replace

    if not overrides:
        return base

    def shown(value: object) -> str:
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value) or "none"
        return getattr(value, "name", str(value)).lower()

    changed = ", ".join(f"{field.replace('_', ' ')} {shown(value)}" for field, value in overrides.items())
    try:
        return replace(base, name=f"{base.name}*", description=f"{base.name} with {changed}", **overrides)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="the market shape options") from None


def _sweep_table(markets: list[MarketShape], seeds: list[int], tasks: int, jobs: int = 1) -> None:
    """One row per (market, seed): the learner's first and last 500 against the best fixed profile (and bid
    shading); then per market shape the geometric mean of learner / best fixed where a fixed profile earned."""
    from rich.progress import Progress

    from trainer.simulator import geometric_mean_ratio, sweep, why_behind

    table = Table(
        "market", "seed", "learner, first 500", "learner, last 500", "shading, last 500", "best fixed", "its last 500"
    )
    footer: list[tuple[str, str]] = []
    with Progress(console=console) as progress:
        bar = progress.add_task("markets", total=len(markets) * len(seeds))
        for shape in markets:
            rows = sweep(seeds, tasks, progress=lambda: progress.advance(bar), market=shape, jobs=jobs)
            for r in rows:
                table.add_row(
                    shape.name,
                    str(r["seed"]),
                    f"{r['rl_first']:.0f}",
                    f"{r['rl_last']:.0f}",
                    f"{r['shading_last']:.0f}",
                    str(r["best_fixed"]),
                    f"{r['best_last']:.0f}",
                )
            ratio, shading = geometric_mean_ratio(rows), geometric_mean_ratio(rows, "shading_last")
            kept = sum(r["rl_last"] >= r["rl_first"] for r in rows)
            earned = sum(r["best_last"] > 0 for r in rows)
            text = "no fixed profile earned anything" if ratio is None else f"{ratio:.2f}x (shading {shading:.2f}x)"
            footer.append(
                (
                    shape.name,
                    f"learner / best fixed, geometric mean over {earned} markets where one earned: {text}; "
                    f"learner's last 500 >= its first 500 in {kept} of {len(rows)}",
                )
            )
            for r in rows:  # behind its first 500: say why, with the numbers
                if r["rl_last"] < r["rl_first"]:
                    footer.append(
                        (
                            f"{shape.name} seed {r['seed']}",
                            f"last 500 {r['rl_last']:.0f} ETH against {r['rl_first']:.0f} in its first; "
                            + why_behind(r),
                        )
                    )
    console.print(table)
    for name, line in footer:
        console.print(f"[bold]{name}[/bold]: {line}")


@app.command()
def up(
    workers: Annotated[int, typer.Option(min=1, max=32, help="Celery worker processes for the agent queues.")] = 2,
    run_dir: Annotated[Path, typer.Option(help="Logs, deployment record, models, env file.")] = Path("run"),
) -> None:
    """The whole fleet as local processes (anvil, redis, listener, workers, trainer, beat, Flower, dashboard); Ctrl-C
    stops all."""
    from shell.stack import run_stack

    run_stack(workers=workers, run_dir=run_dir, settings=load_settings(), say=console.print)


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings (secrets masked)."""
    for name, value in load_settings().model_dump().items():
        console.print(Text(f"{name} = {value}"))


app.command("create-tasks")(cli_market.create_tasks)
app.command("tasks")(cli_market.tasks)
app.command("report")(cli_market.report)
app.command("accounts")(cli_market.accounts)
app.add_typer(cli_market.message_app, name="message")
app.command("llm-check")(cli_ops.llm_check)
app.command("stuck")(cli_ops.stuck)
app.command("decide")(cli_ops.decide)
app.command("dashboard")(cli_dashboard.dashboard)


if __name__ == "__main__":
    app()
