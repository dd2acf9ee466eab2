"""Points of presence feeding a central manager (seed 001, Fig. 6), all real processes.

Two POP managers (``pop-east``, ``pop-west``), each with its own ``netdistill gatherer``
receiving NetFlow v5 (the project's encoder) and a RADIUS accounting source of its own
fed by ``radclient``, roll their RADIUS sessions up per account and day and aggregate
their flows per source address; both forward those two stages to one central manager
(``upstream:``), which sums the POPs' daily roll-ups into its own and invoices from it.

The east POP's link to the centre runs through a TCP proxy that is cut while the POPs
collect and close their periods: the centre holds west's periods but closes none (it
waits for east). The link is restored, and east is killed with SIGKILL while it catches
up, then restarted. Checked, exactly:

* every POP's roll-up equals the ground truth of what radclient sent it;
* the centre's roll-up equals the sum of the POPs' roll-ups, per account and day,
  bytes, seconds (µs) and records; its per-POP rows equal each POP's rows;
* the forwarded aggregate rows, per POP, equal the POP's own (and the flows sent);
* nothing doubled after the kill (per-POP rows are unique, sums exact);
* the centre's invoices for last month equal the priced sum of the usage.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import peers
import pytest

from netdistill.manager.client import ManagerClient
from netdistill.manager.discovery import read_manager_info
from netdistill.sources.netflow.encode import V5Exporter, encode_v5

SECRET = "pop-radius-secret"
POPS = ("pop-east", "pop-west")


class CuttableLink:
    """A TCP proxy to ``upstream`` whose traffic can be cut (every connection closed,
    new ones closed at once) and restored: the POP's long-distance link."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.up.is_set():
                    break
                target.sendall(data)
        except OSError:
            pass
        for s in (source, target):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


class Site:
    """The processes of the test and their files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        self.central_port = peers.free_tcp_port()
        self.link = CuttableLink(self.central_port)
        self.ports = {
            pop: {
                "api": peers.free_tcp_port(),
                "radius": peers.free_udp_port(),
                "netflow": peers.free_udp_port(),
            }
            for pop in POPS
        }
        digests = []
        for name in (*POPS, *(f"g-{p}" for p in POPS)):
            token = f"{name}-token"
            (root / f"{name}.token").write_text(token + "\n")
            digests.append((name, hashlib.sha256(token.encode()).hexdigest()))
        self._central_scheme([d for d in digests if d[0] in POPS])
        for pop in POPS:
            self._pop_scheme(pop, dict(digests)[f"g-{pop}"])

    def _central_scheme(self, pops: list[tuple[str, str]]) -> None:
        gatherers = "".join(f"  - {{name: {n}, token_sha256: {d}}}\n" for n, d in pops)
        (self.root / "central.yaml").write_text(
            f"manager: {{api_port: {self.central_port}, stages_interval_s: 0.3}}\n"
            f"gatherers:\n{gatherers}"
            "stages:\n"
            f"  - {{name: daily, type: rollup, period: day, pops: [{', '.join(POPS)}]}}\n"
            "rating:\n"
            "  rollups: [daily]\n"
            "  currency: EUR\n"
            "  default_plan: basic\n"
            "  invoices: {directory: null}\n"
            "  plans:\n"
            "    basic:\n"
            "      prices:\n"
            '        - {name: data, category: total, unit: MB, rate: "0.01"}\n'
            '        - {name: time, category: total, unit: minute, rate: "0.02"}\n'
        )

    def _pop_scheme(self, pop: str, gatherer_digest: str) -> None:
        ports = self.ports[pop]
        url = (
            f"http://127.0.0.1:{self.link.port}"
            if pop == "pop-east"
            else f"http://127.0.0.1:{self.central_port}"
        )
        (self.root / f"{pop}.yaml").write_text(
            f"manager: {{api_port: {ports['api']}, stages_interval_s: 0.3,"
            " commit_interval_s: 0.1}\n"
            "gatherers:\n"
            f"  - {{name: g-{pop}, token_sha256: {gatherer_digest}, commit_interval_s: 0.1,\n"
            "     forward: {backoff_initial_s: 0.1, backoff_max_s: 0.5, plan_poll_s: 1.0}}\n"
            "sources:\n"
            f"  - {{type: netflow, name: nf, gatherer: g-{pop},"
            f" listen: ['127.0.0.1:{ports['netflow']}']}}\n"
            f"  - {{type: radius, name: radius, listen: ['127.0.0.1:{ports['radius']}'],\n"
            f"     clients: {{127.0.0.1: {{secret: {SECRET}}}}}}}\n"
            "stages:\n"
            "  - {name: daily, type: rollup, period: day, account: user_name, input: radius,\n"
            "     grace_s: 8}\n"
            "  - {name: hosts, type: aggregate, input: nf, by: [src_ip], bin_s: 60,"
            " grace_s: 0}\n"
            "upstream:\n"
            f"  url: {url}\n"
            f"  name: {pop}\n"
            f"  token_file: {pop}.token\n"
            "  stages: [daily, hosts]\n"
            "  forward: {backoff_initial_s: 0.1, backoff_max_s: 0.5, max_batches_per_request: 1}\n"
        )

    # --- processes -----------------------------------------------------------------------

    def spawn(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            [*peers.netdistill_command(), *args], stdout=log, stderr=subprocess.STDOUT
        )

    def start_manager(self, name: str) -> None:
        scheme = self.root / f"{'central' if name == 'central' else name}.yaml"
        info = self.root / name / "manager.json"
        info.unlink(missing_ok=True)
        self.spawn(name, "manager", "--config", str(scheme), "--data-dir", str(self.root / name))

    def start_gatherer(self, pop: str) -> None:
        url = f"http://127.0.0.1:{self.ports[pop]['api']}"
        self.spawn(
            f"g-{pop}", "gatherer", "--name", f"g-{pop}", "--manager", url,
            "--token", f"g-{pop}-token", "--data-dir", str(self.root / f"g-{pop}"),
        )  # fmt: skip

    def wait_manager(self, name: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.procs[name].poll() is None, self.log(name)
            if read_manager_info(self.root / name) is not None:
                with contextlib.suppress(Exception):
                    self.client(name).request("GET", "/api/status")
                    return
            time.sleep(0.2)
        raise TimeoutError(self.log(name))

    def kill(self, name: str) -> None:
        self.procs[name].kill()  # SIGKILL: no clean-up of any kind
        self.procs[name].wait(10)

    def client(self, name: str) -> ManagerClient:
        info = read_manager_info(self.root / name)
        assert info is not None, f"{name} is not running"
        return ManagerClient(info, timeout_s=30)

    def query(self, name: str, sql: str) -> list[dict[str, Any]]:
        client = self.client(name)
        try:
            return list(client.query_user(sql).to_pylist())
        finally:
            client.close()

    def get(self, name: str, url: str) -> Any:
        client = self.client(name)
        try:
            return client.request("GET", url).json()
        finally:
            client.close()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-4000:]

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                peers.stop_process(proc)
        self.link.close()
        for log in self._logs:
            log.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 40) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a manager restarting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    raise TimeoutError(f"{what}: {last!r}")


# --- what is sent ---------------------------------------------------------------------------


def last_month_sessions(pop: str) -> list[dict[str, Any]]:
    """RADIUS Stops of last month's two last days: accounts a1, a2 roam on both POPs;
    each POP has one account of its own."""
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    first = month_start - timedelta(days=2)
    own = "e1" if pop == "pop-east" else "w1"
    salt = 1 if pop == "pop-east" else 7
    sessions = []
    for i in range(18):
        end = first + timedelta(hours=2 * i + 1, minutes=7 * salt)
        sessions.append(
            {
                "user": ("a1", "a2", own)[i % 3],
                "id": f"{pop}-{i}",
                "end": int(end.timestamp()),
                "seconds": 60 * (i + 1) + salt,
                "in": 1_000_003 * (i + salt),
                "out": 250_001 * (i + 2),
            }
        )
    return sessions


def radclient(port: int, sessions: list[dict[str, Any]], tmp: Path) -> None:
    peers.require("radclient")
    path = tmp / f"requests-{port}.txt"
    path.write_text(
        "\n\n".join(
            f"User-Name = {s['user']}\nAcct-Status-Type = Stop\nAcct-Session-Id = {s['id']}\n"
            f"Event-Timestamp = {s['end']}\nAcct-Session-Time = {s['seconds']}\n"
            f"Acct-Input-Octets = {s['in']}\nAcct-Output-Octets = {s['out']}\n"
            "NAS-IP-Address = 127.0.0.1"
            for s in sessions
        )
        + "\n"
    )
    done = subprocess.run(
        ["radclient", "-p", "20", "-f", str(path), f"127.0.0.1:{port}", "acct", SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def flows(first: int, n: int) -> tuple[list[bytes], dict[str, int]]:
    """v5 datagrams of ``n`` flows ten minutes old (their aggregate bins close at once),
    and the bytes per source address."""
    index = np.arange(first, first + n, dtype=np.int64)
    now = int(time.time() * 1000) - 600_000
    src = (0x0A000000 + index % 40).astype(np.uint32)
    columns = {
        "start_time": np.full(n, now - 5000),
        "end_time": np.full(n, now - 1000),
        "src_ip": src,
        "dst_ip": np.full(n, 0xC0000201, dtype=np.uint32),
        "src_port": (index % 1000 + 1024).astype(np.uint16),
        "dst_port": np.full(n, 443, dtype=np.uint16),
        "protocol": np.full(n, 6, dtype=np.uint8),
        "bytes": (1000 + index % 977).astype(np.uint32),
        "packets": np.full(n, 3, dtype=np.uint32),
    }
    truth: dict[str, int] = {}
    for address, size in zip(src.tolist(), columns["bytes"].tolist(), strict=True):
        key = f"10.0.0.{address & 0xFF}"
        truth[key] = truth.get(key, 0) + int(size)
    return encode_v5(columns, V5Exporter()), truth


# --- the test --------------------------------------------------------------------------------

ROLLUP_SQL = (
    "select period, account_id, total_bytes as bytes,"
    " cast(round(total_seconds * 1e6) as bigint) as us, total_records as records"
    " from {table} order by all"
)


def rollup_rows(site: Site, name: str, table: str = "rollup_daily_accounts") -> list[dict]:
    return site.query(name, ROLLUP_SQL.format(table=table))


def test_pops_feed_central_through_a_cut_link_and_a_kill(site: Site, tmp_path: Path) -> None:
    site.start_manager("central")
    for pop in POPS:
        site.start_manager(pop)
    for name in ("central", *POPS):
        site.wait_manager(name)
    for pop in POPS:
        site.start_gatherer(pop)
    for pop in POPS:
        peers.wait_udp_bound(site.ports[pop]["netflow"], 30)
    site.link.cut()  # east's long-distance link is down from here

    sessions = {pop: last_month_sessions(pop) for pop in POPS}
    flow_truth: dict[str, dict[str, int]] = {}
    for number, pop in enumerate(POPS):
        radclient(site.ports[pop]["radius"], sessions[pop], tmp_path)
        datagrams, flow_truth[pop] = flows(number * 100_000, 3000)  # 100 datagrams
        peers.send_datagrams(datagrams, site.ports[pop]["netflow"], per_second=40)

    # Each POP closes its days (after grace_s) and has its own exact roll-up.
    for pop in POPS:
        truth: dict[tuple[str, str], list[int]] = {}
        for s in sessions[pop]:
            day = datetime.fromtimestamp(int(s["end"]), UTC).strftime("%Y-%m-%d")
            item = truth.setdefault((day, str(s["user"])), [0, 0, 0])
            item[0] += int(s["in"]) + int(s["out"])
            item[1] += int(s["seconds"]) * 1_000_000
            item[2] += 1
        expected = sorted((d, a, *v) for (d, a), v in truth.items())

        def closed(pop: str = pop, expected: list[Any] = expected) -> bool:
            rows = rollup_rows(site, pop)
            got = sorted((r["period"], r["account_id"], r["bytes"], r["us"], r["records"])
                         for r in rows)  # fmt: skip
            return got == expected

        def aggregated(pop: str = pop) -> bool:
            rows = site.query(pop, "select coalesce(sum(bytes), 0) b from agg_hosts")
            return bool(rows[0]["b"] == sum(flow_truth[pop].values()))

        wait_for(f"{pop} rolled up its sessions", closed)
        wait_for(f"{pop} aggregated its flows", aggregated)

    # West is delivered; the centre waits for east and closes nothing meanwhile.
    def west_delivered() -> bool:
        rows = site.query(
            "central", "select count(*) n from rollup_daily_pop_periods where pop = 'pop-west'"
        )
        return rows[0]["n"] >= 2

    wait_for("the centre has west's periods", west_delivered)
    stage = next(s for s in site.get("central", "/api/stages")["stages"] if s["name"] == "daily")
    assert stage["waiting_for"] == ["pop-east"], stage
    assert site.query("central", "select count(*) n from rollup_daily_periods")[0]["n"] == 0
    east_status = site.get("pop-east", "/api/status")["upstream"]
    assert east_status["parent"]["pending_batches"] >= 3, east_status
    assert not east_status["parent"]["connected"]

    # The link returns; east is killed while it catches up, and restarted.
    site.link.restore()
    time.sleep(0.4)
    site.kill("pop-east")
    site.start_manager("pop-east")
    site.wait_manager("pop-east")

    pops_rows = {pop: rollup_rows(site, pop) for pop in POPS}
    summed: dict[tuple[str, str], list[int]] = {}
    for rows in pops_rows.values():
        for r in rows:
            item = summed.setdefault((r["period"], r["account_id"]), [0, 0, 0])
            item[0] += r["bytes"]
            item[1] += r["us"]
            item[2] += r["records"]
    expected_central = sorted((p, a, *v) for (p, a), v in summed.items())
    last_day = max(p for p, _ in summed)

    def central_closed() -> list[dict[str, Any]] | None:
        periods = site.query("central", "select max(period) m from rollup_daily_periods")
        done = periods[0]["m"] is not None and periods[0]["m"] >= last_day
        return rollup_rows(site, "central") if done else None

    central = wait_for("the centre closed every day", central_closed)
    got = sorted((r["period"], r["account_id"], r["bytes"], r["us"], r["records"]) for r in central)
    assert got == expected_central

    # Per-POP rows at the centre are each POP's own rows, once (nothing doubled).
    for pop in POPS:
        at_centre = site.query(
            "central",
            "select period, account_id, total_bytes as bytes,"
            " cast(round(total_seconds * 1e6) as bigint) as us, total_records as records"
            f" from rollup_daily_pops where pop = '{pop}' order by all",
        )
        assert at_centre == pops_rows[pop]
    agg_rows = site.query(
        "central", "select pop, cast(src_ip as varchar) ip, sum(bytes) b from pop_agg_hosts"
        " group by all",
    )  # fmt: skip
    for pop in POPS:
        mine = {r["ip"]: r["b"] for r in agg_rows if r["pop"] == pop}
        assert mine == flow_truth[pop], pop
    commits = site.query(
        "central", "select count(*) n, count(distinct src_ip) k from pop_agg_hosts"
    )
    assert commits[0]["n"] >= commits[0]["k"]

    # Invoices for last month, made at the centre, equal the priced sum of the usage.
    client = site.client("central")
    try:
        client.request("POST", "/api/billing/run")
    finally:
        client.close()
    month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    usage: dict[str, list[int]] = {}
    for (period, account), (b, us, _) in summed.items():
        if period.startswith(month):
            item = usage.setdefault(account, [0, 0])
            item[0] += b
            item[1] += us

    def cents(value: Decimal) -> int:
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    expected_invoices = {
        account: cents(Decimal(b) / Decimal(10**6)) + cents(Decimal(us) * 2 / Decimal(60 * 10**6))
        for account, (b, us) in usage.items()
    }
    invoices = wait_for(
        "the centre invoiced last month",
        lambda: site.query(
            "central",
            f"select account_id, total_minor from invoices where bill_period = '{month}'"
            " and kind = 'invoice'",
        ),
    )
    assert {r["account_id"]: r["total_minor"] for r in invoices} == expected_invoices
    lines = site.query(
        "central",
        "select i.account_id, l.metric, sum(l.base_quantity) q from invoice_lines l"
        f" join invoices i using (number) where i.bill_period = '{month}' group by all",
    )
    for row in lines:
        b, us = usage[row["account_id"]]
        assert row["q"] == (b if row["metric"] == "bytes" else us), row
    # east's upstream status after the restart: everything acknowledged
    status = site.get("pop-east", "/api/status")["upstream"]
    assert status["parent"]["pending_batches"] == 0 and status["outbox_pending"] <= 1
