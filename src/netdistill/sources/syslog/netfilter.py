"""Linux netfilter ``LOG`` target lines (format ``netfilter``): one record per logged packet.

The kernel writes (``net/netfilter/nf_log_syslog.c``, IPv4 and IPv6)::

    [PREFIX]IN=eth0 OUT= [PHYSIN=.. PHYSOUT=..] [MAC=..] SRC=10.0.0.1 DST=10.0.0.2 LEN=60
    TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=51515 DPT=80 WINDOW=29200
    RES=0x00 SYN URGP=0

(IPv6: ``LEN= TC= HOPLIMIT= FLOWLBL=`` after DST; ICMP: ``TYPE= CODE=`` after PROTO.)
The line may carry anything before the ``--log-prefix`` text (a ``dmesg`` time stamp
``[  12.345678]`` is removed), so lines from syslog and from ``kern.log`` files both work.

Record: ``src_ip``, ``dst_ip``, ``src_port``, ``dst_port`` (TCP/UDP/SCTP/UDPLITE),
``protocol`` (IANA number; names mapped), ``bytes`` = ``LEN`` (the IP packet's length),
``packets`` = 1, ``tos`` (IPv4 ``TOS``, IPv6 ``TC``), ``tcp_flags`` (CWR 0x80 … FIN
0x01 from the flag words), ``start_time`` = ``end_time`` = the line's time. Interface
*names* go to ``in_interface``/``out_interface`` (the standard ``input_if``/``output_if``
are SNMP indexes, which the kernel line does not have); the prefix to ``log_prefix``;
ICMP type and code to ``icmp_type``/``icmp_code``.
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

LOG_PREFIX = FieldSpec("log_prefix", "string", "netfilter --log-prefix text")

_ADDRESSES = (
    r"^IN=(?P<in_if>\S*) OUT=(?P<out_if>\S*) (?:PHYSIN=\S* )?(?:PHYSOUT=\S* )?"
    r"(?:MAC=\S* )?(?:MACSRC=\S+ MACDST=\S+ MACPROTO=\S+ )?"
    r"SRC=(?P<src>\S+) DST=(?P<dst>\S+) LEN=(?P<len>\d+) (?:TOS=0x(?P<tos>[0-9A-Fa-f]{2}) "
    r"|TC=(?P<tc>\d+) )?"
)
_PROTOCOL = (
    r" PROTO=(?P<proto>\S+)"
    r"(?: SPT=(?P<spt>\d+) DPT=(?P<dpt>\d+)| TYPE=(?P<type>\d+) CODE=(?P<code>\d+))?"
)
_FLAGS = r" RES=0x[0-9A-Fa-f]{2} (?P<flags>(?:[A-Z]+ )*)URGP="
_FLAG_BITS = {"CWR ": 0x80, "ECE ": 0x40, "URG ": 0x20, "ACK ": 0x10, "PSH ": 0x08,
              "RST ": 0x04, "SYN ": 0x02, "FIN ": 0x01}  # fmt: skip


class NetfilterFormat:
    """Stateless: each line is one packet."""

    fields: tuple[FieldSpec, ...] = (IN_INTERFACE, OUT_INTERFACE, LOG_PREFIX, ICMP_TYPE, ICMP_CODE)

    def parse(self, lines: pa.Table) -> Parsed:
        frame = lines_frame(lines)
        start = pl.col("line").str.find(r"(?:^|\s)IN=")
        frame = frame.with_columns(
            _start=start,
            _rest=pl.col("line").str.slice(start).str.strip_chars_start(),
        )
        frame = frame.with_columns(
            pl.col("_rest").str.extract_groups(_ADDRESSES).alias("_a"),
            pl.col("_rest").str.extract_groups(_PROTOCOL).alias("_p"),
            pl.col("_rest").str.extract(_FLAGS, 1).alias("flags"),
        ).unnest("_a", "_p")
        frame = frame.with_columns(
            canonical_ip(pl.col("src")).alias("src_ip"),
            canonical_ip(pl.col("dst")).alias("dst_ip"),
        )
        reason = (
            pl.when(pl.col("_start").is_null())
            .then(pl.lit("netfilter: no IN= field"))
            .when(pl.col("src").is_null())
            .then(pl.lit("netfilter: no SRC=/DST=/LEN= after IN= and OUT="))
            .when(pl.col("src_ip").is_null() | pl.col("dst_ip").is_null())
            .then(pl.lit("netfilter: SRC or DST is not an IP address"))
            .when(pl.col("len").cast(pl.UInt64, strict=False).is_null())
            .then(pl.lit("netfilter: LEN out of range"))
        )
        frame = frame.with_columns(reason.alias("_bad"))
        good = frame.filter(pl.col("_bad").is_null())
        bad = frame.filter(pl.col("_bad").is_not_null()).select("_row", "_bad")
        time = event_time(good)
        prefix = (
            pl.col("line")
            .str.slice(0, pl.col("_start"))
            .str.replace(r"^\s*\[\s*\d+\.\d+\]", "")
            .str.strip_chars()
        )
        flags = pl.col("flags")
        tcp_flags = pl.sum_horizontal(
            [
                flags.str.contains(word, literal=True).cast(pl.UInt16) * bit
                for word, bit in _FLAG_BITS.items()
            ]
        ).cast(pl.UInt16)
        has_ports = pl.col("spt").is_not_null()
        records = good.select(
            time.alias("start_time"),
            time.alias("end_time"),
            "src_ip",
            "dst_ip",
            uint(pl.col("spt"), pl.UInt16()).alias("src_port"),
            uint(pl.col("dpt"), pl.UInt16()).alias("dst_port"),
            protocol_number(pl.col("proto")).alias("protocol"),
            pl.col("len").cast(pl.UInt64).alias("bytes"),
            pl.lit(1, dtype=pl.UInt64).alias("packets"),
            pl.coalesce(
                pl.col("tos").str.to_integer(base=16, strict=False), pl.col("tc").cast(pl.Int64)
            )
            .cast(pl.UInt8, strict=False)
            .alias("tos"),
            pl.when(flags.is_not_null()).then(tcp_flags).alias("tcp_flags"),
            pl.when(pl.col("in_if") != "").then(pl.col("in_if")).alias("in_interface"),
            pl.when(pl.col("out_if") != "").then(pl.col("out_if")).alias("out_interface"),
            pl.when(prefix != "").then(prefix).alias("log_prefix"),
            pl.when(~has_ports).then(uint(pl.col("type"), pl.UInt8())).alias("icmp_type"),
            pl.when(~has_ports).then(uint(pl.col("code"), pl.UInt8())).alias("icmp_code"),
            *passthrough(good),
        )
        return Parsed(records.to_arrow(), bad_rows(bad))

    def flush(self) -> Parsed:
        return Parsed(pa.table({}))
