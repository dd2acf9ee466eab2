"""Real peer programs for integration tests and benchmarks, on free loopback ports.

Every helper binds 127.0.0.1 only and cleans up after itself (context managers that kill
their process in ``finally``). The peers:

* ``UdpCatcher`` — receives and keeps every datagram sent to its port, so one export can
  be replayed to several collectors and written to a pcap for ``netdistill import``.
* ``run_softflowd`` — softflowd reading a pcap (``-r``) and exporting NetFlow v5, v9 or
  IPFIX to a port. In ``-r`` mode softflowd exports every flow when the file ends.
* ``Nfcapd`` — nfdump's collector; ``nfdump_records`` reads what it stored as JSON.
* ``Nfacctd`` — pmacct's NetFlow collector with the ``print`` plugin writing CSV.
* ``NetdistillRun`` — ``netdistill run --no-demo --netflow 127.0.0.1:PORT``.
* ``send_datagrams`` — sends payloads to a port, paced, from this process.

fprobe is not here: it captures from a live interface only (``fprobe -i IF``), it cannot
read a pcap, and capturing on ``lo`` would need root and would see every other test's
traffic; softflowd covers the same exporter role.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Self

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
NETDISTILL = REPO / ".venv" / "bin" / "netdistill"


def netdistill_command() -> list[str]:
    """The CLI: the venv's console script when present, else ``python -m netdistill``."""
    if NETDISTILL.exists():
        return [str(NETDISTILL)]
    return [sys.executable, "-m", "netdistill"]


def missing(*binaries: str) -> str | None:
    """The reason to skip when one of ``binaries`` is not installed, else None."""
    absent = [b for b in binaries if shutil.which(b) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install softflowd nfdump pmacct)"
    return None


def require(*binaries: str) -> None:
    """Skip a test whose peer program is not installed, with the reason; on CI (where the
    bootstrap installs every peer) a missing one fails the run instead of skipping."""
    import pytest

    reason = missing(*binaries)
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (scripts/bootstrap.sh should have installed it)")
        pytest.skip(reason)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_udp_bound(port: int, timeout_s: float = 10.0) -> None:
    """Wait until some process has bound UDP ``port`` on loopback (read /proc/net/udp)."""
    deadline = time.monotonic() + timeout_s
    needle = f"0100007F:{port:04X}"
    while time.monotonic() < deadline:
        with open("/proc/net/udp") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1 and parts[1] == needle:
                    return
        time.sleep(0.05)
    raise TimeoutError(f"nothing bound udp {LOOPBACK}:{port} within {timeout_s}s")


def _udp_socket_line(port: int) -> list[str] | None:
    needle = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[1] == needle:
                return parts
    return None


def wait_udp_drained(port: int, timeout_s: float = 30.0, settle_s: float = 0.2) -> None:
    """Wait until the socket on UDP 127.0.0.1:``port`` has read everything queued to it
    (its receive queue in /proc/net/udp is empty), then ``settle_s`` more."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        parts = _udp_socket_line(port)
        if parts is None or int(parts[4].split(":")[1], 16) == 0:
            break
        time.sleep(0.02)
    time.sleep(settle_s)


def udp_socket_drops(port: int) -> int:
    """The kernel's drop counter of the socket bound to UDP 127.0.0.1:``port``."""
    needle = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[1] == needle:
                return int(parts[-1])
    return 0


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 20
) -> int:
    """Signal ``proc`` and wait; kill it if it does not end in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its threads, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


# --- UDP catcher -------------------------------------------------------------------------


@dataclass(slots=True)
class Caught:
    payload: bytes
    source: tuple[str, int]
    received_at: float


class UdpCatcher:
    """Keeps every datagram sent to 127.0.0.1:``port``, in arrival order.

    A thread reads the socket; ``wait_quiet`` returns once nothing has arrived for a
    while. The socket buffer is large so a burst (softflowd flushing) is not dropped;
    ``kernel_drops`` says if it was anyway.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams: list[Caught] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._last = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                payload, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self._last = time.monotonic()
            self.datagrams.append(Caught(payload, source, time.time()))

    def __enter__(self) -> UdpCatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def wait_quiet(self, quiet_s: float = 0.5, timeout_s: float = 30) -> list[Caught]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.datagrams and time.monotonic() - self._last >= quiet_s:
                break
            time.sleep(0.05)
        return list(self.datagrams)

    @property
    def kernel_drops(self) -> int:
        return udp_socket_drops(self.port)


def send_datagrams(
    payloads: Iterable[bytes], port: int, *, per_second: float = 20_000, host: str = LOOPBACK
) -> int:
    """Send ``payloads`` to ``host:port`` from one socket, at most ``per_second``."""
    assert host == LOOPBACK
    n = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        start = time.perf_counter()
        for payload in payloads:
            s.sendto(payload, (host, port))
            n += 1
            ahead = n / per_second - (time.perf_counter() - start)
            if ahead > 0.001:
                time.sleep(ahead)
    return n


def pcap_udp_payloads(path: Path) -> list[bytes]:
    """The UDP payloads of a pcap or pcapng, in order (read with dpkt, not our reader)."""
    import dpkt

    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        out = []
        for _, frame in reader:
            if linktype == dpkt.pcap.DLT_EN10MB:
                packet = dpkt.ethernet.Ethernet(frame).data
            elif linktype == dpkt.pcap.DLT_LINUX_SLL:
                packet = dpkt.sll.SLL(frame).data
            else:  # raw IP
                packet = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
            while isinstance(packet, dpkt.ethernet.Ethernet):
                packet = packet.data
            if isinstance(packet, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(
                packet.data, dpkt.udp.UDP
            ):
                out.append(bytes(packet.data.data))
        return out


# --- softflowd ---------------------------------------------------------------------------


def run_softflowd(
    pcap: Path, port: int, version: int, workdir: Path, *, timeout_s: float = 60
) -> None:
    """softflowd reads ``pcap`` and exports every flow to 127.0.0.1:``port`` (NetFlow
    ``version`` 5, 9 or 10 = IPFIX), then exits. IPv6 is tracked for v9 and IPFIX (``-6``);
    NetFlow v5 cannot carry it, so softflowd skips IPv6 packets there. ``-a`` makes the
    flow times the pcap's packet times (without it, they are shifted to the wall clock)."""
    workdir.mkdir(parents=True, exist_ok=True)
    # Short relative pid and control-socket names, run inside ``workdir``: softflowd 1.1.0
    # in -r mode blocks in accept() on its control socket, never reading the pcap, when
    # the control socket's path is 13 characters or longer (seen with strace).
    cmd = [
        "softflowd",
        "-d",
        "-r",
        str(pcap.resolve()),
        "-n",
        f"{LOOPBACK}:{port}",
        "-v",
        str(version),
        "-p",
        "sf.pid",
        "-c",
        "sf.ctl",
        "-a",
    ]
    if version != 5:
        cmd.append("-6")
    done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False, cwd=workdir)
    if done.returncode != 0:
        raise RuntimeError(f"softflowd failed ({done.returncode}): {done.stderr.decode()[-2000:]}")


# --- nfcapd / nfdump ---------------------------------------------------------------------


class PeerProcess:
    """A peer program run as a subprocess: ready when its UDP port is bound (override
    ``wait_ready``), stopped with ``stop_signal`` on exit, its output kept in ``log``."""

    stop_signal = signal.SIGTERM
    port: int
    proc: subprocess.Popen[bytes]
    log: BinaryIO

    def _spawn(self, cmd: list[str], log_path: Path, cpu: int | None) -> None:
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        wait_udp_bound(self.port)

    def __enter__(self) -> Self:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        code = stop_process(self.proc, self.stop_signal, timeout_s=60)
        self.log.close()
        return code


class Nfcapd(PeerProcess):
    """nfdump's collector on 127.0.0.1:``port`` writing into ``flow_dir``.

    ``stop()`` sends SIGTERM: nfcapd then flushes and closes its current file, after
    which ``records()`` reads everything it stored.
    """

    def __init__(
        self,
        flow_dir: Path,
        *,
        port: int | None = None,
        cpu: int | None = None,
        buffer_bytes: int = 16 << 20,
    ) -> None:
        self.flow_dir = flow_dir
        self.port = port or free_udp_port()
        flow_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "nfcapd",
            "-b",
            LOOPBACK,
            "-p",
            str(self.port),
            "-w",
            str(flow_dir),
            "-t",
            "3600",
            "-B",
            str(buffer_bytes),
            "-P",
            str(flow_dir / "nfcapd.pid"),
        ]
        self._spawn(cmd, flow_dir.parent / f"nfcapd-{self.port}.log", cpu)

    def records(self) -> list[dict[str, object]]:
        return nfdump_records(self.flow_dir)


#: nfdump prints times in the local time zone; tests compare them as UTC
_UTC = {**os.environ, "TZ": "UTC"}


def nfdump_records(flow_dir: Path) -> list[dict[str, object]]:
    """Every flow record nfcapd stored in ``flow_dir``, as nfdump's JSON objects."""
    files = sorted(p for p in flow_dir.glob("nfcapd.*") if not p.name.startswith("nfcapd.current"))
    if not files:
        return []
    done = subprocess.run(
        ["nfdump", "-R", str(flow_dir), "-q", "-o", "json"],
        capture_output=True,
        check=True,
        timeout=120,
        env=_UTC,
    )
    text = done.stdout.decode().strip().rstrip(",")
    if not text:
        return []
    # with -q nfdump 1.7 prints the objects comma-separated, without the enclosing list
    return list(json.loads(text if text.startswith("[") else f"[{text}]"))


@dataclass(frozen=True, slots=True)
class Totals:
    flows: int
    bytes: int
    packets: int
    bytes_by_src_ip: dict[str, int] = field(default_factory=dict)


def nfdump_totals(records: Sequence[dict[str, object]]) -> Totals:
    by_src: dict[str, int] = {}
    total_bytes = total_packets = 0
    for r in records:
        b, p = int(r.get("in_bytes", 0)), int(r.get("in_packets", 0))  # type: ignore[call-overload]
        src = str(r.get("src4_addr") or r.get("src6_addr"))
        by_src[src] = by_src.get(src, 0) + b
        total_bytes += b
        total_packets += p
    return Totals(len(records), total_bytes, total_packets, by_src)


def nfdump_summary(flow_dir: Path) -> dict[str, int]:
    """nfdump's own summary line (``-I`` statistics of the files): flows, bytes, packets."""
    done = subprocess.run(
        ["nfdump", "-R", str(flow_dir), "-I"],
        capture_output=True,
        check=True,
        timeout=120,
        env=_UTC,
    )
    out: dict[str, int] = {}
    for line in done.stdout.decode().splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if value.isdigit():
            out[key.strip()] = int(value)
    return out


# --- nfacctd (pmacct) ---------------------------------------------------------------------


NFACCTD_PRIMITIVES = "src_host,dst_host,src_port,dst_port,proto,timestamp_start,timestamp_end"


class Nfacctd(PeerProcess):
    """pmacct's NetFlow/IPFIX collector on 127.0.0.1:``port``, ``print`` plugin to CSV.

    The print plugin writes what it aggregated every ``print_refresh_time`` seconds and
    on SIGTERM/SIGINT; ``rows()`` reads every file it wrote.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        cpu: int | None = None,
        aggregate: str = NFACCTD_PRIMITIVES,
        refresh_s: int = 1,
        buffer_bytes: int = 16 << 20,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = port or free_udp_port()
        self.output = workdir / "nfacctd-out"
        self.output.mkdir(exist_ok=True)
        config = workdir / "nfacctd.conf"
        config.write_text(
            "daemonize: false\n"
            f"nfacctd_ip: {LOOPBACK}\n"
            f"nfacctd_port: {self.port}\n"
            f"nfacctd_pipe_size: {buffer_bytes}\n"
            "nfacctd_time_new: false\n"
            "plugins: print[out]\n"
            f"aggregate[out]: {aggregate}\n"
            "print_output[out]: csv\n"
            f"print_output_file[out]: {self.output}/%s.csv\n"
            "print_output_file_append[out]: true\n"
            f"print_refresh_time[out]: {refresh_s}\n"
            "print_history[out]: 1m\n"
            "plugin_pipe_size[out]: 67108864\n"
            "plugin_buffer_size[out]: 65536\n"
            f"pidfile: {workdir}/nfacctd.pid\n"
            f"logfile: {workdir}/nfacctd.log\n"
        )
        cmd = ["nfacctd", "-f", str(config)]
        self._spawn(cmd, workdir / "nfacctd.stdout", cpu)

    def core_pid(self) -> int:
        """The process that reads the socket (the core; plugins are child processes)."""
        return self.proc.pid

    def all_pids(self) -> list[int]:
        """The core and its plugin processes (pmacct forks one process per plugin)."""
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(p) for p in children.split()]
        return pids

    stop_signal = signal.SIGINT  # nfacctd writes its last print output on SIGINT

    def rows(self) -> list[dict[str, str]]:
        import csv

        rows: list[dict[str, str]] = []
        for path in sorted(self.output.glob("*.csv")):
            with open(path, newline="") as f:
                rows.extend(r for r in csv.DictReader(f) if r)
        return rows


# --- netdistill run ----------------------------------------------------------------------


class NetdistillRun(PeerProcess):
    """``netdistill run --no-demo --netflow 127.0.0.1:PORT`` as a subprocess.

    Waits for DIR/manager.json (written once the API is up) and for the NetFlow socket.
    ``stop()`` sends SIGTERM: the contract is that everything received gets committed.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        cpu: int | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_udp_port()
        self.ui_port = free_tcp_port()
        cmd = [
            *netdistill_command(),
            "run",
            "--no-demo",
            "--data-dir",
            str(data_dir),
            "--netflow",
            f"{LOOPBACK}:{self.port}",
            "--ui-port",
            str(self.ui_port),
            *extra,
        ]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"netdistill-run-{self.port}.log"
        self._spawn(cmd, self.log_path, cpu)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        manager = self.data_dir / "manager.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netdistill run exited {self.proc.returncode}: {self.output()}")
            if manager.exists():
                try:
                    json.loads(manager.read_text())
                except ValueError:
                    pass
                else:
                    wait_udp_bound(self.port, max(1.0, deadline - time.monotonic()))
                    return
            time.sleep(0.1)
        raise TimeoutError(f"netdistill run not ready in {timeout_s}s: {self.output()}")

    def manager(self) -> dict[str, object]:
        return dict(json.loads((self.data_dir / "manager.json").read_text()))

    def status(self) -> dict[str, object]:
        import urllib.request

        manager = self.manager()
        api = str(manager["api"]).rstrip("/")
        request = urllib.request.Request(f"{api}/api/status")
        if manager.get("token"):  # the API wants the bearer token kept in manager.json
            request.add_header("Authorization", f"Bearer {manager['token']}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


# --- netdistill CLI ----------------------------------------------------------------------


def netdistill(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*netdistill_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"netdistill {' '.join(args)} exited {done.returncode}\n"
            f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
        )
    return done


def query(data_dir: Path, sql: str) -> list[dict[str, object]]:
    """``netdistill query --format json`` → the rows."""
    done = netdistill("query", "--data-dir", str(data_dir), "--format", "json", sql)
    return list(json.loads(done.stdout))


def netdistill_totals(data_dir: Path, where: str = "true") -> Totals:
    row = query(
        data_dir,
        "select count(*) as flows, coalesce(sum(bytes), 0) as bytes, "
        f"coalesce(sum(packets), 0) as packets from records where {where}",
    )[0]
    by_src = query(
        data_dir,
        "select src_ip, coalesce(sum(bytes), 0) as bytes from records "
        f"where {where} group by src_ip",
    )
    return Totals(
        int(row["flows"]),
        int(row["bytes"]),
        int(row["packets"]),  # type: ignore[call-overload]
        {str(r["src_ip"]): int(r["bytes"]) for r in by_src},
    )  # type: ignore[call-overload]


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
