"""The ``postfix`` line format: Postfix mail logs → one record per delivered message.

Postfix logs one message over several lines of several daemons, tied by the queue id
(Postfix ``QSHAPE_README``, ``postconf(5)`` ``enable_long_queue_ids``)::

    postfix/smtpd[..]:   4F3A21C0A2: client=mail.x.org[192.0.2.7],
                         sasl_method=PLAIN, sasl_username=ann
    postfix/cleanup[..]: 4F3A21C0A2: message-id=<123@x.org>
    postfix/qmgr[..]:    4F3A21C0A2: from=<ann@x.org>, size=1234, nrcpt=2 (queue active)
    postfix/smtp[..]:    4F3A21C0A2: to=<b@y.org>, relay=mx.y.org[192.0.2.5]:25, delay=0.5,
                         delays=.., dsn=2.0.0, status=sent (250 ok)
    postfix/qmgr[..]:    4F3A21C0A2: removed

Lines come either whole, as syslog or Postfix's own ``maillog_file`` writes them
(``Nov 23 10:00:01 mx postfix/qmgr[123]: …`` or an RFC 3339 time), or as a message body
with the ``app``, ``host`` and ``time`` columns the syslog transport fills. Lines of
other programs, and Postfix lines this format does not need (``connect from``,
``NOQUEUE: reject``, warnings), are ignored; a line with no syslog header and no
``app`` column, or a time that does not parse, is bad.

Joining: each batch's lines become events (one regular expression per daemon kind, run
on that kind's rows only) that are merged, by queue id, with the messages held from
earlier batches in one polars group-by. A message is complete at qmgr's ``removed``
and becomes one record: ``start_time`` (its first line), ``end_time`` (its last
delivery), ``duration_s`` (the largest ``delay=``), ``bytes`` (``size=``), ``service``
``smtp``, ``src_ip``/``src_host`` (smtpd ``client=``), ``dst_ip``/``dst_host`` (the
last relay), ``session_id`` (queue id), ``user_name`` (``sasl_username=``, null for
unauthenticated mail), ``exporter`` (the logging host); extra fields ``mail_from``,
``mail_to`` (final recipients, comma-joined in log order), ``recipients``,
``mail_relay``, ``mail_status`` (``sent``, ``bounced``, ``partial`` when some were sent
and some bounced, ``expired`` when qmgr returned it after the queue lifetime) and
``message_id``. ``deferred`` attempts make no recipient and no record of their own.

State is bounded: a message not completed within ``horizon_s`` of log time (the newest
line seen), or beyond ``max_held`` messages, is released: it becomes a record if it has
final recipients, otherwise it is dropped and counted in ``released_incomplete``.
``flush`` releases everything held. A queue id reused after ``removed`` starts a new
message, unless both uses fall in one batch (rare with long queue ids).

RFC 3164 times have no year: it is taken from ``received_at`` (or the clock), and a
time more than a day ahead of it is put in the previous year. Times are local time of
``timezone`` (default UTC).

Scheme snippet::

    sources:
      - name: mx1-mail
        type: file
        path: /var/log/mail.log
        format: postfix
        format_options: {timezone: Europe/Berlin, horizon_s: 86400}
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from netdistill.records.batch import FieldSpec
from netdistill.sources.generic.mapping import convert
from netdistill.sources.lines import Parsed

_HEADER = (
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) (?P<hd_host>\S+) "
    r"(?P<hd_app>[^\s\[:]+)(?:\[\d+\])?: (?P<hd_msg>.*)$"
)
_QID = r"^(?P<qid>[0-9A-Za-z]{5,}): "
_SMTPD = _QID + (
    r"client=(?P<client_host>[^\[,\s]*)\[(?P<client_ip>[^\]]*)\]"
    r"(?:.*?sasl_username=(?P<sasl>[^,\s]+))?"
)
_CLEANUP = _QID + r"(?:resent-)?message-id=<?(?P<message_id>[^>\s]*)>?"
_QMGR = _QID + (
    r"(?:from=<(?P<mail_from>[^>]*)>, (?:size=(?P<size>\d+)|status=(?P<expired>expired))"
    r"|(?P<removed>removed)\s*$)"
)
_DELIVERY = _QID + (
    r"to=<(?P<rcpt>[^>]*)>,.*? relay=(?P<relay>[^,\s]*),.*? delay=(?P<delay>[\d.]+),"
    r".*? status=(?P<status>\w+)"
)
_RELAY = r"^(?P<relay_host>[^\[]*)(?:\[(?P<relay_ip>[^\]]*)\])?"
_DELIVERY_AGENTS = ["smtp", "lmtp", "local", "virtual", "pipe", "error", "discard", "relay"]
_FINAL = ["sent", "bounced"]
_BSD_TIME = "%Y %b %d %H:%M:%S"

_STATE_SCHEMA: dict[str, pl.DataType] = {
    "qid": pl.String(),
    "first_time": pl.Datetime("us", "UTC"),
    "last_time": pl.Datetime("us", "UTC"),
    "end_time": pl.Datetime("us", "UTC"),
    "host": pl.String(),
    "client_host": pl.String(),
    "client_ip": pl.String(),
    "sasl": pl.String(),
    "message_id": pl.String(),
    "mail_from": pl.String(),
    "size": pl.UInt64(),
    "rcpts": pl.List(pl.String()),
    "statuses": pl.List(pl.String()),
    "relay": pl.String(),
    "delay": pl.Float64(),
    "removed": pl.Boolean(),
    "expired": pl.Boolean(),
}


class PostfixOptions(BaseModel):
    """``format_options`` of the ``postfix`` format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: zone of the mail server's log times (RFC 3164 times carry none)
    timezone: str = "UTC"
    #: a message not completed this long after its last line (log time) is released
    horizon_s: float = Field(default=86400.0, gt=0)
    #: at most this many incomplete messages are held; the oldest are released first
    max_held: int = Field(default=200_000, gt=0)
    #: ``syslog_name`` prefix of the Postfix instance(s): ``postfix`` matches
    #: ``postfix/smtp`` and ``postfix-out/smtp``
    syslog_name: str = Field(default="postfix", pattern=r"^[\w.-]+$")


class PostfixFormat:
    """Postfix log lines → one record per message; keeps incomplete messages between
    batches. ``parse`` and ``flush`` are called from one thread."""

    fields: tuple[FieldSpec, ...] = (
        FieldSpec("mail_from", "string", "envelope sender"),
        FieldSpec("mail_to", "string", "final recipients, comma-joined"),
        FieldSpec("recipients", "uint32", "number of final recipients"),
        FieldSpec("mail_relay", "string", "relay of the last delivery (host[ip]:port)"),
        FieldSpec("mail_status", "string", "sent, bounced, partial or expired"),
        FieldSpec("message_id", "string", "Message-ID header"),
    )

    def __init__(
        self,
        options: PostfixOptions | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.options = options or PostfixOptions()
        self._now = now
        self._state = pl.DataFrame(schema=_STATE_SCHEMA)
        self._newest: datetime | None = None
        self._app = rf"^{self.options.syslog_name}[\w.-]*/(?P<agent>[\w-]+)$"
        #: lines recognised and not needed (other programs, Postfix chatter)
        self.ignored = 0
        #: lines that went into a message
        self.used = 0
        #: messages released at the horizon or by flush with no final recipient
        self.released_incomplete = 0

    @property
    def held(self) -> int:
        return self._state.height

    def parse(self, lines: pa.Table) -> Parsed:
        frame, bad = self._headers(lines)
        events = self._events(frame)
        self.used += events.height
        self.ignored += lines.num_rows - events.height - len(bad)
        if events.height:
            newest = events["first_time"].max()
            if isinstance(newest, datetime) and (self._newest is None or newest > self._newest):
                self._newest = newest
        merged = self._merge(events)
        done = merged.filter(pl.col("removed"))
        held = merged.filter(~pl.col("removed"))
        held, released = self._release(held)
        self._state = held
        return Parsed(self._records(pl.concat([done, released])), bad)

    def flush(self) -> Parsed:
        released, self._state = self._state, pl.DataFrame(schema=_STATE_SCHEMA)
        return Parsed(self._records(self._count_incomplete(released)))

    # -- lines → events ---------------------------------------------------------------

    def _headers(self, lines: pa.Table) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
        """Split each line into time, host, program and message."""
        df = pl.from_arrow(lines)
        assert isinstance(df, pl.DataFrame)
        n = df.height
        line = df["line"].cast(pl.String).str.strip_chars_end("\r\n")
        header = line.str.extract_groups(_HEADER).struct.unnest()
        columns = set(df.columns)
        app = header["hd_app"]
        host = header["hd_host"]
        msg = header["hd_msg"]
        ts = self._times(header["ts"], df["received_at"] if "received_at" in columns else None)
        if "app" in columns:
            # syslog transport: the line is the message body, the header is in columns
            from_columns = df["app"].is_not_null() & app.is_null()
            app = pl.select(pl.when(from_columns).then(df["app"]).otherwise(app)).to_series()
            msg = pl.select(pl.when(from_columns).then(line).otherwise(msg)).to_series()
            if "host" in columns:
                host = pl.select(pl.when(from_columns).then(df["host"]).otherwise(host)).to_series()
            if "time" in columns:
                column_time = df["time"].cast(pl.Datetime("us", "UTC"))
                ts = pl.select(pl.when(from_columns).then(column_time).otherwise(ts)).to_series()
        if "exporter" in columns:
            host = host.fill_null(df["exporter"].cast(pl.String))
        frame = pl.DataFrame(
            {"i": pl.int_range(n, eager=True), "app": app, "host": host, "msg": msg, "time": ts}
        )
        no_header = frame.filter(pl.col("app").is_null())["i"].to_list()
        no_time = frame.filter(pl.col("app").is_not_null() & pl.col("time").is_null())
        bad = [
            (i, "not a syslog line ('Mmm dd hh:mm:ss host program[pid]: message')")
            for i in no_header
        ]
        bad += [(i, "syslog time does not parse") for i in no_time["i"].to_list()]
        bad.sort()
        agent = frame["app"].str.extract(self._app, 1)
        frame = frame.with_columns(agent=agent).filter(
            pl.col("agent").is_not_null() & pl.col("time").is_not_null()
        )
        return frame, bad

    def _times(self, ts: pl.Series, received_at: pl.Series | None) -> pl.Series:
        tz = self.options.timezone
        reference = (
            received_at.cast(pl.Datetime("us", "UTC")).fill_null(self._now())
            if received_at is not None
            else pl.Series([self._now()], dtype=pl.Datetime("us", "UTC")).new_from_index(
                0, ts.len()
            )
        )
        # a log has few distinct header times (one per second at most): each distinct
        # (time, year) pair is parsed once and joined back to the lines
        rows = pl.DataFrame({"ts": ts, "year": reference.dt.year(), "reference": reference})
        distinct = rows.select("ts", "year").unique()
        bsd = distinct["ts"].str.replace("  ", " ", literal=True)
        year = distinct["year"]
        parsed = distinct.with_columns(
            iso=convert(distinct["ts"], "timestamp", "iso8601", tz),
            this_year=convert(year.cast(pl.String) + " " + bsd, "timestamp", _BSD_TIME, tz),
            last_year=convert((year - 1).cast(pl.String) + " " + bsd, "timestamp", _BSD_TIME, tz),
        )
        joined = rows.join(
            parsed, on=["ts", "year"], how="left", nulls_equal=True, maintain_order="left"
        )
        ahead = pl.col("this_year") > pl.col("reference") + pl.duration(days=1)
        bsd_time = pl.when(ahead).then(pl.col("last_year")).otherwise(pl.col("this_year"))
        return joined.select(pl.col("iso").fill_null(bsd_time))["iso"]

    def _events(self, frame: pl.DataFrame) -> pl.DataFrame:
        """One row per useful line, in the state's columns (lists of one recipient)."""
        parts = []
        kinds = (
            (pl.col("agent") == "smtpd", _SMTPD),
            (pl.col("agent") == "cleanup", _CLEANUP),
            (pl.col("agent") == "qmgr", _QMGR),
            (pl.col("agent").is_in(_DELIVERY_AGENTS), _DELIVERY),
        )
        for selector, pattern in kinds:
            rows = frame.filter(selector)
            groups = rows["msg"].str.extract_groups(pattern).struct.unnest()
            part = pl.concat([rows.select("time", "host"), groups], how="horizontal")
            parts.append(part.filter(pl.col("qid").is_not_null()))
        events = pl.concat(parts, how="diagonal_relaxed")
        for name in (
            "client_host",
            "client_ip",
            "sasl",
            "message_id",
            "mail_from",
            "size",
            "expired",
            "removed",
            "rcpt",
            "relay",
            "delay",
            "status",
        ):
            if name not in events.columns:
                events = events.with_columns(pl.lit(None, dtype=pl.String).alias(name))
        final = pl.col("status").is_in(_FINAL).fill_null(False)
        one = pl.when(final).then(pl.concat_list(pl.col("rcpt")))
        return events.select(
            "qid",
            first_time=pl.col("time"),
            last_time=pl.col("time"),
            end_time=pl.when(final).then(pl.col("time")),
            host="host",
            client_host="client_host",
            client_ip="client_ip",
            sasl="sasl",
            message_id="message_id",
            mail_from="mail_from",
            size=pl.col("size").cast(pl.UInt64, strict=False),
            rcpts=one.otherwise(pl.lit([], dtype=pl.List(pl.String))),
            statuses=pl.when(final)
            .then(pl.concat_list(pl.col("status")))
            .otherwise(pl.lit([], dtype=pl.List(pl.String))),
            relay=pl.when(final).then(pl.col("relay")),
            delay=pl.when(final).then(pl.col("delay").cast(pl.Float64, strict=False)),
            removed=pl.col("removed").is_not_null(),
            expired=pl.col("expired").is_not_null(),
        ).cast(_STATE_SCHEMA)  # type: ignore[arg-type]

    # -- events → messages → records ---------------------------------------------------

    def _merge(self, events: pl.DataFrame) -> pl.DataFrame:
        first = [
            pl.col(c).drop_nulls().first()
            for c in ("host", "client_host", "client_ip", "sasl", "message_id", "mail_from", "size")
        ]
        return (
            pl.concat([self._state, events])
            .group_by("qid", maintain_order=True)
            .agg(
                pl.col("first_time").min(),
                pl.col("last_time").max(),
                pl.col("end_time").max(),
                *first,
                pl.col("rcpts").list.explode(keep_nulls=False, empty_as_null=False),
                pl.col("statuses").list.explode(keep_nulls=False, empty_as_null=False),
                pl.col("relay").drop_nulls().last(),
                pl.col("delay").max(),
                pl.col("removed").any(),
                pl.col("expired").any(),
            )
            .select(list(_STATE_SCHEMA))
        )

    def _release(self, held: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Messages past the horizon, and the oldest beyond ``max_held``."""
        if self._newest is None or held.height == 0:
            return held, held.clear()
        limit = self._newest.timestamp() - self.options.horizon_s
        horizon = pl.lit(datetime.fromtimestamp(limit, UTC)).cast(pl.Datetime("us", "UTC"))
        old = pl.col("last_time") < horizon
        released = held.filter(old)
        held = held.filter(~old)
        excess = held.height - self.options.max_held
        if excess > 0:
            held = held.sort("last_time", maintain_order=True)
            released = pl.concat([released, held.head(excess)])
            held = held.tail(self.options.max_held)
        return held, self._count_incomplete(released)

    def _count_incomplete(self, released: pl.DataFrame) -> pl.DataFrame:
        keep = (pl.col("rcpts").list.len() > 0) | pl.col("expired")
        self.released_incomplete += released.filter(~keep).height
        return released.filter(keep)

    def _records(self, done: pl.DataFrame) -> pa.Table:
        done = done.filter((pl.col("rcpts").list.len() > 0) | pl.col("expired"))
        statuses = pl.col("statuses")
        relay = done["relay"].str.extract_groups(_RELAY).struct.unnest()
        relay_host = relay["relay_host"]
        relay_host = pl.select(
            pl.when(relay_host.is_in(["none", "local", ""]).not_()).then(relay_host)
        ).to_series()
        out = done.select(
            start_time="first_time",
            end_time=pl.col("end_time").fill_null(pl.col("last_time")),
            duration_s="delay",
            bytes="size",
            service=pl.lit("smtp"),
            src_host=pl.when(pl.col("client_host") != "unknown").then(pl.col("client_host")),
            session_id="qid",
            user_name="sasl",
            exporter="host",
            mail_from="mail_from",
            mail_to=pl.col("rcpts").list.join(","),
            recipients=pl.col("rcpts").list.len().cast(pl.UInt32),
            mail_relay="relay",
            mail_status=pl.when(pl.col("rcpts").list.len() == 0)
            .then(pl.lit("expired"))
            .when(statuses.list.eval(pl.element() == "sent").list.all())
            .then(pl.lit("sent"))
            .when(statuses.list.eval(pl.element() == "bounced").list.all())
            .then(pl.lit("bounced"))
            .otherwise(pl.lit("partial")),
            message_id="message_id",
        ).with_columns(
            src_ip=convert(done["client_ip"], "ip", None, "UTC"),
            dst_ip=convert(relay["relay_ip"], "ip", None, "UTC"),
            dst_host=relay_host,
        )
        return out.to_arrow()
