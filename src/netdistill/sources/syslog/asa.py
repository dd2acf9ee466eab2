"""Cisco ASA (and FTD) connection teardown messages (format ``asa``): one record per
connection, written when the ASA removes it.

Message formats (Cisco ASA Series Syslog Messages, 302014/302016/302021)::

    %ASA-6-302014: Teardown TCP connection ID for IF:ADDR/PORT [(USER)] to IF:ADDR/PORT
        [(USER)] duration H:MM:SS bytes N [REASON] [(USER)]
    %ASA-6-302016: Teardown UDP connection ID for IF:ADDR/PORT ... duration H:MM:SS bytes N
    %ASA-6-302021: Teardown ICMP connection for faddr ADDR/ID [(USER)] gaddr ADDR/ID
        laddr ADDR/ID [(USER)] [type T code C]

**Which side is ``src``.** A teardown message does not say who opened the connection
(only the 302013/302015 *Built inbound/outbound* message does): the ASA always names the
lower-security (outside) side first, after ``for``, whichever side initiated. netdistill
keeps the message's order: ``src_*`` is the side named first (``for IF:...``, or
``faddr``), ``dst_*`` the side named second (``to IF:...``, or ``laddr``, the real local
address). For an outbound connection (an inside client to an outside server) the client
is therefore ``dst_ip``. The interface names of the two sides go to ``in_interface``
(first side) and ``out_interface`` (second side), so reports can tell the direction by
interface.

Record: ``end_time`` = the message's time, ``duration_s`` from ``duration``, ``start_time``
= end − duration, ``bytes`` (both directions together, as the ASA counts), ``protocol``
(6, 17, 1; 58 for an ICMP connection between IPv6 addresses), ``session_id`` = the
connection id, ``teardown_reason`` (``TCP FINs``, ``SYN Timeout`` …), ``asa_message_id``
(``302014``). 302021 has no byte count or duration: those stay empty. Other ASA messages
(302013 *Built*, 106023 *Deny* …) are recognised and skipped: neither records nor bad.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from netdistill.records.batch import FieldSpec
from netdistill.sources.lines import Parsed
from netdistill.sources.syslog.columns import (
    ICMP_CODE,
    ICMP_TYPE,
    IN_INTERFACE,
    OUT_INTERFACE,
    bad_rows,
    canonical_ip,
    event_time,
    lines_frame,
    passthrough,
    protocol_number,
    uint,
)

TEARDOWN_REASON = FieldSpec("teardown_reason", "string", "why the firewall removed the connection")
ASA_MESSAGE_ID = FieldSpec("asa_message_id", "string", "Cisco ASA syslog message id (302014 …)")

_TAG = r"%(?:ASA|FTD|PIX|FWSM)-\d-(?P<id>\d{6}): ?"
_USER = r"(?: \([^)]*\))?"
_CONNECTION = (
    r"%(?:ASA|FTD|PIX|FWSM)-\d-30201[46]: Teardown (?P<proto>TCP|UDP) connection (?P<conn>\d+) "
    rf"for (?P<a_if>[^:]+):(?P<a_ip>[^/\s]+)/(?P<a_port>\d+){_USER} "
    rf"to (?P<b_if>[^:]+):(?P<b_ip>[^/\s]+)/(?P<b_port>\d+){_USER} "
    r"duration (?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d) bytes (?P<bytes>\d+)(?: (?P<reason>.*))?$"
)
_ICMP = (
    r"%(?:ASA|FTD|PIX|FWSM)-\d-302021: Teardown ICMP connection "
    rf"for faddr (?P<f_ip>[^/\s]+)/\d+{_USER} gaddr [^/\s]+/\d+ "
    rf"laddr (?P<l_ip>[^/\s]+)/\d+{_USER}(?: type (?P<type>\d+) code (?P<code>\d+))?"
)
_WANTED = ("302014", "302016", "302021")


class AsaFormat:
    """Stateless: each teardown message is one connection."""

    fields: tuple[FieldSpec, ...] = (
        IN_INTERFACE,
        OUT_INTERFACE,
        TEARDOWN_REASON,
        ASA_MESSAGE_ID,
        ICMP_TYPE,
        ICMP_CODE,
    )

    def parse(self, lines: pa.Table) -> Parsed:
        frame = lines_frame(lines)
        frame = frame.with_columns(
            pl.col("line").str.strip_chars_end().alias("line"),
        ).with_columns(
            pl.col("line").str.extract(_TAG, 1).alias("message_id"),
            pl.col("line").str.extract_groups(_CONNECTION).alias("_c"),
            pl.col("line").str.extract_groups(_ICMP).alias("_i"),
        )
        frame = frame.unnest("_c", "_i")
        icmp = pl.col("f_ip").is_not_null()
        frame = frame.with_columns(
            canonical_ip(pl.when(icmp).then(pl.col("f_ip")).otherwise(pl.col("a_ip"))).alias(
                "src_ip"
            ),
            canonical_ip(pl.when(icmp).then(pl.col("l_ip")).otherwise(pl.col("b_ip"))).alias(
                "dst_ip"
            ),
        )
        wanted = pl.col("message_id").is_in(_WANTED)
        parsed = pl.col("conn").is_not_null() | icmp
        reason = (
            pl.when(pl.col("message_id").is_null())
            .then(pl.lit("asa: no %ASA-n-NNNNNN: message tag"))
            .when(wanted & ~parsed)
            .then(pl.lit("asa: teardown message not in the documented form"))
            .when(wanted & (pl.col("src_ip").is_null() | pl.col("dst_ip").is_null()))
            .then(pl.lit("asa: address is not an IP address"))
        )
        frame = frame.with_columns(reason.alias("_bad"))
        bad = frame.filter(pl.col("_bad").is_not_null()).select("_row", "_bad")
        good = frame.filter(pl.col("_bad").is_null() & wanted)
        end = event_time(good)
        seconds = (
            pl.col("h").cast(pl.Int64) * 3600
            + pl.col("m").cast(pl.Int64) * 60
            + pl.col("s").cast(pl.Int64)
        )
        icmp_protocol = (
            pl.when(pl.col("src_ip").str.contains(":", literal=True)).then(58).otherwise(1)
        )
        reason_text = pl.col("reason").str.replace(r"\s*\([^()]*\)$", "").str.strip_chars()
        records = good.select(
            pl.when(seconds.is_not_null())
            .then(end - pl.duration(seconds=seconds))
            .otherwise(end)
            .alias("start_time"),
            end.alias("end_time"),
            seconds.cast(pl.Float64).alias("duration_s"),
            "src_ip",
            "dst_ip",
            uint(pl.col("a_port"), pl.UInt16()).alias("src_port"),
            uint(pl.col("b_port"), pl.UInt16()).alias("dst_port"),
            pl.when(icmp)
            .then(icmp_protocol)
            .otherwise(protocol_number(pl.col("proto")))
            .cast(pl.UInt8)
            .alias("protocol"),
            uint(pl.col("bytes"), pl.UInt64()).alias("bytes"),
            pl.col("conn").alias("session_id"),
            pl.col("a_if").alias("in_interface"),
            pl.col("b_if").alias("out_interface"),
            pl.when(reason_text != "").then(reason_text).alias("teardown_reason"),
            pl.col("message_id").alias("asa_message_id"),
            uint(pl.col("type"), pl.UInt8()).alias("icmp_type"),
            uint(pl.col("code"), pl.UInt8()).alias("icmp_code"),
            *passthrough(good),
        )
        return Parsed(records.to_arrow(), bad_rows(bad))

    def flush(self) -> Parsed:
        return Parsed(pa.table({}))
