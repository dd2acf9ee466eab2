"""``netdistill import --format asterisk`` of a cdr_csv ``Master.csv``: the stored
records' totals (count, billsec, per disposition) equal those computed here from the
file with Python's own ``csv`` reader; a broken line is quarantined as ``path:line``."""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import peers

DISPOSITIONS = ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"]


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _cdr_line(i: int, rng: random.Random) -> str:
    """One line as ``cdr_csv.c`` writes it (strings quoted, numbers bare, an unanswered
    call's answer time empty and unquoted), with uniqueid and userfield."""
    disposition = rng.choice(DISPOSITIONS)
    start = datetime(2024, 3, 1, 8, 0, tzinfo=UTC) + timedelta(seconds=37 * i)
    ring = rng.randint(0, 30)
    billsec = rng.randint(0, 4000) if disposition == "ANSWERED" else 0
    end = start + timedelta(seconds=ring + billsec)
    answer = (start + timedelta(seconds=ring)).strftime("%Y-%m-%d %H:%M:%S")
    caller = str(1000 + i % 40)
    strings = [
        f"acc{i % 7}" if i % 5 else "",
        caller,
        f"0049301234{i:04d}",
        "from-internal",
        f'"Caller, {caller}" <{caller}>',  # comma and quotes inside a quoted field
        f"SIP/{caller}-{i:08x}",
        f"SIP/trunk-{i:08x}",
        "Dial",
        f"SIP/trunk/0049301234{i:04d},60,tT",
    ]
    fields = [_quote(s) for s in strings]
    fields += [_quote(start.strftime("%Y-%m-%d %H:%M:%S"))]
    fields += [_quote(answer) if disposition == "ANSWERED" else ""]
    fields += [_quote(end.strftime("%Y-%m-%d %H:%M:%S"))]
    fields += [str(ring + billsec), str(billsec), _quote(disposition), _quote("DOCUMENTATION")]
    fields += [_quote(f"1709280000.{i}"), _quote("")]
    return ",".join(fields)


def test_import_master_csv_totals(tmp_path):
    rng = random.Random(20240301)
    lines = [_cdr_line(i, rng) for i in range(2500)]
    broken = 1234  # 0-based index of a line cut in the middle of a quoted field
    lines.insert(broken, lines[broken][:40])
    master = tmp_path / "Master.csv"
    master.write_text("\n".join(lines) + "\n")

    # ground truth from the file, read by the standard library
    # (line by line: a line is a record, as the transport cuts the file at newlines)
    good = [next(csv.reader([line])) for n, line in enumerate(lines) if n != broken]
    assert len(good) == 2500
    billsec_total = sum(int(r[13]) for r in good)
    per_disposition: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in good:
        per_disposition[r[14]][0] += 1
        per_disposition[r[14]][1] += int(r[13])
    answered_with_time = sum(1 for r in good if r[10])

    data = tmp_path / "data"
    done = peers.netdistill(
        "import", "--data-dir", str(data), "--format", "asterisk", "--source", "pbx1", str(master)
    )
    assert f"imported {len(good):,} records from {len(lines):,} lines in 1 file(s)" in done.stderr
    assert "quarantined 1" in done.stderr

    total = peers.query(
        data,
        "select count(*) as n, sum(billsec) as billsec, sum(duration_s) as duration, "
        "count(answer_time) as answered, count(distinct session_id) as sessions "
        "from records where source = 'pbx1'",
    )
    assert total == [
        {
            "n": len(good),
            "billsec": billsec_total,
            "duration": float(billsec_total),
            "answered": answered_with_time,
            "sessions": len(good),
        }
    ]
    rows = peers.query(
        data,
        "select disposition, count(*) as n, sum(billsec) as billsec from records "
        "group by disposition order by disposition",
    )
    assert {r["disposition"]: [r["n"], r["billsec"]] for r in rows} == dict(per_disposition)
    assert set(per_disposition) == set(DISPOSITIONS)  # every kind occurs in the sample

    users = peers.query(data, "select user_name, count(*) as n from records group by user_name")
    expected_users = Counter(r[0] or r[1] for r in good)  # accountcode, else src
    assert {r["user_name"]: r["n"] for r in users} == dict(expected_users)
    assert peers.query(data, "select location from quarantine") == [
        {"location": f"{master}:{broken + 1}"}
    ]
