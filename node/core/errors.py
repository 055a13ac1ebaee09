"""The one error hierarchy of forklab.

Rule violations (something a peer, a miner or a user sent breaks a rule) are kept apart from
internal failures (our own storage or a bug), as btcd keeps ``RuleError`` apart from database
errors: the first is the sender's fault and is answered with a reason; the second is ours and
must never be blamed on a peer.

::

    ForklabError                      base of every error raised on purpose
    ├── DecodeError                   bytes that are not a valid encoding (truncated, trailing,
    │                                 non-canonical, oversized, wrong shape)
    ├── RuleError                     a consensus or policy rule is broken; carries an ErrorCode
    ├── AddressError                  an address that does not parse (typo, checksum, network)
    ├── WalletError                   the wallet cannot do what was asked (funds, key file)
    └── InternalError                 our own failure, never the sender's
        └── StoreError                a data directory that is corrupt, foreign or unreadable

Error codes are Bitcoin Core's reject reasons where Core has the rule, so ``submitblock`` and
``sendrawtransaction`` answer with strings people can search for.
"""

from __future__ import annotations

import enum


class RuleKind(enum.Enum):
    """Whether breaking a rule makes an object invalid for everyone or only unwelcome here."""

    CONSENSUS = "consensus"
    POLICY = "policy"


class ErrorCode(enum.Enum):
    """Every reason a block or transaction is refused.

    The value is the reject reason shown to users (Bitcoin Core's spelling where it exists).
    """

    # -- header and proof of work
    HIGH_HASH = "high-hash"
    BAD_DIFFBITS = "bad-diffbits"
    TIME_TOO_OLD = "time-too-old"
    TIME_TOO_NEW = "time-too-new"
    BAD_VERSION = "bad-version"
    PREV_BLK_NOT_FOUND = "prev-blk-not-found"
    BAD_PREVBLK = "bad-prevblk"
    DUPLICATE = "duplicate"
    INVALID_BLOCK = "invalid-block"
    # -- block structure
    BAD_BLK_LENGTH = "bad-blk-length"
    BAD_TXNMRKLROOT = "bad-txnmrklroot"
    BAD_TXNS_DUPLICATE = "bad-txns-duplicate"
    BAD_CB_MISSING = "bad-cb-missing"
    BAD_CB_MULTIPLE = "bad-cb-multiple"
    BAD_CB_HEIGHT = "bad-cb-height"
    BAD_CB_LENGTH = "bad-cb-length"
    BAD_CB_AMOUNT = "bad-cb-amount"
    # -- transactions
    BAD_TXNS_VIN_EMPTY = "bad-txns-vin-empty"
    BAD_TXNS_VOUT_EMPTY = "bad-txns-vout-empty"
    BAD_TXNS_OVERSIZE = "bad-txns-oversize"
    BAD_TXNS_VOUT_NEGATIVE = "bad-txns-vout-negative"
    BAD_TXNS_VOUT_TOOLARGE = "bad-txns-vout-toolarge"
    BAD_TXNS_TXOUTTOTAL_TOOLARGE = "bad-txns-txouttotal-toolarge"
    BAD_TXNS_INPUTS_DUPLICATE = "bad-txns-inputs-duplicate"
    BAD_TXNS_PREVOUT_NULL = "bad-txns-prevout-null"
    BAD_TXNS_INPUTS_MISSINGORSPENT = "bad-txns-inputs-missingorspent"
    BAD_TXNS_INPUTVALUES_OUTOFRANGE = "bad-txns-inputvalues-outofrange"
    BAD_TXNS_IN_BELOWOUT = "bad-txns-in-belowout"
    BAD_TXNS_ACCUMULATED_FEE_OUTOFRANGE = "bad-txns-accumulated-fee-outofrange"
    BAD_TXNS_PREMATURE_SPEND_OF_COINBASE = "bad-txns-premature-spend-of-coinbase"
    BAD_TXNS_NONFINAL = "bad-txns-nonfinal"
    BAD_TXNS_BIP30 = "bad-txns-BIP30"
    BAD_TXNS_PUBKEY_MISMATCH = "bad-txns-pubkey-mismatch"
    BAD_TXNS_SIGNATURE = "bad-txns-signature"
    # -- mempool policy
    TXN_ALREADY_IN_MEMPOOL = "txn-already-in-mempool"
    TXN_ALREADY_KNOWN = "txn-already-known"
    TXN_MEMPOOL_CONFLICT = "txn-mempool-conflict"
    MEMPOOL_FULL = "mempool-full"
    MIN_RELAY_FEE_NOT_MET = "min-relay-fee-not-met"
    TOO_LONG_MEMPOOL_CHAIN = "too-long-mempool-chain"
    COINBASE = "coinbase"
    TX_SIZE = "tx-size"

    @property
    def kind(self) -> RuleKind:
        return RuleKind.POLICY if self in _POLICY_CODES else RuleKind.CONSENSUS

    @property
    def marks_invalid(self) -> bool:
        """Whether a block refused with this code is marked invalid for good.

        Not when the fault may not be the block's own: a mutated copy (bad merkle root, the
        duplicate-transaction mutation, a size changed by a mutated copy) carries the hash of a
        block that may be valid, a time too far ahead becomes valid later, and a missing parent
        or a duplicate says nothing about the block.
        """
        return self.kind is RuleKind.CONSENSUS and self not in _NOT_MARKING


_POLICY_CODES = frozenset(
    {
        ErrorCode.TXN_ALREADY_IN_MEMPOOL,
        ErrorCode.TXN_ALREADY_KNOWN,
        ErrorCode.TXN_MEMPOOL_CONFLICT,
        ErrorCode.MEMPOOL_FULL,
        ErrorCode.MIN_RELAY_FEE_NOT_MET,
        ErrorCode.TOO_LONG_MEMPOOL_CHAIN,
        ErrorCode.COINBASE,
        ErrorCode.TX_SIZE,
    }
)

_NOT_MARKING = frozenset(
    {
        ErrorCode.TIME_TOO_NEW,
        ErrorCode.BAD_TXNMRKLROOT,
        ErrorCode.BAD_TXNS_DUPLICATE,
        ErrorCode.BAD_BLK_LENGTH,
        ErrorCode.PREV_BLK_NOT_FOUND,
        ErrorCode.DUPLICATE,
    }
)


class ForklabError(Exception):
    """Base of every error forklab raises on purpose."""


class DecodeError(ForklabError):
    """Bytes that are not a valid, canonical encoding of the expected object."""


class RuleError(ForklabError):
    """A consensus or policy rule is broken.

    ``code`` says which rule; ``detail`` says what about this object broke it.
    """

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code.value}: {detail}" if detail else code.value)

    @property
    def reason(self) -> str:
        """The reject reason as shown to users (Bitcoin Core's spelling)."""
        return self.code.value


class AddressError(ForklabError):
    """An address that does not parse: bad characters, checksum, length or network."""


class WalletError(ForklabError):
    """The wallet cannot do what was asked: not enough funds, unreadable key file."""


class InternalError(ForklabError):
    """Our own failure (storage, an invariant); never the fault of whoever sent the data."""


class StoreError(InternalError):
    """A data directory that is corrupt, belongs to another network, or cannot be read."""
