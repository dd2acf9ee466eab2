"""Squid's native ``access.log`` format (``format: squid``).

Squid's ``logformat squid`` is (squid-cache.org/Doc/config/logformat)::

    %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
  1700000000.123    456 192.0.2.7 TCP_MISS/200 1234 GET http://a.example/ - HIER_DIRECT/192.0.2.1 -

time of the reply (unix seconds with ms), elapsed ms, client address, cache result /
HTTP status, bytes sent to the client, method, URL, user name (ident or proxy auth,
``-`` when none), hierarchy code / the peer or server address, content type.

A record per line: ``end_time`` = the time, ``start_time`` = time − elapsed, ``src_ip``
the client (a host name, with ``log_fqdn on``, goes to ``src_host``), ``dst_ip`` the
server or peer when it is an address (``dst_host`` when it is a name), ``bytes`` the
reply size, ``service`` ``https`` for ``CONNECT`` and ``https://`` URLs (``ftp`` for
``ftp://``), else ``http``.

Lines without a request — a connection closed before its headers, a request Squid
could not parse, load-balancer health checks — carry the method ``-`` (Squid 4+) or
``NONE`` (older) and a pseudo-URL ``error:<name>``
(``NONE_NONE/000 0 - error:transaction-end-before-headers - HIER_NONE/- -``). Such a
line is still a record (its bytes, Squid's error page, did go to the client), but not an
HTTP transaction: ``service`` is ``squid-internal``, ``http_method`` null for ``-`` and
``NONE`` (what else the client sent, ``GARBAGE``, is kept), ``url`` null and
``squid_error`` the name after ``error:``. The status ``000`` (no reply was sent) is
null in ``http_status``, on every line.

The whole batch is parsed with one Polars ``str.split`` on spaces: the elapsed time is
padded with spaces, so a line splits into the time, some empty strings and then the
other nine fields, which are taken counted from the end. A line must hold exactly ten
non-empty fields, each of the right kind, or it is set aside with the reason.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from netdistill.records.batch import FieldSpec
from netdistill.sources.lines import Parsed
from netdistill.sources.logs.columns import (
    UTC_US,
    dash_null,
    divided,
    exporter_column,
    first_reason,
    host_or_null,
    ip_or_null,
    lines_frame,
    split_good_bad,
)

HTTP_FIELDS = (
    FieldSpec("http_method", "string", "HTTP request method (GET, CONNECT …)"),
    FieldSpec("http_status", "uint16", "HTTP status code of the reply (null when none was sent)"),
)

#: ``service`` of a line without a usable request (see the module docstring)
SQUID_INTERNAL = "squid-internal"

#: the latest time a log line may carry (2100-01-01): beyond is a broken line
_MAX_UNIX_S = 4_102_444_800


class SquidFormat:
    """Parses Squid native access log lines. Stateless: ``flush`` has nothing held."""

    fields: tuple[FieldSpec, ...] = (
        *HTTP_FIELDS,
        FieldSpec("cache_result", "string", "Squid result code (TCP_MISS, TCP_HIT …)"),
        FieldSpec("content_type", "string", "MIME type of the reply"),
        FieldSpec(
            "squid_error",
            "string",
            "Squid's error for a transaction without a usable request "
            "(transaction-end-before-headers, invalid-request …)",
        ),
    )

    def parse(self, lines: pa.Table) -> Parsed:
        frame = lines_frame(lines)
        tok = pl.col("_tok")

        def field(i: int) -> pl.Expr:
            return tok.list.get(i, null_on_oob=True)

        frame = frame.with_columns(_tok=pl.col("line").str.split(" "))
        frame = frame.with_columns(
            _n=tok.list.len() - tok.list.count_matches(""),
            _time=field(0).cast(pl.Float64, strict=False),
            _elapsed=field(-9).cast(pl.Int64, strict=False),
            _client=field(-8),
            _action=field(-7).str.split_exact("/", 1),
            _size=field(-6).cast(pl.UInt64, strict=False),
            http_method=field(-5),
            url=field(-4),
            _user=field(-3),
            _hierarchy=field(-2).str.split_exact("/", 1),
            content_type=dash_null(field(-1)),
        ).drop("_tok")
        frame = frame.with_columns(
            cache_result=pl.col("_action").struct.field("field_0"),
            _status_text=pl.col("_action").struct.field("field_1"),
            _peer=pl.col("_hierarchy").struct.field("field_1"),
        ).with_columns(http_status=pl.col("_status_text").cast(pl.UInt16, strict=False))
        frame = frame.with_columns(
            _reason=first_reason(
                [
                    (pl.col("_n") != 10, "expected 10 space-separated fields"),
                    (
                        ~((pl.col("_time") >= 0) & (pl.col("_time") < _MAX_UNIX_S)),
                        "time is not unix seconds",
                    ),
                    (
                        ~((pl.col("_elapsed") >= 0) & (pl.col("_elapsed") < 10**10)),
                        "elapsed time is not a number of milliseconds",
                    ),
                    (
                        pl.col("http_status").is_null()
                        | ~pl.col("_status_text").str.contains(r"^\d{3}$"),
                        "result code is not RESULT/STATUS",
                    ),
                    (pl.col("_size").is_null(), "size is not a number of bytes"),
                ]
            )
        )
        end_us = (pl.col("_time") * 1_000_000).round().cast(pl.Int64)
        start_us = end_us - pl.col("_elapsed") * 1000
        raw_url = pl.col("url")
        raw_method = pl.col("http_method")
        # no request: Squid logs "-" (or, before Squid 4, NONE) as the method and an
        # error:<name> pseudo-URL; such a line is Squid's own, not an HTTP transaction
        method = pl.when(raw_method.is_in(["-", "NONE"])).then(None).otherwise(raw_method)
        error = raw_url.str.strip_prefix("error:")
        internal = method.is_null() | raw_url.str.starts_with("error:")
        url = pl.when(internal).then(None).otherwise(raw_url)
        columns = [
            start_us.cast(UTC_US).alias("start_time"),
            end_us.cast(UTC_US).alias("end_time"),
            divided(pl.col("_elapsed"), 1000.0).alias("duration_s"),
            ip_or_null(pl.col("_client")).alias("src_ip"),
            host_or_null(pl.col("_client")).alias("src_host"),
            ip_or_null(pl.col("_peer")).alias("dst_ip"),
            host_or_null(pl.col("_peer")).alias("dst_host"),
            dash_null(pl.col("_user")).alias("user_name"),
            url.alias("url"),
            pl.col("_size").alias("bytes"),
            pl.when(internal)
            .then(pl.lit(SQUID_INTERNAL))
            .when((method == "CONNECT") | url.str.starts_with("https://"))
            .then(pl.lit("https"))
            .when(url.str.starts_with("ftp://"))
            .then(pl.lit("ftp"))
            .otherwise(pl.lit("http"))
            .alias("service"),
            method.alias("http_method"),
            pl.when(pl.col("http_status") == 0)
            .then(None)
            .otherwise(pl.col("http_status"))
            .alias("http_status"),
            pl.col("cache_result"),
            pl.col("content_type"),
            pl.when(raw_url.str.starts_with("error:")).then(error).alias("squid_error"),
            *exporter_column(frame),
        ]
        return split_good_bad(frame, columns)

    def flush(self) -> Parsed:
        return Parsed(pa.table({}))
