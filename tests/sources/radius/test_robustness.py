"""The accounting decoder never raises: every datagram is recorded, answered as a
duplicate, dropped by reason or quarantined; totals sum to the Stop whatever the order."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad import packet
from radius_support import SECRET, request

from netdistill.sources.base import Datagram
from netdistill.sources.radius.accounting import (
    DICTIONARY,
    AccountingDecoder,
    ClientTable,
    split_attributes,
)
from netdistill.sources.radius.sessions import AnsweredRequests, SessionTable


def decoder() -> AccountingDecoder:
    return AccountingDecoder(
        source="radius",
        clients=ClientTable({"127.0.0.0/8": SECRET.encode()}),
        sessions=SessionTable(),
        answered=AnsweredRequests(window_s=300, limit=10_000),
    )


VALID = request(
    {
        "Acct-Status-Type": "Interim-Update",
        "Acct-Session-Id": "fuzz",
        "User-Name": "zed",
        "Framed-IP-Address": "10.3.0.1",
        "Acct-Input-Octets": 123,
        "Acct-Input-Gigawords": 2,
        "Event-Timestamp": 1_700_000_000,
        "Proxy-State": b"p",
    }
)


def sign(raw: bytearray) -> bytes:
    """Recompute the Request Authenticator, so a mutation reaches the attribute walk."""
    import hashlib

    raw[4:20] = bytes(16)
    raw[4:20] = hashlib.md5(bytes(raw) + SECRET.encode()).digest()
    return bytes(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255), st.booleans()).map(
                lambda m: _mutate(*m)
            ),
        ),
        max_size=12,
    )
)
def test_random_and_mutated_requests_never_raise(payloads):
    d = decoder()
    datagrams = [Datagram("127.0.0.1", p, 1.0e9, 1812) for p in payloads]
    result = d.decode(datagrams)
    assert d.counters.datagrams == len(payloads)
    handled = d.counters.records + d.duplicates + sum(d.counters.dropped.values())
    assert handled == len(payloads)
    assert result.records.num_rows == d.counters.records
    assert len(result.quarantined) == d.counters.dropped["malformed"]
    for q in result.quarantined:
        assert q.offset is not None and 0 <= q.offset <= len(q.payload)
        assert q.location == "127.0.0.1:1812" and q.reason == "malformed"
    assert len(result.answers) == d.counters.records + d.duplicates


def _mutate(position: int, value: int, resign: bool) -> bytes:
    raw = bytearray(VALID)
    raw[position] = value
    return sign(raw) if resign and raw[0] == 4 and len(raw) >= 20 else bytes(raw)


def test_malformed_attribute_is_quarantined_with_its_offset():
    raw = bytearray(VALID)
    raw[21] = 1  # first attribute's length below the minimum of 2
    d = decoder()
    result = d.decode([Datagram("127.0.0.1", sign(raw), 1.0e9, 40000)])
    (q,) = result.quarantined
    assert q.offset == 20 and "length 1" in q.detail and q.location == "127.0.0.1:40000"
    assert d.counters.dropped == {"malformed": 1}
    assert result.answers == []


@given(st.integers(0, 2**31))
def test_attribute_walk_agrees_with_pyrad(seed):
    rng = random.Random(seed)
    attributes = {
        "User-Name": "u" * rng.randint(1, 40),
        "Acct-Session-Id": str(rng.getrandbits(40)),
        "Acct-Status-Type": rng.choice(["Start", "Stop", "Interim-Update"]),
        "Acct-Input-Octets": rng.getrandbits(32),
        "Acct-Output-Gigawords": rng.getrandbits(8),
        "NAS-Port": rng.getrandbits(32),
        "Framed-IPv6-Prefix": f"2001:db8:{rng.getrandbits(16):x}::/48",
    }
    raw = request(attributes)
    ours, _ = split_attributes(raw, len(raw))
    theirs = packet.AcctPacket(packet=raw, secret=SECRET.encode(), dict=DICTIONARY)
    assert ours == {code: values[0] for code, values in theirs.items()}


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 5_000_000), st.integers(0, 5_000_000), st.integers(0, 600)),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(0, 2**31),
    repeats=st.integers(0, 3),
)
def test_reordered_lost_and_repeated_interims_sum_to_the_stop(steps, seed, repeats):
    """Running totals grow step by step; the interims arrive shuffled, some lost, some
    twice; the Stop arrives (anywhere in the order). The records sum to the Stop."""
    rng = random.Random(seed)
    totals, i, o, t = [], 0, 0, 0
    for di, do, dt in steps:
        i, o, t = i + di, o + do, t + dt
        totals.append((i, o, t))

    def make(status, identifier, total):
        return request(
            {
                "Acct-Status-Type": status,
                "Acct-Session-Id": "s",
                "Acct-Input-Octets": total[0],
                "Acct-Output-Octets": total[1] & 0xFFFFFFFF,
                "Acct-Output-Gigawords": total[1] >> 32,
                "Acct-Session-Time": total[2],
            },
            identifier=identifier,
        )

    interims = [make("Interim-Update", n, tot) for n, tot in enumerate(totals[:-1])]
    delivered = [p for p in interims if rng.random() < 0.7]
    delivered += rng.sample(delivered, min(repeats, len(delivered)))
    delivered.append(make("Stop", 250, totals[-1]))
    rng.shuffle(delivered)
    d = decoder()
    tables = [d.decode([Datagram("127.0.0.1", p, 1.0e9)]).records for p in delivered]
    sums = {
        name: sum(sum(t.column(name).to_pylist()) for t in tables)
        for name in ("bytes_in", "bytes_out", "duration_s")
    }
    assert sums == {"bytes_in": i, "bytes_out": o, "duration_s": float(t)}
