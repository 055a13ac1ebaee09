"""The block and transaction rules: pure functions that return, or raise RuleError(code, detail).

Checks come in the layers Bitcoin Core uses, cheapest and least contextual first, so a bad
object is refused before anything expensive (a signature) or stateful (the UTXO set) is touched:

=========================  ===============================  ==================================
function                   needs                            rules
=========================  ===============================  ==================================
check_transaction          the transaction                  shape, sizes, amounts in range,
                                                            no input twice, coinbase data size
check_block                the block, network params        proof of work, merkle root and its
                                                            mutation, size, one coinbase first
check_header_context       the parent's facts, ``now``      expected ``bits``, median time past,
                                                            not too far in the future
check_block_context        the block's height               coinbase height, finality
check_tx_inputs            a UTXO view                      inputs exist, maturity, value
                                                            ranges, inputs >= outputs, keys and
                                                            signatures
connect_block              a CoinsCache to update           all of the above per transaction in
                                                            order, BIP30, coinbase value
=========================  ===============================  ==================================

Every rule has its own :class:`~node.core.errors.ErrorCode`, so a test can break exactly one rule
and see exactly that code, and a peer is told exactly which rule it broke.

Amounts are Python integers, which do not overflow; the range checks are there because a sum
out of range is a meaningless amount (Bitcoin's CVE-2010-5139 minted 184 billion coins through
an overflowing sum) and so that forklab refuses exactly what Bitcoin refuses.

What this module does not do: look up parents, compute the expected ``bits`` or the median time
(those need the block tree: :mod:`node.core.chain`), read a clock, touch storage, or apply
mempool policy (:mod:`node.core.mempool`).
"""

from __future__ import annotations

from node.core.address import hash160
from node.core.block import Block
from node.core.crypto import PUBKEY_SIZE, SIGNATURE_SIZE, verify
from node.core.errors import ErrorCode, InternalError, RuleError
from node.core.header import BlockHeader, check_proof_of_work
from node.core.params import MAX_FUTURE_BLOCK_TIME, NetworkParams
from node.core.sigcache import SignatureCache, signature_cache_key
from node.core.tx import MAX_MONEY, MAX_SIGNATURE_FIELD, MAX_TX_SIZE, OutPoint, Transaction
from node.core.utxo import BlockUndo, Coin, CoinsCache, UtxoView

__all__ = [
    "MAX_COINBASE_DATA",
    "MIN_COINBASE_DATA",
    "SignatureCache",
    "check_block",
    "check_block_context",
    "check_header_context",
    "check_transaction",
    "check_tx_inputs",
    "connect_block",
    "disconnect_block",
]

MIN_COINBASE_DATA = 4
"""The coinbase data starts with the 4-byte height (BIP 34), so it is never shorter."""

MAX_COINBASE_DATA = MAX_SIGNATURE_FIELD
"""Bitcoin's limit on a coinbase scriptSig: 100 bytes."""


# -- context-free


def check_transaction(tx: Transaction) -> None:
    """Rules a transaction must meet whatever chain it is in (Bitcoin's CheckTransaction)."""
    if not tx.inputs:
        raise RuleError(ErrorCode.BAD_TXNS_VIN_EMPTY, f"transaction {tx.txid_hex} has no inputs")
    if not tx.outputs:
        raise RuleError(ErrorCode.BAD_TXNS_VOUT_EMPTY, f"transaction {tx.txid_hex} has no outputs")
    if tx.size > MAX_TX_SIZE:
        raise RuleError(
            ErrorCode.BAD_TXNS_OVERSIZE, f"{tx.size} bytes exceeds the limit of {MAX_TX_SIZE}"
        )
    total = 0
    for n, txout in enumerate(tx.outputs):
        if txout.value < 0:
            raise RuleError(ErrorCode.BAD_TXNS_VOUT_NEGATIVE, f"output {n} value {txout.value}")
        if txout.value > MAX_MONEY:
            raise RuleError(ErrorCode.BAD_TXNS_VOUT_TOOLARGE, f"output {n} value {txout.value}")
        total += txout.value
        if total > MAX_MONEY:
            raise RuleError(
                ErrorCode.BAD_TXNS_TXOUTTOTAL_TOOLARGE, f"outputs 0..{n} sum to {total}"
            )
    # The same coin spent twice by one transaction must be caught here: the UTXO checks look
    # each input up before any is spent, so they would see it unspent twice (CVE-2018-17144).
    if len({txin.prevout for txin in tx.inputs}) != len(tx.inputs):
        raise RuleError(
            ErrorCode.BAD_TXNS_INPUTS_DUPLICATE, f"transaction {tx.txid_hex} spends a coin twice"
        )
    if tx.is_coinbase():
        size = len(tx.inputs[0].signature)
        if not MIN_COINBASE_DATA <= size <= MAX_COINBASE_DATA:
            raise RuleError(
                ErrorCode.BAD_CB_LENGTH,
                f"coinbase data is {size} bytes, not {MIN_COINBASE_DATA}..{MAX_COINBASE_DATA}",
            )
        return
    for n, txin in enumerate(tx.inputs):
        if txin.prevout.is_null():
            raise RuleError(ErrorCode.BAD_TXNS_PREVOUT_NULL, f"input {n} of a non-coinbase")
        # A malformed key or signature can never verify; refusing it here keeps such
        # transactions away from the UTXO lookups and the signature cache.
        if len(txin.pubkey) != PUBKEY_SIZE or len(txin.signature) != SIGNATURE_SIZE:
            raise RuleError(
                ErrorCode.BAD_TXNS_SIGNATURE,
                f"input {n} has a {len(txin.pubkey)}-byte public key and a "
                f"{len(txin.signature)}-byte signature, not {PUBKEY_SIZE} and {SIGNATURE_SIZE}",
            )


def check_block(block: Block, params: NetworkParams) -> None:
    """Rules a block must meet wherever it attaches (Bitcoin's CheckBlock).

    The merkle checks come right after proof of work: until they pass, the transactions are not
    known to be the ones the header commits to, and a fault found in them may belong to a
    mutated copy rather than to the block whose hash we have.
    """
    check_proof_of_work(block.header, params.pow_limit)
    root, mutated = block.compute_merkle_root()
    if root != block.header.merkle_root:
        raise RuleError(ErrorCode.BAD_TXNMRKLROOT, f"block {block.hash_hex}")
    if mutated:
        raise RuleError(
            ErrorCode.BAD_TXNS_DUPLICATE, f"block {block.hash_hex} repeats transactions"
        )
    txs = block.transactions
    if not txs or block.size > params.max_block_size:
        raise RuleError(
            ErrorCode.BAD_BLK_LENGTH,
            f"{len(txs)} transactions, {block.size} bytes (limit {params.max_block_size})",
        )
    if not txs[0].is_coinbase():
        raise RuleError(ErrorCode.BAD_CB_MISSING, "the first transaction is not a coinbase")
    for n, tx in enumerate(txs[1:], start=1):
        if tx.is_coinbase():
            raise RuleError(ErrorCode.BAD_CB_MULTIPLE, f"transaction {n} is a second coinbase")
    for tx in txs:
        check_transaction(tx)


# -- contextual


def check_header_context(
    header: BlockHeader, *, expected_bits: int, median_time_past: int, now: int
) -> None:
    """Rules that need the parent: the retarget rule's ``bits`` and the time window.

    ``now`` is the validating node's clock; a block refused as too new is not marked invalid,
    since the same block becomes acceptable as time passes.
    """
    if header.bits != expected_bits:
        raise RuleError(
            ErrorCode.BAD_DIFFBITS, f"bits {header.bits:#010x}, expected {expected_bits:#010x}"
        )
    if header.time <= median_time_past:
        raise RuleError(
            ErrorCode.TIME_TOO_OLD,
            f"time {header.time} is not after the median time past {median_time_past}",
        )
    if header.time > now + MAX_FUTURE_BLOCK_TIME:
        raise RuleError(
            ErrorCode.TIME_TOO_NEW,
            f"time {header.time} is more than {MAX_FUTURE_BLOCK_TIME} s after now ({now})",
        )


def check_block_context(block: Block, height: int) -> None:
    """Rules that need the block's height: transaction finality and the coinbase height."""
    for tx in block.transactions:
        # locktime is the last height at which the transaction may *not* be mined.
        if tx.locktime != 0 and tx.locktime >= height:
            raise RuleError(
                ErrorCode.BAD_TXNS_NONFINAL,
                f"transaction {tx.txid_hex} has locktime {tx.locktime}, block height {height}",
            )
    committed = block.transactions[0].coinbase_height if block.transactions else None
    if committed != height:
        raise RuleError(
            ErrorCode.BAD_CB_HEIGHT, f"coinbase commits to height {committed}, block is {height}"
        )


def check_tx_inputs(
    tx: Transaction,
    view: UtxoView,
    spend_height: int,
    params: NetworkParams,
    *,
    sig_cache: SignatureCache | None = None,
) -> int:
    """Check a non-coinbase transaction's inputs against ``view``; return its fee.

    ``spend_height`` is the height of the block the transaction would be in. Assumes
    :func:`check_transaction` passed (in particular: no input appears twice). A coinbase has no
    coins to spend and is refused here as spending a missing one.

    Signatures are checked last, once everything cheap has passed; a valid one is added to
    ``sig_cache``, and one found there is not checked again.
    """
    coins: list[Coin] = []
    value_in = 0
    for n, txin in enumerate(tx.inputs):
        coin = view.get_coin(txin.prevout)
        if coin is None:
            raise RuleError(
                ErrorCode.BAD_TXNS_INPUTS_MISSINGORSPENT, f"input {n} spends {txin.prevout}"
            )
        if coin.is_coinbase and spend_height - coin.height < params.coinbase_maturity:
            raise RuleError(
                ErrorCode.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
                f"input {n} spends a coinbase of height {coin.height} at height {spend_height}; "
                f"it matures at {coin.height + params.coinbase_maturity}",
            )
        if not 0 <= coin.value <= MAX_MONEY:
            raise RuleError(
                ErrorCode.BAD_TXNS_INPUTVALUES_OUTOFRANGE, f"input {n} value {coin.value}"
            )
        value_in += coin.value
        if value_in > MAX_MONEY:
            raise RuleError(
                ErrorCode.BAD_TXNS_INPUTVALUES_OUTOFRANGE, f"inputs 0..{n} sum to {value_in}"
            )
        coins.append(coin)
    value_out = tx.total_out()
    if value_in < value_out:
        raise RuleError(
            ErrorCode.BAD_TXNS_IN_BELOWOUT, f"inputs {value_in} are below outputs {value_out}"
        )
    for n, (txin, coin) in enumerate(zip(tx.inputs, coins, strict=True)):
        if hash160(txin.pubkey) != coin.pubkey_hash:
            raise RuleError(
                ErrorCode.BAD_TXNS_PUBKEY_MISMATCH,
                f"input {n}: the public key does not hash to the coin's owner",
            )
    _check_signatures(tx, params.genesis_hash, sig_cache)
    return value_in - value_out


def _check_signatures(
    tx: Transaction, genesis_hash: bytes, sig_cache: SignatureCache | None
) -> None:
    for n, txin in enumerate(tx.inputs):
        digest = tx.sighash(n, genesis_hash)
        key = b""
        if sig_cache is not None:
            key = signature_cache_key(digest, txin.pubkey, txin.signature)
            if sig_cache.contains(key):
                continue
        if not verify(txin.pubkey, digest, txin.signature):
            raise RuleError(
                ErrorCode.BAD_TXNS_SIGNATURE, f"input {n} of {tx.txid_hex} has a bad signature"
            )
        if sig_cache is not None:
            sig_cache.add(key)


# -- the UTXO set


def connect_block(
    block: Block,
    height: int,
    view: CoinsCache,
    params: NetworkParams,
    *,
    sig_cache: SignatureCache | None = None,
) -> BlockUndo:
    """Spend the block's inputs and create its outputs in ``view``; return the undo data.

    Assumes :func:`check_block` and both context checks passed. Transactions are applied in
    order, so one may spend an output of an earlier one in the same block, and a coin spent
    twice in the block is missing the second time. On RuleError ``view`` is left half-updated:
    connect into a throwaway :class:`CoinsCache` over the real view, and drop it on failure.
    """
    spent: list[tuple[OutPoint, Coin]] = []
    fees = 0
    for tx in block.transactions:
        is_coinbase = tx.is_coinbase()
        if not is_coinbase:
            fees += check_tx_inputs(tx, view, height, params, sig_cache=sig_cache)
            if fees > MAX_MONEY:
                raise RuleError(
                    ErrorCode.BAD_TXNS_ACCUMULATED_FEE_OUTOFRANGE, f"fees sum to {fees}"
                )
        txid = tx.txid
        outpoints = [OutPoint(txid, index) for index in range(len(tx.outputs))]
        # BIP30: creating an outpoint that is still unspent would overwrite a coin and so
        # destroy it (Bitcoin's duplicate coinbases at heights 91842 and 91880).
        for outpoint in outpoints:
            if view.get_coin(outpoint) is not None:
                raise RuleError(ErrorCode.BAD_TXNS_BIP30, f"{outpoint} already exists unspent")
        if not is_coinbase:
            for txin in tx.inputs:
                spent.append((txin.prevout, view.spend_coin(txin.prevout)))
        for outpoint, txout in zip(outpoints, tx.outputs, strict=True):
            view.add_coin(outpoint, Coin(txout.value, txout.pubkey_hash, height, is_coinbase))
    claimed = block.transactions[0].total_out()
    allowed = params.subsidy(height) + fees
    if claimed > allowed:
        raise RuleError(
            ErrorCode.BAD_CB_AMOUNT,
            f"coinbase pays {claimed}, subsidy plus fees is {allowed}",
        )
    return BlockUndo(tuple(spent))


def disconnect_block(block: Block, undo: BlockUndo, view: CoinsCache) -> None:
    """Undo :func:`connect_block`: remove the block's outputs and restore the coins it spent.

    Transactions are undone last to first, so an output created and spent inside the block is
    restored by the later transaction before the earlier one removes it. Undo data that does
    not fit the block, or a view that does not hold the block's outputs, means our own storage
    is inconsistent: InternalError, never RuleError.
    """
    expected = sum(len(tx.inputs) for tx in block.transactions if not tx.is_coinbase())
    if len(undo.spent) != expected:
        raise InternalError(
            f"undo data for block {block.hash_hex} holds {len(undo.spent)} coins, "
            f"the block spends {expected}"
        )
    position = len(undo.spent)
    for tx in reversed(block.transactions):
        is_coinbase = tx.is_coinbase()
        txid = tx.txid
        for index in range(len(tx.outputs) - 1, -1, -1):
            outpoint = OutPoint(txid, index)
            coin = view.get_coin(outpoint)
            txout = tx.outputs[index]
            if (
                coin is None
                or coin.value != txout.value
                or coin.pubkey_hash != txout.pubkey_hash
                or coin.is_coinbase != is_coinbase
            ):
                raise InternalError(
                    f"disconnecting block {block.hash_hex}: output {outpoint} is not in the "
                    "UTXO set as the block created it"
                )
            view.spend_coin(outpoint)
        if is_coinbase:
            continue
        for txin in reversed(tx.inputs):
            position -= 1
            outpoint, coin = undo.spent[position]
            if outpoint != txin.prevout:
                raise InternalError(
                    f"undo data for block {block.hash_hex} restores {outpoint} where the "
                    f"block spent {txin.prevout}"
                )
            view.add_coin(outpoint, coin)
