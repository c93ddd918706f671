"""How an agent bids and what it learns from: one room for the workers, the trainer and the simulator.

``context``: what a strategy sees and decides; ``adaptive``: the seed's heuristic; ``state``: the RL state
vector and action space (torch-free); ``dqn``: the DQN model and its files; ``rl``: the RL strategy and the
workers' model cache; ``record``: what the agent saw when it bid, and its recent win rate; ``reward``: what
a settled bid teaches. Only ``dqn`` and ``rl`` import torch.
"""
