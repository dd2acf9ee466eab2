"""The csv and jsonl formats: mappings onto standard and new fields, every field type,
conversion errors naming the field and the value, the rest of the batch kept."""

# ruff: noqa: E501  (verbatim input lines are longer than code lines)
from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from netdistill.records.batch import FieldSpec
from netdistill.sources.lines import make_format

CSV_OPTIONS = {
    "header": True,
    "delimiter": ";",
    "timezone": "Europe/Berlin",
    "fields": [
        {"name": "start_time", "type": "timestamp", "from": "when", "format": "%d.%m.%Y %H:%M:%S"},
        {"name": "user_name", "from": "login"},
        {"name": "bytes", "type": "uint64", "from": "volume"},
        {"name": "src_ip", "type": "ip", "from": "address"},
        {"name": "vpn_active", "type": "bool", "from": 4},
        {"name": "service", "value": "vpn"},
    ],
}
CSV_LINES = [
    "when;login;volume;address;active",
    '01.03.2024 10:00:00;"doe; john";100;10.0.0.1;yes',
    "01.03.2024 11:00:00;ann;-5;10.0.0.2;no",
    '01.03.2024 12:00:00;bob"x;5;10.0.0.3;no',
    "",
    "when;login;volume;address;active",
    "31.02.2024 12:00:00;cy;7;10.0.0.4;no",
    "01.03.2024 13:00:00;dee;7;2001:DB8:0:0::1;maybe",
    "01.03.2024 14:00:00;eve",
    '01.03.2024 15:00:00;"fay ""f"" x";18446744073709551615;10.0.0.5;TRUE',
]


def test_csv_mapping() -> None:
    fmt = make_format("csv", CSV_OPTIONS)
    assert fmt.fields == (FieldSpec("vpn_active", "bool", "from a generic line format"),)
    parsed = fmt.parse(pa.table({"line": CSV_LINES}))
    assert parsed.bad == [
        (2, "field 'bytes': '-5' is not a valid uint64"),
        (3, "not a well-formed CSV line (unbalanced or stray quote)"),
        (
            6,
            "field 'start_time': '31.02.2024 12:00:00' is not a valid timestamp (%d.%m.%Y %H:%M:%S)",
        ),
        (7, "field 'vpn_active': 'maybe' is not a valid bool"),
        (8, "2 columns, the mapping needs 5"),
    ]
    assert parsed.records.to_pylist() == [
        {
            "start_time": datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
            "user_name": "doe; john",
            "bytes": 100,
            "src_ip": "10.0.0.1",
            "vpn_active": True,
            "service": "vpn",
        },
        {
            "start_time": datetime(2024, 3, 1, 14, 0, tzinfo=UTC),
            "user_name": 'fay "f" x',
            "bytes": 2**64 - 1,
            "src_ip": "10.0.0.5",
            "vpn_active": True,
            "service": "vpn",
        },
    ]
    assert fmt.ignored == 3  # the header, its repetition, the blank line
    # a later batch keeps the header's column names
    later = fmt.parse(pa.table({"line": ["01.03.2024 16:00:00;gus;1;::1;0"]}))
    assert later.records.column("src_ip").to_pylist() == ["::1"]


def test_csv_by_index_and_epoch() -> None:
    fmt = make_format(
        "csv",
        {
            "fields": [
                {"name": "start_time", "type": "timestamp", "from": 0, "format": "epoch_ms"},
                {"name": "duration_s", "type": "float64", "from": 1},
                {"name": "dst_port", "type": "uint16", "from": 2},
            ]
        },
    )
    parsed = fmt.parse(pa.table({"line": ["1709283600500,1.5,443", "x,2,70000", "1,2,3,4,5"]}))
    assert parsed.bad == [
        (1, "field 'start_time': 'x' is not a valid timestamp (epoch_ms)"),
    ]
    assert parsed.records.to_pylist() == [
        {
            "start_time": datetime(2024, 3, 1, 9, 0, 0, 500000, tzinfo=UTC),
            "duration_s": 1.5,
            "dst_port": 443,
        },
        {
            "start_time": datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
            "duration_s": 2.0,
            "dst_port": 3,
        },
    ]


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="needs header: true"):
        make_format("csv", {"fields": [{"name": "user_name", "from": "login"}]})
    with pytest.raises(ValidationError, match="standard field of type timestamp"):
        make_format("jsonl", {"fields": [{"name": "start_time", "from": "t"}]})
    with pytest.raises(ValidationError, match="mapped twice"):
        make_format(
            "jsonl",
            {"fields": [{"name": "user_name", "from": "a"}, {"name": "user_name", "from": "b"}]},
        )
    with pytest.raises(ValidationError, match="exactly one of 'from' and 'value'"):
        make_format("jsonl", {"fields": [{"name": "user_name"}]})


JSON_OPTIONS = {
    "fields": [
        {"name": "start_time", "type": "timestamp", "from": "session.start"},
        {"name": "src_ip", "type": "ip", "from": "client.ip"},
        {"name": "bytes", "type": "uint64", "from": "traffic.total"},
        {"name": "user_name", "from": "user"},
        {"name": "vpn_pool", "from": "pool name"},
    ]
}
JSON_LINES = [
    '{"session": {"start": "2024-03-01T10:00:00+01:00"}, "client": {"ip": "10.0.0.1"}, "traffic": {"total": 1500}, "user": "ann", "pool name": "a"}',
    '{"session": {"start": "2024-03-01 10:00:00"}, "client": {"ip": "10.0.0.x"}, "traffic": {"total": 1}, "user": "bob"}',
    "[1, 2]",
    '{"user": "cy", "traffic": {"total": null}}',
    '{"user": "dee"',
    "   ",
    '{"session": {"start": "2024-03-01"}, "traffic": {"total": "12x"}}',
]


def test_jsonl_mapping() -> None:
    fmt = make_format("jsonl", JSON_OPTIONS)
    parsed = fmt.parse(pa.table({"line": JSON_LINES}))
    assert parsed.bad == [
        (1, "field 'src_ip': '10.0.0.x' is not a valid ip"),
        (2, "not a JSON object"),
        (4, "not a JSON object"),
        (6, "field 'bytes': '12x' is not a valid uint64"),
    ]
    assert parsed.records.to_pylist() == [
        {
            "start_time": datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
            "src_ip": "10.0.0.1",
            "bytes": 1500,
            "user_name": "ann",
            "vpn_pool": "a",
        },
        {"start_time": None, "src_ip": None, "bytes": None, "user_name": "cy", "vpn_pool": None},
    ]
    assert fmt.ignored == 1


FIELD_TEXT = st.one_of(
    st.text(max_size=12),
    st.integers().map(str),
    st.sampled_from(["10.0.0.1", "::1", "2024-03-01 10:00:00", "01.03.2024 10:00:00", "yes", ""]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=60),
            st.lists(FIELD_TEXT, max_size=7).map(";".join),
            st.sampled_from(CSV_LINES),
        ),
        max_size=30,
    )
)
def test_csv_random_lines_are_accounted(lines: list[str]) -> None:
    fmt = make_format("csv", CSV_OPTIONS)
    clean = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    parsed = fmt.parse(pa.table({"line": pa.array(clean, pa.string())}))
    assert len({i for i, _ in parsed.bad}) == len(parsed.bad)
    assert parsed.records.num_rows + len(parsed.bad) + fmt.ignored == len(clean)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=60),
            st.sampled_from(JSON_LINES),
            st.builds(
                lambda line, cut, junk: line[:cut] + junk + line[cut:],
                st.sampled_from(JSON_LINES),
                st.integers(0, 150),
                st.text('{}[]":,1a ', max_size=4),
            ),
        ),
        max_size=30,
    )
)
def test_jsonl_random_lines_are_accounted(lines: list[str]) -> None:
    fmt = make_format("jsonl", JSON_OPTIONS)
    clean = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    parsed = fmt.parse(pa.table({"line": pa.array(clean, pa.string())}))
    assert len({i for i, _ in parsed.bad}) == len(parsed.bad)
    assert parsed.records.num_rows + len(parsed.bad) + fmt.ignored == len(clean)
