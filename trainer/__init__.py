"""The trainer worker: consumes outcomes on the ``training`` queue and updates agents' RL models."""
