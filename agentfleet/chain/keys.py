"""Keys derived from one mnemonic: one BIP-44 index per identity.

Why: a fleet of agents needs many keys, but an operator should back up one secret. Index 0 is the
deployer/requester, 1 the evaluator, agents start at ``agent_index_offset`` (settings).
"""

from __future__ import annotations

from functools import lru_cache

from eth_account import Account
from eth_account.signers.local import LocalAccount

Account.enable_unaudited_hdwallet_features()


@lru_cache(maxsize=256)
def _derive(mnemonic: str, index: int) -> LocalAccount:
    return Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")


def derive_account(mnemonic: str, index: int) -> LocalAccount:
    """The account at ``m/44'/60'/0'/0/{index}`` (cached: derivation costs ~10 ms)."""
    if index < 0:
        raise ValueError(f"HD index must be >= 0, got {index}")
    return _derive(mnemonic, index)
