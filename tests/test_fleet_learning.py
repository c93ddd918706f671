"""The RL bidder learns in the real fleet: a Celery worker (agents, keeper, evaluator, trainer), anvil, 120
sales against a fixed-price rival outside the fleet. The learner's win rate or profit per task rises from
the first quarter of the run to the last; the curves go to ``test-artifacts/fleet-learning.png``.

The rival bids 25 % of the reward on every task, under the learner's lowest opening bid (the lowest bid level
at the default anchor, 0.4 x 0.7), so the learner starts by losing while the rival's reputation climbs to 100.
At reputation 50 the learner then has to undercut to about half the rival's price (the auction ranks
amount / (reputation + 1)) to win at all, and once its own reputation has caught up, learn that it can ask
for just under the rival's price. (A rival above the opening bid never wins, never gains reputation, and the
learner then wins every auction whatever it bids: the win rate would say nothing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agentfleet.bidding.policy_net import PolicyNet, policy_path
from agentfleet.chain.local import advance_time
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import TaskStatus
from shell.services import RedisServer
from testkit.chain import bids_on, create_task
from testkit.fleet import QUEUES, pump, running_fleet
from testkit.rival import Rival

pytestmark = [pytest.mark.anvil]

TASKS = 120
BATCH = 12  # tasks per round: created, bid on, settled and learned from before the next round bids
WINDOW = 300  # seconds of bidding (chain time); the test moves the clock past it
RIVAL_FRACTION = 0.25  # the rival's bid on every task, of the reward
ROLLING = 20  # tasks per point of the plotted curves


@dataclass(frozen=True)
class Sale:
    task_id: int
    bid: float | None  # the learner's bid, of the reward (None: it abstained)
    won: bool
    profit: float  # what the task paid the learner, of the reward


@pytest.mark.slow
def test_rl_bidder_learns_to_beat_a_fixed_rival(tmp_path: Path, redis_server: RedisServer, artifacts_out: Path) -> None:
    models = tmp_path / "models"
    with running_fleet(
        tmp_path,
        redis_server,
        queues=[*QUEUES, routing.TRAINING],
        bidding_strategy="rl",
        models_dir=models,
        action_logging=False,
        trainer_checkpoint_every=1,  # each outcome writes the policy: the next round bids with it
        rl_warmup=0,  # the DQN bids from the first task (no adaptive warm-up): this test is about its own bids
    ) as (s, listener, client):
        learner = s.agent(0).address.lower()  # the ResearchAgent: the fleet's only agent serving "research"
        rival = Rival(s, client, number=7)

        def done(outcome_id: str) -> bool:
            return bool(client.exists(keys.trainer_done(outcome_id)))

        sales: list[Sale] = []
        for first in range(1, TASKS + 1, BATCH):
            batch = list(range(first, min(first + BATCH, TASKS + 1)))
            for task_id in batch:
                assert create_task(s, tags=["research"], window=WINDOW, text=f"research work {task_id}") == task_id
                rival.bid(task_id, RIVAL_FRACTION)  # first: a tie goes to the rival
            considered = [f"{keys.WORK}:done:consider:{t}:{learner}" for t in batch]
            pump(listener, lambda keys_=considered: client.exists(*keys_) == len(keys_))  # type: ignore[misc]

            advance_time(s.client.w3, WINDOW + 1)
            app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
            pump(listener, lambda b=batch: all(s.tasks.status_of(t) != TaskStatus.OPEN for t in b))  # type: ignore[misc]
            for task_id in batch:
                task = s.tasks.get_task(task_id)
                if task.status == TaskStatus.ASSIGNED and task.assignee.lower() == rival.address:
                    rival.deliver(task_id)
            pump(listener, lambda b=batch: all(TaskStatus(s.tasks.status_of(t)).final for t in b))  # type: ignore[misc]
            # The learner's outcomes, and the winner's (the rival's "won" too; its "lost" goes nowhere: it is not
            # in the fleet).
            outcomes = {f"{t}:{s.tasks.get_task(t).assignee.lower()}" for t in batch}
            outcomes |= {f"{t}:{learner}" for t in batch if learner in bids_on(s, t)}
            pump(  # every outcome and every clearing price learned before the next round bids
                listener,
                lambda o=outcomes, n=batch[-1]: (  # type: ignore[misc]
                    all(done(i) for i in o) and len(client.keys(keys.trainer_done("clearing:*"))) >= n
                ),
            )
            for task_id in batch:
                task, bids = s.tasks.get_task(task_id), bids_on(s, task_id)
                won = task.assignee.lower() == learner
                passed = task.status == TaskStatus.COMPLETED and task.score >= 50
                bid = bids[learner] / task.reward if learner in bids else None
                sales.append(Sale(task_id, bid, won, task.price / task.reward if won and passed else 0.0))

        statuses = [TaskStatus(s.tasks.status_of(t)) for t in range(1, TASKS + 1)]
        assert all(status.final for status in statuses), statuses
        assert client.xlen(keys.FAILURES) == 0
        payments = [
            (int(e["args"]["taskId"]), int(e["args"]["payment"]))
            for e in s.tasks.contract.events.TaskCompleted().get_logs(from_block=0)
        ]
        assert len({t for t, _ in payments}) == len(payments)  # no task settled twice
        assert sum(p for _, p in payments) <= sum(s.tasks.reward_of(t) for t in range(1, TASKS + 1))
        policy = PolicyNet.load(policy_path(models, s.agent(0).address))  # what the workers bid with
        assert policy.version >= sum(a.bid is not None for a in sales)  # a checkpoint per outcome learned

    quarter = TASKS // 4
    early, late = sales[:quarter], sales[-quarter:]
    rate = [sum(a.won for a in part) / len(part) for part in (early, late)]
    profit = [sum(a.profit for a in part) / len(part) for part in (early, late)]
    print(f"\nlearner win rate: first quarter {rate[0]:.2f}, last quarter {rate[1]:.2f}")
    print(f"learner profit per task (of the reward): first quarter {profit[0]:.3f}, last quarter {profit[1]:.3f}")
    print("learner bids:", " ".join("-" if a.bid is None else f"{a.bid:.3f}" for a in sales))
    _plot(sales, quarter, rate, profit, artifacts_out / "fleet-learning.png")
    assert rate[1] > rate[0] or profit[1] > profit[0], (rate, profit)


def _plot(sales: list[Sale], quarter: int, rate: list[float], profit: list[float], path: Path) -> None:
    """Rolling win rate and profit per task, the quarter means marked; the learner's bids against the rival's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def rolling(values: list[float]) -> list[float]:
        return [
            sum(values[max(0, i + 1 - ROLLING) : i + 1]) / (i + 1 - max(0, i + 1 - ROLLING)) for i in range(len(values))
        ]

    x = [a.task_id for a in sales]
    last = (x[-quarter], x[-1])
    fig, (wins, money, bids) = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, values, means, title in (
        (wins, [float(a.won) for a in sales], rate, "win rate"),
        (money, [a.profit for a in sales], profit, "profit per task (of the reward)"),
    ):
        ax.plot(x, rolling(values), label=f"rolling over {ROLLING} tasks")
        ax.hlines(
            means[0], x[0], x[quarter - 1], colors="tab:red", linestyles="--", label=f"first quarter {means[0]:.2f}"
        )
        ax.hlines(means[1], *last, colors="tab:green", linestyles="--", label=f"last quarter {means[1]:.2f}")
        ax.set(title=title, xlabel="task", ylim=(0, 1.05))
        ax.legend(fontsize=8)
    placed = [a for a in sales if a.bid is not None]
    bids.scatter(
        [a.task_id for a in placed],
        [a.bid for a in placed],
        c=["tab:green" if a.won else "tab:gray" for a in placed],
        s=12,
        label="learner's bid (green: won)",
    )
    bids.axhline(RIVAL_FRACTION, color="tab:red", linestyle=":", label="rival's bid")
    bids.set(title="bids (of the reward)", xlabel="task", ylim=(0, 1.05))
    bids.legend(fontsize=8)
    fig.suptitle(f"fleet RL bidder (ResearchAgent) vs a fixed rival at {RIVAL_FRACTION:.0%}: {len(sales)} tasks")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
