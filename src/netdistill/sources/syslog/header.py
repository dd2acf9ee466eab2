"""Syslog headers of a whole batch of messages at once: RFC 5424 and RFC 3164 (BSD).

The transports (UDP datagrams, TCP frames) hand over raw messages; this module turns a
batch of them into the line table of ``sources/lines.py``: ``line`` (the message body),
``exporter``, ``received_at``, ``host``, ``app``, ``time`` and ``severity``. The format of
each message is detected on its own, so one device may mix both:

* RFC 5424 §6: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]``.
  TIMESTAMP is RFC 3339 with its own offset; ``-`` (nil) leaves ``time`` empty. A UTF-8
  BOM at the start of MSG (§6.4) is removed. Structured data is skipped, not parsed.
* RFC 3164 §4.1: ``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[pid]: CONTENT``. Also accepted, as
  devices send them: a year after the day (Cisco ASA ``Jan 01 2024 12:00:00``), a colon
  after the time, fractional seconds, ``HOST : `` (ASA ``logging device-id``), no
  HOSTNAME, no TAG. The BSD timestamp has neither year nor zone: the zone is the source's
  ``timezone`` setting (default UTC) and the year is that of the receive time in that
  zone, minus one when that would put the message more than a day in the future (a
  ``Dec 31 23:59:59`` message received on 1 January).
* No ``<PRI>`` at all: the whole message is the line, with no header fields.

A TAG is only taken as the app when it is a plain name (letters, digits, ``_./-``)
followed by ``": "``, so message bodies that start with a colon-word stay whole: an ASA
``%ASA-6-302014: ...`` or ``CEF:0|...`` line reaches the formats intact.

All of it runs as Polars string kernels over the batch; the only per-message Python
work is decoding a batch that holds invalid UTF-8 (such messages are rare: bytes are
replaced by U+FFFD, in that batch only).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa

#: the columns of a parsed batch, in order
LINE_COLUMNS = ("line", "exporter", "received_at", "host", "app", "time", "severity")

_RFC5424 = (
    r"(?s)^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) \S+ \S+ "
    r"(?:-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?$"
)
_HOSTNAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+"
_RFC3164 = (
    r"(?s)^<(?P<pri>\d{1,3})>"
    r"(?:(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2}) "
    r"(?:(?P<year>\d{4}) )?(?P<hms>\d\d:\d\d:\d\d)(?:\.\d+)?:? +"
    rf"(?:(?P<host>{_HOSTNAME}) +(?::\s+)?)?)?"
    r"(?:(?P<app>[A-Za-z0-9_./-]{1,48})(?:\[[^\]\s]*\])?: )?(?P<msg>.*)$"
)
_DAY_US = 86_400_000_000


def decode_messages(messages: Sequence[bytes]) -> pa.Array:
    """Raw messages → an Arrow string array (invalid UTF-8 replaced, see module doc)."""
    raw = pa.array(messages, pa.binary())
    try:
        return raw.cast(pa.string())
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return pa.array([m.decode("utf-8", "replace") for m in messages], pa.string())


def parse_headers(
    messages: Sequence[bytes] | pa.Array,
    *,
    exporter: pa.Array | Sequence[str],
    received_at: pa.Array | Sequence[float],
    timezone: str = "UTC",
) -> pa.Table:
    """Parse a batch of syslog messages (see the module doc) into a line table.

    ``received_at`` is unix seconds (float) per message; the result is in row order."""
    text = messages if isinstance(messages, pa.Array) else decode_messages(messages)
    received = pl.Series("received_at", received_at, dtype=pl.Float64)
    frame = pl.DataFrame(
        {
            "raw": pl.Series("raw", text, dtype=pl.String).str.strip_chars_end("\r\n\x00"),
            "exporter": pl.Series("exporter", exporter, dtype=pl.String),
            "received_at": (received * 1_000_000)
            .round()
            .cast(pl.Int64)
            .cast(pl.Datetime("us", "UTC")),
        }
    ).with_row_index("_row")
    is_5424 = pl.col("raw").str.contains(r"^<\d{1,3}>1 ")
    new = _parse_5424(frame.filter(is_5424))
    old = _parse_3164(frame.filter(~is_5424), timezone)
    out = pl.concat([new, old], how="vertical").sort("_row")
    pri = pl.col("pri").cast(pl.Int32, strict=False)
    out = out.select(
        pl.col("line"),
        pl.col("exporter"),
        pl.col("received_at"),
        pl.col("host"),
        pl.col("app"),
        pl.col("time"),
        pl.when(pri <= 191).then(pri % 8).cast(pl.UInt8).alias("severity"),
    )
    return out.to_arrow()


def _nil(column: str) -> pl.Expr:
    return pl.when(pl.col(column) != "-").then(pl.col(column)).alias(column)


def _parse_5424(frame: pl.DataFrame) -> pl.DataFrame:
    parts = frame.with_columns(pl.col("raw").str.extract_groups(_RFC5424).alias("h")).unnest("h")
    return parts.select(
        "_row",
        pl.when(pl.col("pri").is_null())
        .then(pl.col("raw"))
        .otherwise(pl.col("msg").fill_null("").str.strip_prefix("\ufeff"))
        .alias("line"),
        "exporter",
        "received_at",
        _nil("host"),
        _nil("app"),
        pl.col("ts")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_zone="UTC", time_unit="us")
        .alias("time"),
        "pri",
    )


def _parse_3164(frame: pl.DataFrame, timezone: str) -> pl.DataFrame:
    parts = frame.with_columns(pl.col("raw").str.extract_groups(_RFC3164).alias("h")).unnest("h")
    local_received = pl.col("received_at").dt.convert_time_zone(timezone)
    this_year = local_received.dt.year().cast(pl.String)

    def stamp(year: pl.Expr) -> pl.Expr:
        text = pl.concat_str([year, pl.col("mon"), pl.col("day"), pl.col("hms")], separator=" ")
        return (
            text.str.strptime(pl.Datetime("us"), "%Y %b %d %H:%M:%S", strict=False)
            .dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
        )

    guess = stamp(pl.coalesce(pl.col("year"), this_year))
    earlier = stamp((local_received.dt.year() - 1).cast(pl.String))
    too_late = pl.col("year").is_null() & (
        (guess.dt.epoch("us") - pl.col("received_at").dt.epoch("us")) > _DAY_US
    )
    return parts.select(
        "_row",
        pl.when(pl.col("pri").is_null()).then(pl.col("raw")).otherwise(pl.col("msg")).alias("line"),
        "exporter",
        "received_at",
        "host",
        "app",
        pl.when(too_late).then(earlier).otherwise(guess).alias("time"),
        "pri",
    )
