"""The ``asterisk`` line format: Asterisk call detail records from ``cdr_csv``
(``/var/log/asterisk/cdr-csv/Master.csv``), one record per call leg.

Column order, as ``cdr/cdr_csv.c`` (``build_csv_record``) writes it: accountcode, src,
dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end,
duration, billsec, disposition, amaflags, then uniqueid when ``loguniqueid=yes`` and
userfield when ``loguserfield=yes`` (both ``yes`` in the sample ``cdr.conf``), then
peeraccount, linkedid, sequence with ``newcdrcolumns=yes``. Strings are double-quoted
with inner quotes doubled; numbers are bare; a missing time (an unanswered call's
answer) is an empty unquoted field. Times are ``%Y-%m-%d %H:%M:%S`` in the PBX's local
time unless ``usegmtime=yes``: option ``timezone`` (default UTC) says which.

Records: ``start_time``, ``end_time``, ``duration_s`` = billsec (the billable, answered
time; the whole call's length is ``call_duration_s``), ``user_name`` = accountcode, or
src when the accountcode is empty, ``account_id`` = accountcode, ``service`` = ``voip``,
``session_id`` = uniqueid; extra fields ``caller`` (src), ``callee`` (dst),
``caller_id`` (clid), ``answer_time``, ``billsec``, ``call_duration_s``, ``disposition``
(ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION), ``channel``, ``dst_channel``.

Parsing is the generic CSV format's (one regular expression check and polars' CSV
reader per batch) with a fixed mapping; columns after the ones mapped are ignored.

Scheme snippet::

    sources:
      - name: pbx1-cdr
        type: file
        path: /var/log/asterisk/cdr-csv/Master.csv
        format: asterisk
        format_options: {timezone: Europe/Berlin}
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from netdistill.records.batch import FieldSpec
from netdistill.sources.generic.csv import CsvFormat, CsvOptions
from netdistill.sources.lines import Parsed

_TIME = "%Y-%m-%d %H:%M:%S"
# (target name, type, column index in Master.csv)
_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("accountcode", "string", 0),
    ("caller", "string", 1),
    ("callee", "string", 2),
    ("caller_id", "string", 4),
    ("channel", "string", 5),
    ("dst_channel", "string", 6),
    ("start_time", "timestamp", 9),
    ("answer_time", "timestamp", 10),
    ("end_time", "timestamp", 11),
    ("call_duration_s", "uint32", 12),
    ("billsec", "uint32", 13),
    ("disposition", "string", 14),
)
_UNIQUEID = ("session_id", "string", 16)


def _empty_to_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


class AsteriskOptions(BaseModel):
    """``format_options`` of the ``asterisk`` format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: zone of the PBX's clock (``usegmtime=yes`` in cdr.conf: UTC)
    timezone: str = "UTC"
    #: cdr.conf ``loguniqueid``: column 17 holds the call's unique id
    loguniqueid: bool = True


class AsteriskFormat:
    """Master.csv lines → one record per CDR; stateless."""

    fields: tuple[FieldSpec, ...] = (
        FieldSpec("caller", "string", "calling number (CDR src)"),
        FieldSpec("callee", "string", "called number (CDR dst)"),
        FieldSpec("caller_id", "string", "caller ID as shown (CDR clid)"),
        FieldSpec("answer_time", "timestamp", "when the call was answered"),
        FieldSpec("billsec", "uint32", "billable seconds: answer to hangup"),
        FieldSpec("call_duration_s", "uint32", "whole call: start to hangup"),
        FieldSpec("disposition", "string", "ANSWERED, NO ANSWER, BUSY, FAILED"),
        FieldSpec("channel", "string", "calling channel"),
        FieldSpec("dst_channel", "string", "called channel"),
    )

    def __init__(self, options: AsteriskOptions | None = None) -> None:
        self.options = options or AsteriskOptions()
        columns = _COLUMNS + ((_UNIQUEID,) if self.options.loguniqueid else ())
        mapping = [
            {"name": name, "type": type_, "from": index}
            | ({"format": _TIME} if type_ == "timestamp" else {})
            for name, type_, index in columns
        ]
        self._csv = CsvFormat(
            CsvOptions.model_validate({"fields": mapping, "timezone": self.options.timezone})
        )

    @property
    def ignored(self) -> int:
        return self._csv.ignored

    def parse(self, lines: pa.Table) -> Parsed:
        parsed = self._csv.parse(lines)
        return Parsed(self._finish(parsed.records), parsed.bad)

    def _finish(self, cdr: pa.Table) -> pa.Table:
        n = cdr.num_rows
        account = cdr.column("accountcode")
        account = _empty_to_null(account)
        billsec = cdr.column("billsec")
        out = cdr.drop_columns(["accountcode"])
        out = out.append_column(
            "user_name", pc.coalesce(account, _empty_to_null(cdr.column("caller")))
        )
        out = out.append_column("account_id", account)
        out = out.append_column("duration_s", pc.cast(billsec, pa.float64()))
        out = out.append_column("service", pa.repeat(pa.scalar("voip"), n))
        return out

    def flush(self) -> Parsed:
        return Parsed(self._finish(self._csv.flush().records))
