"""Bad input cannot stall good input (SYSTEM.md §9): ``netdistill run`` under a flood of
junk on every collector port keeps answering RADIUS (real ``radclient``), its API and
its console, stores every valid record sent after the flood exactly, and stores at most
the quarantine cap of the junk — the rest counted by reason, payloads cut to 2 KiB with
their length kept.

The finding it reproduces (issue 11): 100k junk NetFlow datagrams, 20k bad RADIUS
packets and 5k binary syslog lines froze committed records for minutes and left RADIUS
requests unanswered, because quarantine was inserted row by row under the store's
lock on the one thread that served every source.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import peers
from flood_traffic import (
    FloodRun,
    Probe,
    flows,
    netflow_junk,
    radius_junk,
    send,
    syslog_junk,
)

from netdistill.sources.netflow.encode import V9Exporter, encode_v9

NETFLOW_JUNK = 30_000
RADIUS_JUNK = 5_000
SYSLOG_JUNK = 3_000
UNKNOWN = 500  # datagrams from 127.0.0.3, which the allow list does not name
BURST_ROWS = 300
ROWS_PER_S = 20.0
WORST_S = 2.0

NETFILTER = (
    "<4>Oct 11 22:14:15 fw kernel: IN=eth0 OUT= SRC=10.0.0.{i} DST=10.0.0.2 LEN={n} "
    "TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=4000{i} DPT=80 WINDOW=1 RES=0x00 "
    "SYN URGP=0"
)


def _wait(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _rejected(status: dict[str, object]) -> int:
    quarantine = status["quarantine"]
    return sum(quarantine["stored"].values()) + sum(quarantine["counted_only"].values())  # type: ignore[index]


def test_a_flood_of_junk_stalls_nothing(tmp_path):
    peers.require("radclient")
    nf_junk = netflow_junk(NETFLOW_JUNK)
    rad_junk = radius_junk(RADIUS_JUNK)
    sys_junk = syslog_junk(SYSLOG_JUNK)
    manager = f"  quarantine: {{rows_per_s: {ROWS_PER_S}, burst_rows: {BURST_ROWS}}}\n"
    allow = (
        '    exporters: {"127.0.0.1": {}, "127.0.0.2": {}}\n'
        "    allow_unknown: false\n"
        "    hold_before_template_s: 1\n"
    )
    with FloodRun(tmp_path, manager_extra=manager, netflow_extra=allow) as run:
        started = time.monotonic()
        cookie = run.login_cookie()
        with Probe(run, tmp_path, cookie) as probe:
            time.sleep(0.5)
            senders = [
                threading.Thread(target=send, args=args, kwargs=kwargs)
                for args, kwargs in (
                    ((nf_junk.payloads, run.netflow_port), {"per_second": 10_000}),
                    ((rad_junk.payloads, run.radius_port), {"per_second": 2_000}),
                    ((sys_junk.payloads, run.syslog_port), {"per_second": 1_000}),
                    (([b"\x00\x09junk"] * UNKNOWN, run.netflow_port), {
                        "per_second": 1_000, "source": "127.0.0.3"}),
                )
            ]  # fmt: skip
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            # every junk datagram has been decided on: stored or counted
            _wait(
                lambda: (
                    _rejected(run.source_status("nf")) == NETFLOW_JUNK
                    and _rejected(run.source_status("fw")) == SYSLOG_JUNK
                    and sum(run.source_status("bras")["dropped"].values()) == RADIUS_JUNK
                ),
                40,
                "the junk to be counted",
            )
            time.sleep(1.0)  # the probe keeps going after the flood
        elapsed = time.monotonic() - started
        assert probe.unanswered == 0, probe.samples
        assert len(probe.sent_sessions) >= 3
        for name in ("radius", "status", "login_page", "console_page"):
            assert probe.worst[name] < WORST_S, (name, probe.worst, probe.samples[name])

        # known valid input after the flood
        truth = flows(600, seed=99)
        datagrams = encode_v9(truth, V9Exporter(source_id=7))
        send(datagrams, run.netflow_port, source="127.0.0.2", per_second=2_000)
        lines = [NETFILTER.format(i=i % 200, n=100 + i) for i in range(150)]
        send([line.encode() for line in lines], run.syslog_port, per_second=2_000)
        _wait(lambda: run.source_status("nf")["records"] == 600, 20, "the valid flows")
        _wait(lambda: run.source_status("fw")["records"] == 150, 20, "the valid lines")
        statuses = {name: run.source_status(name) for name in ("nf", "bras", "fw")}
        code, metrics, _ = run.call("GET", "/metrics")
        assert code == 200
        run.stop()

    def rows(sql: str) -> list[dict[str, object]]:
        return peers.query(run.data_dir, sql)

    # records: exactly what was sent, nothing from the junk
    assert rows(
        "select count(*) n, sum(bytes) b, sum(packets) p from records where source = 'nf'"
    ) == [{"n": 600, "b": int(np.sum(truth["bytes"])), "p": int(np.sum(truth["packets"]))}]
    assert rows("select count(*) n, sum(bytes) b from records where source = 'fw'") == [
        {"n": 150, "b": sum(100 + i for i in range(150))}
    ]
    sessions = rows(
        "select session_id, bytes_in, bytes_out from records where source = 'bras' "
        "order by session_id"
    )
    assert sorted((r["session_id"], r["bytes_in"], r["bytes_out"]) for r in sessions) == sorted(
        probe.sent_sessions
    )

    # the allow list: 127.0.0.3 counted per address, never decoded or quarantined
    assert statuses["nf"]["unknown_exporters"] == {"127.0.0.3": UNKNOWN}
    assert statuses["nf"]["dropped"]["unknown_exporter"] == UNKNOWN

    # quarantine: stored ≤ the cap, the rest counted, per reason, exactly
    stored = Counter(
        {
            (r["source"], r["reason"]): int(r["n"])  # type: ignore[call-overload]
            for r in rows("select source, reason, count(*) n from quarantine group by all")
        }
    )
    expected = {
        "nf": nf_junk.expected,
        "fw": sys_junk.expected,
        "bras": Counter({"malformed": rad_junk.expected["malformed"]}),
    }
    for name, reasons in expected.items():
        quarantine = statuses[name]["quarantine"]
        total = sum(n for (source, _), n in stored.items() if source == name)
        assert 0 < total <= BURST_ROWS + ROWS_PER_S * elapsed, (name, total, elapsed)
        for reason, sent in reasons.items():
            assert quarantine["stored"].get(reason, 0) == stored[(name, reason)], name
            assert quarantine["counted_only"].get(reason, 0) == sent - stored[(name, reason)]
            assert statuses[name]["dropped"][reason] == sent, (name, reason)
        counted = quarantine["counted_only"].get("truncated", 0)
        if name == "nf":  # the same counts in /metrics
            line = 'netdistill_source_quarantine_counted_only_total{reason="truncated",source="nf"}'
            assert f"{line} {float(counted)}" in metrics.decode()
    for reason in ("bad_authenticator", "wrong_code"):  # counted, never kept
        assert statuses["bras"]["dropped"][reason] == rad_junk.expected[reason]

    # payloads: at most 2 KiB kept, the whole length recorded
    assert rows("select max(octet_length(payload)) m from quarantine") == [{"m": 2048}]
    whole = {p[:2048]: len(p) for junk in (nf_junk, sys_junk) for p in junk.payloads}
    kept = rows(
        "select hex(payload) h, payload_length n, octet_length(payload) k from quarantine "
        "where source in ('fw', 'nf')"
    )
    assert sum(1 for r in kept if r["n"] > 2048) > 0  # type: ignore[operator]
    for r in kept:
        assert whole[bytes.fromhex(str(r["h"]))] == r["n"]
        assert r["k"] == min(2048, r["n"])  # type: ignore[type-var]
