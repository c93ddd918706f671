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


def bid_cost_wei(gas_price_wei: int, *, gas: int = OPEN_BID_GAS) -> int:
    """Wei an agent pays to place one bid at this gas price."""
    return max(0, gas) * max(0, gas_price_wei)


def win_chance(recent_win_rate: float, competing_bids: int) -> float:
    """A cautious guess at the chance of winning: the agent's recent rate, or an even share of the bids seen."""
    return max(recent_win_rate, 1 / (competing_bids + 1))
