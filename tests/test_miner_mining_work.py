"""Work units, the inner search loop, the rate meter and the status reports, on their own.

* a ``getblocktemplate`` answer, as the node renders a template, decodes back to that template
  paying the miner (round trip over random templates); anything else decodes or raises only
  DecodeError;
* template work rolls the extranonce (roll r is extranonce r) and moves the time on, never
  below the template's minimum; getwork's header does not roll;
* ``search_work`` returns the first hit in its order (rolls from the first one, nonces from 0),
  checked by brute force; stops when told, between two backend calls; runs out on a header
  that cannot roll; refuses bad ranges;
* the meter's rate covers the last window only;
* each event reads as one line for people, and as one JSON object with the keys the module
  documents; a terminal's status line is redrawn in place and cleared before other lines.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from blocktools import Spendable, key, pkh, spend
from hypothesis import example, given, settings
from hypothesis import strategies as st

import miner.status
from miner import CpuBackend
from miner.search import MIN_CHUNK, Meter, Outcome, chunk_size, search_work
from miner.status import (
    BlockFound,
    JsonReporter,
    MinerEvent,
    NewWork,
    NodeState,
    Started,
    Status,
    Stopped,
    TextReporter,
    WorkReason,
    describe,
)
from miner.work import HeaderWork, TemplateWork, template_from_gbt
from node.core.errors import DecodeError
from node.core.hashing import sha256d
from node.core.header import BlockHeader, bits_to_target
from node.core.params import REGTEST
from node.core.template import MAX_EXTRANONCE, BlockTemplate, TemplateTx, coinbase_merkle_branch
from node.core.tx import OutPoint, TxOut
from node.rpc.methods.mining import template_json
from node.rpc.work import PollState

PAYOUT = pkh(key("work test miner"))
PREV = sha256d(b"a parent")


@pytest.fixture(scope="module")
def backend() -> Iterator[CpuBackend]:
    with CpuBackend(1) as cpu:
        yield cpu


def make_template(
    tx_count: int = 2, *, bits: int = REGTEST.pow_limit_bits, cur_time: int = 1_800_000_000
) -> BlockTemplate:
    """A template over ``tx_count`` signed payments (of coins that need not exist: nothing
    here validates spends)."""
    txs = []
    for n in range(tx_count):
        coin = Spendable(OutPoint(sha256d(bytes([n])), n), 10_000 + n, key(f"payer {n}"))
        tx = spend([coin], [TxOut(9_000, pkh(key(f"payee {n}")))])
        txs.append(TemplateTx(tx, 1_000 + n, ()))
    return BlockTemplate(
        version=1,
        prev_hash=PREV,
        height=500,
        bits=bits,
        min_time=cur_time - 100,
        cur_time=cur_time,
        payout_pubkey_hash=PAYOUT,
        message=b"work test",
        transactions=tuple(txs),
        fees=sum(t.fee for t in txs),
        coinbase_value=REGTEST.subsidy(500) + sum(t.fee for t in txs),
        max_size=REGTEST.max_block_size,
        merkle_branch=coinbase_merkle_branch([t.txid for t in txs]),
    )


def as_gbt(template: BlockTemplate) -> dict[str, Any]:
    """The template as ``getblocktemplate`` answers it, through JSON text."""
    rendered = template_json(template, PollState(template.prev_hash, 7))
    loaded: dict[str, Any] = json.loads(json.dumps(rendered))
    return loaded


# -- getblocktemplate answers


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 5), st.integers(1_600_000_000, 2_000_000_000))
def test_a_template_answer_decodes_back_to_the_template(tx_count: int, cur_time: int) -> None:
    template = make_template(tx_count, cur_time=cur_time)
    assert template_from_gbt(as_gbt(template), PAYOUT, b"work test") == template


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
FIELDS = ["version", "previousblockhash", "height", "bits", "mintime", "curtime"]
FIELDS += ["coinbasevalue", "sizelimit", "transactions"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIELDS), JSON_VALUES | st.just(KeyError))
@example("height", float("inf"))  # int() raised OverflowError here
@example("version", "1")  # int() took a string
@example("mintime", 1.9)  # ...and cut a fraction
def test_a_broken_answer_raises_only_decode_error(field: str, value: object) -> None:
    answer = as_gbt(make_template(1))
    if value is KeyError:
        del answer[field]
    else:
        answer[field] = value
    try:
        template = template_from_gbt(answer, PAYOUT)
    except DecodeError:
        return
    TemplateWork(template).job(MAX_EXTRANONCE, 10**12)  # whatever decodes can be mined


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["data", "txid", "fee", "depends"]), JSON_VALUES)
def test_a_broken_transaction_raises_only_decode_error(field: str, value: object) -> None:
    answer = as_gbt(make_template(1))
    answer["transactions"][0][field] = value
    try:
        template = template_from_gbt(answer, PAYOUT)
    except DecodeError:
        return
    TemplateWork(template).job(0, 0)


def test_a_transaction_must_hash_to_its_txid() -> None:
    answer = as_gbt(make_template(2))
    answer["transactions"][0]["txid"] = answer["transactions"][1]["txid"]
    with pytest.raises(DecodeError, match="does not hash to its txid"):
        template_from_gbt(answer, PAYOUT)


@pytest.mark.parametrize(
    ("payout", "message", "error"),
    [(bytes(19), b"", "20-byte public-key hash"), (PAYOUT, b"x" * 89, "at most 88 bytes")],
)
def test_a_bad_payout_or_message_is_refused(payout: bytes, message: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        template_from_gbt(as_gbt(make_template()), payout, message)


# -- rolling


def test_template_work_rolls_the_extranonce_and_moves_the_time_on() -> None:
    template = make_template()
    work = TemplateWork(template, longpollid="id")
    assert work.rolls == MAX_EXTRANONCE + 1 and work.height == 500 and work.prev_hash == PREV
    for roll, elapsed in [(0, 0), (1, 0), (7, 30), (MAX_EXTRANONCE, 600)]:
        job = work.job(roll, elapsed)
        assert job.roll == roll and job.time == template.cur_time + elapsed
        assert job.header == template.header_for(roll, job.time, 0).serialize()
        assert job.target == bits_to_target(template.bits)
        solution = work.solution(job, 12345)
        assert solution.block == template.block_for(roll, job.time, 12345)
        assert solution.header == solution.block.header and solution.roll == roll
    headers = {work.job(roll, 0).header for roll in range(50)}
    assert len(headers) == 50, "each extranonce gives another merkle root"
    assert work.job(0, -5).time == template.cur_time  # a clock that went back changes nothing
    for roll in (-1, MAX_EXTRANONCE + 1):
        with pytest.raises(ValueError, match="outside"):
            work.job(roll, 0)


def test_getwork_headers_do_not_roll() -> None:
    header = BlockHeader(1, PREV, sha256d(b"root"), 1_800_000_000, 0x207FFFFF, 0)
    work = HeaderWork(header, target=1 << 200, height=9)
    assert work.rolls == 1 and work.target == 1 << 200 and work.height == 9
    job = work.job(0, 3600)
    assert job.header == header.serialize() and job.time == header.time
    solution = work.solution(job, 77)
    assert solution.header == header.with_nonce(77) and solution.block is None
    with pytest.raises(ValueError, match="outside"):
        work.job(1, 0)


# -- the inner loop


def first_hit(work: TemplateWork, first_roll: int, nonce_space: int) -> tuple[int, int]:
    """The first (roll, nonce) meeting the target, in the loop's order, by brute force."""
    roll = first_roll
    while True:
        job = work.job(roll, 0)
        for nonce in range(nonce_space):
            tried = job.header[:76] + nonce.to_bytes(4, "little")
            if int.from_bytes(sha256d(tried), "little") <= job.target:
                return roll, nonce
        roll += 1


@pytest.mark.parametrize(("first_roll", "nonce_space"), [(0, 4096), (3, 300), (1000, 17)])
def test_the_search_finds_the_first_hit_in_its_order(
    backend: CpuBackend, first_roll: int, nonce_space: int
) -> None:
    # About one hash in 2,000 meets this target: several rolls for the smaller spaces.
    work = TemplateWork(make_template(bits=0x1F1FFFFF))
    want = first_hit(work, first_roll, nonce_space)
    result = search_work(work, backend, first_roll=first_roll, nonce_space=nonce_space)
    assert result.outcome is Outcome.FOUND and result.solution is not None
    assert (result.solution.roll, result.solution.header.nonce) == want
    assert result.rolls == want[0] - first_roll + 1
    header = result.solution.header
    assert int.from_bytes(header.hash, "little") <= bits_to_target(header.bits)


def test_the_search_stops_between_two_backend_calls(backend: CpuBackend) -> None:
    work = TemplateWork(make_template(bits=0x1B7FFFFF))  # never found here
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    meter = Meter()
    result = search_work(work, backend, stop=stop, nonce_space=MIN_CHUNK * 10, meter=meter)
    assert result.outcome is Outcome.STOPPED and result.solution is None
    size = chunk_size(work.target, backend.preferred_count)
    assert result.hashes == meter.total == 3 * min(size, MIN_CHUNK * 10)


def test_a_header_that_cannot_roll_runs_out(backend: CpuBackend) -> None:
    header = BlockHeader(1, PREV, sha256d(b"root"), 1_800_000_000, 0x207FFFFF, 0)
    result = search_work(HeaderWork(header, 0, 1), backend, nonce_space=5000)
    assert result.outcome is Outcome.EXHAUSTED and result.hashes == 5000 and result.rolls == 1


@pytest.mark.parametrize(
    ("nonce_space", "first_roll", "error"),
    [
        (0, 0, "nonce space"),
        ((1 << 32) + 1, 0, "nonce space"),
        (1 << 32, MAX_EXTRANONCE + 1, "first roll"),
    ],
)
def test_bad_ranges_are_refused(
    backend: CpuBackend, nonce_space: int, first_roll: int, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        search_work(
            TemplateWork(make_template()), backend, nonce_space=nonce_space, first_roll=first_roll
        )


def test_ranges_are_short_on_easy_targets() -> None:
    assert chunk_size(REGTEST.pow_limit, 1 << 20) == MIN_CHUNK
    assert chunk_size((1 << 240) - 1, 1 << 20) == 4 * 65536
    assert chunk_size(1 << 200, 1 << 20) == 1 << 20


# -- the meter


def test_the_rate_covers_the_last_window_only() -> None:
    now = [100.0]
    meter = Meter(lambda: now[0], window=10.0)
    assert meter.rate() == 0.0
    for _ in range(5):  # 1,000 per second for 5 s
        now[0] += 1
        meter.add(1000)
    assert meter.rate() == pytest.approx(1000)
    for _ in range(20):  # then 10 per second for 20 s
        now[0] += 1
        meter.add(10)
    assert meter.rate() == pytest.approx(10)
    assert meter.total == 5200 and meter.average() == pytest.approx(5200 / 25)
    now[0] += 30  # nothing for 30 s
    assert meter.rate() == 0.0


# -- reports

EVENTS: list[MinerEvent] = [
    Started("gbt", "http://127.0.0.1:18443", "regtest", "mxyz", "cpu", "2 processes on CPU"),
    NewWork(7, "ab" * 32, "207fffff", "7f" + "ff" * 31, WorkReason.NEW_TIP, 5, 0.123),
    BlockFound(7, "cd" * 32, False, "bad-prevblk", 5, 99),
    Status(46_600_000.0, 10**9, 3, 1, 8, "1d00ffff", "00" * 32, 12.5),
    NodeState(False, "could not reach the node"),
    Stopped(60.0, 10**9, 1.6e7, 3, 1, "stop"),
]
LINES = [
    "mining on http://127.0.0.1:18443 (regtest, gbt) with the cpu backend on 2 processes on "
    "CPU, paying mxyz",
    f"new tip: block 7 on {'ab' * 8}…, target 207fffff; stale work abandoned in 0.12 s",
    f"block 7 {'cd' * 32} rejected: bad-prevblk",
    "block 8 | target 1d00ffff (difficulty 1) | 46.6 MH/s | accepted 3, rejected 1",
    "node unreachable: could not reach the node",
    "stopped after 60.0 s: 3 blocks accepted, 1 rejected, 1,000,000,000 hashes at "
    "16.0 MH/s on average",
]


@pytest.mark.parametrize(("event", "line"), list(zip(EVENTS, LINES, strict=True)))
def test_each_event_is_one_line_for_people(event: MinerEvent, line: str) -> None:
    assert describe(event) == line


def documented_keys() -> dict[str, list[str]]:
    """The JSON keys per event, as the table in miner.status's docstring lists them."""
    lines = (miner.status.__doc__ or "").splitlines()
    borders = [n for n, line in enumerate(lines) if line.startswith("=====")]
    table: dict[str, list[str]] = {}
    kind = ""
    for row in lines[borders[1] + 1 : borders[2]]:
        if not row.startswith(" "):
            kind = row.split()[0]
            table[kind] = []
        table[kind] += re.findall(r"``(\w+)``", row)
    return table


def test_json_records_carry_the_documented_keys() -> None:
    stream = io.StringIO()
    reporter = JsonReporter(stream)
    for event in EVENTS:
        reporter.report(event)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(EVENTS)
    documented = documented_keys()
    for line, event in zip(lines, EVENTS, strict=True):
        record = json.loads(line)
        assert record["event"] == event.kind and isinstance(record["time"], float)
        assert list(record)[2:] == documented[event.kind]
        fields = vars(event)
        assert {k: record[k] for k in fields} == {
            k: v.value if isinstance(v, WorkReason) else v for k, v in fields.items()
        }


def test_a_terminal_redraws_the_status_line_in_place() -> None:
    stream = io.StringIO()
    reporter = TextReporter(stream, interactive=True)
    status, block = EVENTS[3], EVENTS[2]
    reporter.report(status)
    reporter.report(status)
    reporter.report(block)
    reporter.report(status)
    reporter.close()
    line = describe(status)
    assert stream.getvalue() == (
        f"\r\x1b[K{line}\r\x1b[K{line}\r\x1b[K{describe(block)}\n\r\x1b[K{line}\r\x1b[K"
    )


def test_a_pipe_gets_every_status_as_a_line() -> None:
    stream = io.StringIO()
    reporter = TextReporter(stream, interactive=False)
    for event in EVENTS:
        reporter.report(event)
    reporter.close()
    assert stream.getvalue() == "".join(line + "\n" for line in LINES)


def test_people_are_not_told_of_new_work_after_each_of_their_blocks() -> None:
    """The block's own line says it; on a fast network every other line would be new work."""
    after_block = NewWork(
        8, "cd" * 32, "207fffff", "7f" + "ff" * 31, WorkReason.AFTER_BLOCK, 0, None
    )
    text, lines = io.StringIO(), io.StringIO()
    TextReporter(text, interactive=False).report(after_block)
    JsonReporter(lines).report(after_block)
    assert text.getvalue() == ""
    assert json.loads(lines.getvalue())["reason"] == "after_block"
