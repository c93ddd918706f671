"""What placing a bid costs its agent: the bid's gas at the chain's gas price.

A losing bid is not free in the open auction: its ``placeBid`` transaction is paid whether it wins or not.
The strategies weigh that cost against the bid's expected payment and the RL reward subtracts it, so the
agents learn not to spray bids on tasks they will not win. A sealed bid is a signature: it costs nothing
(``BidContext.bid_cost_wei`` is 0 for sealed tasks). ``OPEN_BID_GAS`` is the most ``python -m bench.gas``
measures for one ``placeBid``; update it with the contracts.
"""

from __future__ import annotations

OPEN_BID_GAS = 60_000  # gas of one placeBid (bench/gas.py: 56k-59k; 146k-180k before issue 12)
WINNER_GAS = 80_000  # gas the winner pays for the task's own transactions: submitResult (bench/gas.py: 78k)
ETH_PER_USD = 1 / 3000  # default AGENTFLEET_ETH_PER_USD: what the LLM bill (priced in USD) costs in ETH


def bid_cost_wei(gas_price_wei: int, *, gas: int = OPEN_BID_GAS) -> int:
    """Wei an agent pays to place one bid at this gas price."""
    return max(0, gas) * max(0, gas_price_wei)


def task_cost_wei(gas_price_wei: int, *, llm_cost_usd: float, eth_per_usd: float, won: bool) -> int:
    """What a bid cost its agent beyond the bid's own gas: the LLM calls it made for the task (evaluation, and
    execution when it won) and, when it won, the task's transactions (``WINNER_GAS``)."""
    llm = max(0.0, llm_cost_usd) * max(0.0, eth_per_usd) * 10**18
    return int(llm) + (WINNER_GAS * max(0, gas_price_wei) if won else 0)


def win_chance(recent_win_rate: float, competing_bids: int) -> float:
    """A cautious guess at the chance of winning: the agent's recent rate, or an even share of the bids seen."""
    return max(recent_win_rate, 1 / (competing_bids + 1))
