"""How an agent bids and what it learns from: one room for the workers, the trainer and the simulator.

``context``: what a strategy sees and decides; ``adaptive``: the seed's heuristic; ``state``: the RL state
vector and action space (torch-free); ``dqn``: the DQN model and its files; ``policy_net``: its policy in
NumPy and the workers' policy cache; ``rl``: the RL strategy; ``record``: what the agent saw when it bid, and
its recent win rate; ``reward``: what a settled bid teaches; ``costs``: a bid's gas; ``sealed``: signed bids
and the bid book; ``closing``: closing an auction in its mode. Only ``dqn`` imports torch.
"""
