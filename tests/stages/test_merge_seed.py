"""The seed's merge example (seed 001 §E, Fig. 5) end to end: a squid access.log (the
proxy: source = workstation, destination = the firewall) and CEF lines of the firewall
(source = the proxy, destination = the site), each parsed by the real line formats,
enhanced by two procedures and committed; then the merge stage's rounds.

Expected records are computed here by hand from the session list, not by the code
under test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from netdistill.delivery.pipeline import Pipeline
from netdistill.enhance.plan import build_enhancer
from netdistill.scheme.load import parse_scheme
from netdistill.sources.logs.listener import FileSource
from netdistill.stages.base import StageContext
from netdistill.stages.runner import StageRunner
from netdistill.store.duckdb import DuckDBStore

T0 = 1_700_000_000.0
PROXY = "192.0.2.10"  # what the firewall sees as the source of every web session
FIREWALL = "192.0.2.1"  # what the proxy sees as the destination


@dataclass(frozen=True)
class Session:
    workstation: str
    site: str
    url: str
    start: float  # true start (proxy clock)
    proxy_bytes: int | None  # None: the proxy did not see it
    firewall_bytes: int | None  # None: the firewall did not see it
    user: str | None = None  # only the firewall knows users (suser)


SESSIONS = [
    Session("10.1.0.1", "198.51.100.1", "http://a.example/", T0 + 0, 1100, 1200, "alice"),
    Session("10.1.0.2", "198.51.100.2", "http://b.example/x", T0 + 1, 2100, 2200),
    Session("10.1.0.3", "198.51.100.3", "http://c.example/", T0 + 2, 3100, 3200, "carol"),
    Session("10.1.0.4", "198.51.100.4", "http://d.example/y?q=1", T0 + 3, 4100, 4200),
    Session("10.1.0.5", "198.51.100.5", "http://e.example/", T0 + 4, 5100, 5200),
    Session("10.1.0.6", "198.51.100.6", "http://f.example/", T0 + 5, 6100, 6200),
    # the same URL again 10 minutes later from another workstation: a separate session
    Session("10.1.0.7", "198.51.100.1", "http://a.example/", T0 + 600, 7100, 7200, "gina"),
    Session("10.1.0.8", "198.51.100.2", "http://b.example/x", T0 + 601, 8100, 8200),
    # seen by one side only
    Session("10.1.0.9", "198.51.100.9", "http://g.example/", T0 + 7, 9100, None),
    Session("10.1.0.10", "198.51.100.10", "http://h.example/", T0 + 8, 10100, None),
    Session("10.1.0.11", "198.51.100.11", "http://a.example/", T0 + 300, 11100, None),
    Session("10.1.0.12", "198.51.100.12", "http://i.example/", T0 + 9, None, 12200, "ivan"),
    Session("10.1.0.13", "198.51.100.13", "http://c.example/", T0 + 900, None, 13200),
]
BOTH = [s for s in SESSIONS if s.proxy_bytes is not None and s.firewall_bytes is not None]
PROXY_ONLY = [s for s in SESSIONS if s.firewall_bytes is None]
FIREWALL_ONLY = [s for s in SESSIONS if s.proxy_bytes is None]
ELAPSED_MS = 700  # squid logs the end; start = end − elapsed
FW_LAG_S = 0.3  # the firewall logs the session 0.3 s after the proxy (same clock)


def squid_log(path: Path) -> Path:
    lines = []
    for s in SESSIONS:
        if s.proxy_bytes is None:
            continue
        end = s.start + ELAPSED_MS / 1000
        lines.append(
            f"{end:.3f} {ELAPSED_MS:6d} {s.workstation} TCP_MISS/200 {s.proxy_bytes} GET "
            f"{s.url} - HIER_DIRECT/{FIREWALL} text/html"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def cef_log(path: Path, skew_s: float = 0.0) -> Path:
    lines = []
    for i, s in enumerate(SESSIONS):
        if s.firewall_bytes is None:
            continue
        start_ms = round((s.start + FW_LAG_S + skew_s) * 1000)
        user = f" suser={s.user}" if s.user else ""
        request = s.url.replace("\\", "\\\\").replace("=", "\\=")  # CEF value escapes
        lines.append(
            f"CEF:0|Acme|Firewall|1.0|100|allowed|3|src={PROXY} spt={40000 + i} "
            f"dst={s.site} dpt=80 proto=TCP request={request} start={start_ms} "
            f"end={start_ms + ELAPSED_MS} "
            f"out={s.firewall_bytes}{user}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


SCHEME = """\
sources:
  - {{name: proxy, type: file, paths: ["{proxy}"], format: squid}}
  - {{name: firewall, type: file, paths: ["{firewall}"], format: cef}}
procedures:
  - {{name: flow-one, trigger: proxy, fields: {{}}}}
  - {{name: flow-two, trigger: firewall, fields: {{}}}}
stages:
  - name: web-sessions
    type: merge
    procedures: [flow-one, flow-two]
    match: [url]
    tolerance: {{field: start_time, seconds: 2, adaptive: {adaptive}}}
    winners: {{src_ip: flow-one, dst_ip: flow-two{winners}}}
    horizon_s: 60{extra}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 1000

    def __call__(self) -> float:
        return self.now


class Site:
    """A store, the two file sources with their procedures, and the stage runner."""

    def __init__(
        self,
        tmp: Path,
        *,
        skew_s: float = 0.0,
        adaptive: bool = False,
        winners: str = "",
        extra: str = "",
    ) -> None:
        self.tmp = tmp
        self.clock = Clock()
        proxy, firewall = squid_log(tmp / "access.log"), cef_log(tmp / "fw.log", skew_s)
        text = SCHEME.format(
            proxy=proxy,
            firewall=firewall,
            adaptive=str(adaptive).lower(),
            winners=winners,
            extra=extra,
        )
        self.scheme = parse_scheme(text)
        self.store = DuckDBStore(tmp / "data" / "store.duckdb", clock=self.clock)
        sources = {s.name: FileSource(s) for s in self.scheme.sources}
        for source in sources.values():
            from netdistill.store import ensure_fields

            ensure_fields(self.store, source.fields, source=source.name)
        enhancer = build_enhancer(self.scheme, self.store)
        self.sources = sources
        self.paths = {"proxy": proxy, "firewall": firewall}
        self.pipeline = Pipeline(list(sources.values()), self.store, process=enhancer)
        self.runner = self.new_runner()

    def new_runner(self) -> StageRunner:
        context = StageContext(self.store, self.scheme, self.tmp / "data", clock=self.clock)
        return StageRunner(context)

    def feed(self, name: str) -> int:
        source = self.sources[name]
        n = 0
        for result, _ in source.read_whole_file(self.paths[name]):
            assert not result.quarantined, result.quarantined
            n += self.pipeline.handle(source, result)
        return n

    def round(self) -> dict[str, int]:
        counts = self.runner.run_once()
        assert not self.runner.errors, self.runner.errors
        return counts["web-sessions"]

    def rows(self) -> list[dict[str, Any]]:
        return self.store.query(
            "SELECT procedure, url, src_ip, dst_ip, bytes, user_name, http_method, "
            "epoch_ms(start_time) AS start_ms FROM records ORDER BY url, start_time, procedure"
        ).to_pylist()


def merged_row(s: Session, first: str) -> dict[str, Any]:
    """The merged record of ``s`` when ``first`` ("proxy" or "firewall") arrived first."""
    proxy_start = round((s.start) * 1000)
    firewall_start = round((s.start + FW_LAG_S) * 1000)
    return {
        "procedure": "web-sessions",
        "url": s.url,
        "src_ip": s.workstation,  # winner: flow-one (the proxy)
        "dst_ip": s.site,  # winner: flow-two (the firewall)
        # both non-null: the first received
        "bytes": s.proxy_bytes if first == "proxy" else s.firewall_bytes,
        "start_ms": proxy_start if first == "proxy" else firewall_start,
        "user_name": s.user,  # null in squid (-): the non-null value wins
        "http_method": "GET",  # only squid has it
    }


def proxy_row(s: Session) -> dict[str, Any]:
    return {
        "procedure": "flow-one",
        "url": s.url,
        "src_ip": s.workstation,
        "dst_ip": FIREWALL,
        "bytes": s.proxy_bytes,
        "start_ms": round(s.start * 1000),
        "user_name": None,
        "http_method": "GET",
    }


def firewall_row(s: Session, skew_s: float = 0.0) -> dict[str, Any]:
    return {
        "procedure": "flow-two",
        "url": s.url,
        "src_ip": PROXY,
        "dst_ip": s.site,
        "bytes": s.firewall_bytes,
        "start_ms": round((s.start + FW_LAG_S + skew_s) * 1000),
        "user_name": s.user,
        "http_method": None,
    }


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["url"], r["start_ms"], r["procedure"]))


def expected(first: str) -> list[dict[str, Any]]:
    return ordered(
        [merged_row(s, first) for s in BOTH]
        + [proxy_row(s) for s in PROXY_ONLY]
        + [firewall_row(s) for s in FIREWALL_ONLY]
    )


def test_sessions_seen_twice_become_one_record(tmp_path: Path) -> None:
    site = Site(tmp_path)
    assert site.feed("firewall") == 10
    assert site.feed("proxy") == 11
    counts = site.round()
    assert counts == {"read": 21, "merged": 8, "replaced": 16, "expired": 0}
    rows = site.rows()
    assert len(rows) == len(SESSIONS) == 13
    assert rows == expected(first="firewall")
    # the two sessions of http://a.example/ 10 minutes apart kept their own workstations
    a_rows = [(r["src_ip"], r["procedure"]) for r in rows if r["url"] == "http://a.example/"]
    assert a_rows == [
        ("10.1.0.1", "web-sessions"),
        ("10.1.0.11", "flow-one"),
        ("10.1.0.7", "web-sessions"),
    ]
    # a second round changes nothing
    assert site.round() == {"read": 0, "merged": 0, "replaced": 0, "expired": 0}
    assert site.rows() == rows


@pytest.mark.parametrize("first", ["proxy", "firewall"])
def test_write_through_then_replaced(tmp_path: Path, first: str) -> None:
    site = Site(tmp_path)
    other = "firewall" if first == "proxy" else "proxy"
    site.feed(first)
    counts = site.round()
    alone = len(BOTH) + (len(PROXY_ONLY) if first == "proxy" else len(FIREWALL_ONLY))
    assert counts == {"read": alone, "merged": 0, "replaced": 0, "expired": 0}
    # stored at once, as they came
    if first == "proxy":
        single = [proxy_row(s) for s in SESSIONS if s.proxy_bytes is not None]
    else:
        single = [firewall_row(s) for s in SESSIONS if s.firewall_bytes is not None]
    assert site.rows() == ordered(single)
    assert site.runner.get("web-sessions").status()["pending"] == alone
    site.clock.now += 5
    site.feed(other)
    counts = site.round()
    assert counts["merged"] == 8 and counts["replaced"] == 16
    assert site.rows() == expected(first=first)
    assert site.runner.get("web-sessions").status()["pending"] == len(PROXY_ONLY) + len(
        FIREWALL_ONLY
    )


def test_fixed_tolerance_does_not_bridge_a_clock_offset(tmp_path: Path) -> None:
    site = Site(tmp_path, skew_s=30.0)
    site.feed("proxy")
    site.feed("firewall")
    assert site.round()["merged"] == 0
    rows = site.rows()
    assert len(rows) == 21
    assert rows == ordered(
        [proxy_row(s) for s in SESSIONS if s.proxy_bytes is not None]
        + [firewall_row(s, 30.0) for s in SESSIONS if s.firewall_bytes is not None]
    )


def test_adaptive_tolerance_learns_the_offset(tmp_path: Path) -> None:
    site = Site(tmp_path, skew_s=30.0, adaptive=True)
    site.feed("proxy")
    site.feed("firewall")
    counts = site.round()
    assert counts["merged"] == 8
    rows = site.rows()
    assert len(rows) == 13
    # proxy first: its start time and bytes; each workstation with its own site
    assert rows == ordered(
        [merged_row(s, "proxy") for s in BOTH]
        + [proxy_row(s) for s in PROXY_ONLY]
        + [firewall_row(s, 30.0) for s in FIREWALL_ONLY]
    )
    offset = site.runner.get("web-sessions").status()["offsets_s"]["flow-two"]
    assert offset == pytest.approx(30.3, abs=0.001)  # skew + the firewall's 0.3 s lag
    # persisted: a new stage instance starts from the learnt offset
    runner = site.new_runner()
    runner.run_once()
    assert runner.get("web-sessions").status()["offsets_s"]["flow-two"] == pytest.approx(
        30.3, abs=0.001
    )


def test_horizon_expiry_leaves_records_unmerged(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.feed("proxy")
    assert site.round()["expired"] == 0
    site.clock.now += 61  # past the 60 s horizon
    counts = site.round()
    assert counts == {"read": 0, "merged": 0, "replaced": 0, "expired": 11}
    site.feed("firewall")
    counts = site.round()
    assert counts["merged"] == 0
    assert len(site.rows()) == 21
    assert site.runner.get("web-sessions").status()["pending"] == 10


def test_restart_rebuilds_pending_and_never_merges_twice(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.feed("proxy")
    site.round()
    site.runner = site.new_runner()  # a restart: the pending set comes from the store
    site.clock.now += 5
    assert site.round()["read"] == 0
    assert site.runner.get("web-sessions").status()["pending"] == 11
    site.feed("firewall")
    assert site.round()["merged"] == 8
    rows = site.rows()
    assert rows == expected(first="proxy")
    site.runner = site.new_runner()
    assert site.round() == {"read": 0, "merged": 0, "replaced": 0, "expired": 0}
    assert site.runner.get("web-sessions").status()["pending"] == 5
    assert site.rows() == rows
    # and the watermark: the merged records were not read as new input
    n = site.store.query("SELECT count(*) AS n FROM records WHERE procedure = 'web-sessions'")
    assert n.column("n")[0].as_py() == 8


def _merged_records(site: Site) -> list[dict[str, Any]]:
    """Every field of the merged records, but those a merge always makes new."""
    table = site.store.query(
        "SELECT * EXCLUDE (record_id, ingested_at) FROM records "
        "WHERE procedure = 'web-sessions' ORDER BY url, start_time"
    )
    return table.to_pylist()


def _us(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _arrive(tmp: Path, first: str, **options: Any) -> Site:
    """Feed ``first``'s records, a round, then the other's and a round (write-through)."""
    tmp.mkdir(exist_ok=True)
    site = Site(tmp, skew_s=30.0, adaptive=True, **options)
    site.feed(first)
    assert site.round()["merged"] == 0
    site.clock.now += 5
    site.feed("firewall" if first == "proxy" else "proxy")
    assert site.round()["merged"] == 8
    return site


def test_times_from_a_clock_with_a_learnt_offset_are_corrected(tmp_path: Path) -> None:
    """The firewall's clock is 30 s off (plus its 0.3 s lag): arriving first, its start
    time is the one kept, and it is kept in the reference (proxy) clock, offset removed."""
    site = _arrive(tmp_path, "firewall")
    offset_us = round(site.runner.get("web-sessions").status()["offsets_s"]["flow-two"] * 1e6)
    assert offset_us == pytest.approx(30_300_000, abs=1000)
    starts = {r["url"] + str(r["src_ip"]): r["start_time"] for r in _merged_records(site)}
    for s in BOTH:
        raw_us = round((s.start + FW_LAG_S + 30.0) * 1000) * 1000  # the firewall's own time
        got = starts[s.url + s.workstation]
        assert _us(got) == raw_us - offset_us


@pytest.mark.parametrize("first", ["proxy", "firewall"])
def test_a_time_winner_is_corrected_by_its_offset(tmp_path: Path, first: str) -> None:
    site = _arrive(tmp_path, first, winners=", start_time: flow-two, end_time: flow-two")
    offset_us = round(site.runner.get("web-sessions").status()["offsets_s"]["flow-two"] * 1e6)
    for row in _merged_records(site):
        s = next(s for s in BOTH if (s.url, s.workstation) == (row["url"], row["src_ip"]))
        raw_us = round((s.start + FW_LAG_S + 30.0) * 1000) * 1000
        assert _us(row["start_time"]) == raw_us - offset_us
        assert _us(row["end_time"]) == raw_us + ELAPSED_MS * 1000 - offset_us


def test_the_merged_record_does_not_depend_on_arrival_order(tmp_path: Path) -> None:
    """With the times' winner named and ``prefer`` for the rest, the merged record is the
    same field by field — ``source``, ``exporter``, ``bytes`` … — whichever side came
    first."""
    options = {
        "winners": ", start_time: flow-one, end_time: flow-one",
        "extra": "\n    prefer: [flow-one, flow-two]",
    }
    by_proxy = _merged_records(_arrive(tmp_path / "p", "proxy", **options))
    by_firewall = _merged_records(_arrive(tmp_path / "f", "firewall", **options))
    assert len(by_proxy) == 8
    assert by_proxy == by_firewall
    assert {r["source"] for r in by_proxy} == {"proxy"}
    # what each field came from: the proxy where it has a value, else the firewall
    row = next(r for r in by_proxy if r["url"] == "http://a.example/")
    assert (row["bytes"], row["user_name"], row["dst_ip"], row["src_ip"]) == (
        1100,
        "alice",
        "198.51.100.1",
        "10.1.0.1",
    )
    assert _us(row["start_time"]) == round(T0 * 1e6)
