"""The asterisk format on Master.csv lines as cdr_csv writes them: quoted strings with
commas and doubled quotes, bare numbers, an empty unquoted answer time."""

# ruff: noqa: E501  (verbatim CDR lines are longer than code lines)
from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from netdistill.sources.lines import make_format

MASTER_CSV = [
    '"acc1","1001","5551234","from-internal","""Alice, Sales"" <1001>","SIP/1001-00000001","SIP/trunk-00000002","Dial","SIP/trunk/5551234,60,tT","2024-03-01 10:00:00","2024-03-01 10:00:05","2024-03-01 10:01:05",65,60,"ANSWERED","DOCUMENTATION","1709283600.1",""',
    '"","1002","200","from-internal","""Bob"" <1002>","SIP/1002-00000003","","Dial","SIP/200,20","2024-03-01 10:02:00",,"2024-03-01 10:02:20",20,0,"NO ANSWER","DOCUMENTATION","1709283720.3",""',
    '"acc1","1001","300","from-internal","Alice <1001>","SIP/1001-00000004","SIP/300-00000005","Dial","SIP/300","2024-03-01 10:03:00",,"2024-03-01 10:03:02",2,0,"BUSY","BILLING","1709283780.4","vip"',
    '"acc1","1001","300" broken quote,"x"',
    '"acc2","1003","400","from-internal","C <1003>","SIP/1003-6","","Dial","SIP/400","2024-03-01 10:04:00",,"2024-03-01 10:04:02",two,0,"FAILED","DOCUMENTATION","1709283840.6",""',
    '"acc2","1003","400","from-internal","C <1003>","SIP/1003-7","SIP/400-8","Dial","SIP/400","2024-03-01 10:05:00","2024-03-01 10:05:01","2024-03-01 10:05:31",31,30,"ANSWERED","DOCUMENTATION","1709283900.7","","peer","1709283900.7",3',
]


def berlin(h: int, m: int, s: int) -> datetime:
    return datetime(2024, 3, 1, h - 1, m, s, tzinfo=UTC)  # CET = UTC+1 in March


def test_master_csv_records() -> None:
    fmt = make_format("asterisk", {"timezone": "Europe/Berlin"})
    parsed = fmt.parse(pa.table({"line": MASTER_CSV}))
    assert parsed.bad == [
        (3, "not a well-formed CSV line (unbalanced or stray quote)"),
        (4, "field 'call_duration_s': 'two' is not a valid uint32"),
    ]
    records = parsed.records.to_pylist()
    assert records[0] == {
        "caller": "1001",
        "callee": "5551234",
        "caller_id": '"Alice, Sales" <1001>',
        "channel": "SIP/1001-00000001",
        "dst_channel": "SIP/trunk-00000002",
        "start_time": berlin(10, 0, 0),
        "answer_time": berlin(10, 0, 5),
        "end_time": berlin(10, 1, 5),
        "call_duration_s": 65,
        "billsec": 60,
        "disposition": "ANSWERED",
        "session_id": "1709283600.1",
        "user_name": "acc1",
        "account_id": "acc1",
        "duration_s": 60.0,
        "service": "voip",
    }
    # no accountcode: billed to the calling number; unanswered: no answer time
    assert (records[1]["user_name"], records[1]["account_id"], records[1]["answer_time"]) == (
        "1002",
        None,
        None,
    )
    assert [r["disposition"] for r in records] == ["ANSWERED", "NO ANSWER", "BUSY", "ANSWERED"]
    # newcdrcolumns (peeraccount, linkedid, sequence) after userfield are ignored
    assert records[3]["session_id"] == "1709283900.7"
    assert sum(r["billsec"] for r in records) == 90
    assert sum(r["call_duration_s"] for r in records) == 118


def test_without_uniqueid_column() -> None:
    fmt = make_format("asterisk", {"loguniqueid": False})
    line = MASTER_CSV[0].rsplit(",", 2)[0]  # the 16 default columns only
    (record,) = fmt.parse(pa.table({"line": [line]})).records.to_pylist()
    assert "session_id" not in record
    assert record["start_time"] == datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=100),
            st.builds(
                lambda line, cut, junk: line[:cut] + junk + line[cut:],
                st.sampled_from(MASTER_CSV),
                st.integers(0, 250),
                st.text(alphabet=',"0123456789 a-:', max_size=6),
            ),
        ),
        max_size=30,
    )
)
def test_random_lines_never_raise_and_every_line_is_accounted(lines: list[str]) -> None:
    fmt = make_format("asterisk")
    clean = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    parsed = fmt.parse(pa.table({"line": pa.array(clean, pa.string())}))
    bad = {i for i, _ in parsed.bad}
    assert len(bad) == len(parsed.bad)
    assert parsed.records.num_rows + len(bad) + fmt.ignored == len(clean)
