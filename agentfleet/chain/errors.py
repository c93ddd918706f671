"""Reverts as Python exceptions named after the contracts' custom errors.

Every contract error (``error AlreadyBid(uint256 taskId, address agent)``) becomes a subclass of
:class:`ContractRevert` in :mod:`agentfleet.chain.bindings` (generated from the ABIs), so callers write
``except AlreadyBid:`` instead of matching revert strings. Decoding works the same on anvil (web3 raises
``ContractCustomError`` carrying the revert data) and on the in-process py-evm chain (eth-tester raises
``TransactionFailed``).
"""

from __future__ import annotations

import ast
import re
from contextlib import suppress
from typing import Any, ClassVar

from eth_abi import decode as abi_decode


class ChainError(RuntimeError):
    """Base of every error the chain client raises."""


class ContractRevert(ChainError):
    """A call or transaction reverted with a custom error; subclasses carry the error's name."""

    selector: ClassVar[str] = ""
    abi_types: ClassVar[tuple[str, ...]] = ()
    arg_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *values: Any) -> None:
        self.values = values
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(self.arg_names, values, strict=False))
        super().__init__(f"{type(self).__name__}({shown})")

    @property
    def fields(self) -> dict[str, Any]:
        return dict(zip(self.arg_names, self.values, strict=False))


class UnknownRevert(ChainError):
    """A revert whose data matches no known custom error (a panic, a require string, a bare revert)."""

    def __init__(self, data: str, message: str = "") -> None:
        self.data = data
        super().__init__(f"execution reverted ({message or 'no reason'}; data={data[:74] or '0x'})")


class TransactionReverted(ChainError):
    """A mined transaction has status 0 and its revert could not be replayed into a named error."""


class NodeUnavailable(ChainError):
    """The RPC node could not be reached to send a transaction (and does not know it): retry later."""


class TransactionTimeout(ChainError):
    """A sent transaction was not mined within the client's timeout (still known to the node): retry later."""


class TransactionDropped(ChainError):
    """A sent transaction vanished from the node and its nonce was never used."""


class TransactionReplaced(ChainError):
    """Another transaction took the nonce of ours (sent by someone else with the same key)."""


_REGISTRY: dict[str, type[ContractRevert]] = {}
_HEX_DATA = re.compile(r"0x[0-9a-fA-F]{8,}")
_BYTES_LITERAL = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"")


def register(error_cls: type[ContractRevert]) -> type[ContractRevert]:
    """Class decorator used by the generated bindings to make an error decodable by selector."""
    _REGISTRY[error_cls.selector.lower()] = error_cls
    return error_cls


def revert_data_of(exc: BaseException) -> str | None:
    """Find the revert data (``0x`` + selector + args) inside any web3/eth-tester exception, or the exception
    it was raised from: eth-tester turns a revert whose only argument is a string into the text
    ``execution reverted: <the string>`` and keeps the raw data only on py-evm's ``Revert`` behind it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _data_in(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _data_in(exc: BaseException) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, bytes | bytearray):
        return "0x" + bytes(data).hex()
    if isinstance(data, str) and data.startswith("0x"):
        return data
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, bytes | bytearray) and len(arg) >= 4:
            return "0x" + bytes(arg).hex()
        if isinstance(arg, str):
            literal = _BYTES_LITERAL.search(arg)  # eth-tester: "execution reverted: b'\\xad6d...'"
            if literal:
                with suppress(ValueError, SyntaxError):
                    raw = ast.literal_eval(literal.group(0))
                    if isinstance(raw, bytes) and len(raw) >= 4:
                        return "0x" + raw.hex()
            match = _HEX_DATA.search(arg)
            if match:
                return match.group(0)
    return None


def decode_revert(data: str, message: str = "") -> ChainError:
    """Turn revert data into the matching ContractRevert subclass (or UnknownRevert)."""
    selector = data[:10].lower()
    error_cls = _REGISTRY.get(selector)
    if error_cls is None:
        return UnknownRevert(data, message)
    try:
        values = abi_decode(list(error_cls.abi_types), bytes.fromhex(data[10:]))
    except Exception:  # malformed args: still name the error
        values = ()
    return error_cls(*values)


def is_revert(exc: BaseException) -> bool:
    """True when an exception from web3/eth-tester means "the EVM reverted" (not a transport error)."""
    name = type(exc).__name__
    return name in {"ContractCustomError", "ContractLogicError", "ContractPanicError", "TransactionFailed"}


def translate(exc: BaseException) -> ChainError:
    """Map a revert exception from either backend onto our error classes."""
    data = revert_data_of(exc)
    if data is None:
        return UnknownRevert("", str(exc))
    return decode_revert(data, str(exc))
