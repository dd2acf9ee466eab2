#!/usr/bin/env python3
"""Flood: how fast ``netdistill run`` absorbs junk, and how long good input waits meanwhile.

    .venv/bin/python benchmarks/flood.py            # the issue's flood: ~2 minutes
    .venv/bin/python benchmarks/flood.py --smoke    # CI: well under a minute

``netdistill run`` (its default quarantine caps) with a NetFlow, a RADIUS and a syslog
source on loopback. Junk whose fate is known (``tests/integration/flood_traffic.py``:
random, truncated and broken NetFlow; short, cut, forged and wrong-code RADIUS; binary
syslog) is sent to all three ports at once, each from its own thread as fast as it goes,
while a probe sends a valid Accounting-Request with ``radclient`` and fetches
``/api/status``, the login page and a logged-in console page, one after the other in a
loop. Per source: junk sent, absorbed per second (rejects counted by the collector
divided by the time from the first datagram sent to the last one counted), what the
kernel or the receive queue dropped, and how many rejects were stored in the quarantine
or only counted. Then the worst latency of each probe during the flood.

Figures are from a shared 2-core machine and noisy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from flood_traffic import (  # noqa: E402
    FloodRun,
    Junk,
    Probe,
    netflow_junk,
    radius_junk,
    send,
    syslog_junk,
)

FULL = {"nf": 100_000, "bras": 20_000, "fw": 5_000}
SMOKE = {"nf": 5_000, "bras": 1_000, "fw": 500}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small flood, quick check")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL
    junk: dict[str, Junk] = {
        "nf": netflow_junk(sizes["nf"]),
        "bras": radius_junk(sizes["bras"]),
        "fw": syslog_junk(sizes["fw"]),
    }
    with tempfile.TemporaryDirectory(prefix="flood-bench-") as tmp:
        work = Path(tmp)
        with FloodRun(work) as run:
            ports = {"nf": run.netflow_port, "bras": run.radius_port, "fw": run.syslog_port}
            cookie = run.login_cookie()
            done_at: dict[str, float] = {}
            with Probe(run, work, cookie, every_s=0.1) as probe:
                time.sleep(0.5)
                started = time.monotonic()
                senders = [
                    threading.Thread(
                        target=send, args=(junk[name].payloads, ports[name]),
                        kwargs={"per_second": 1e9},
                    )
                    for name in junk
                ]  # fmt: skip
                for sender in senders:
                    sender.start()
                for sender in senders:
                    sender.join()
                sent_s = time.monotonic() - started
                deadline = time.monotonic() + (60 if args.smoke else 600)
                status: dict[str, dict[str, object]] = {}
                while len(done_at) < len(junk) and time.monotonic() < deadline:
                    status = {name: run.source_status(name) for name in junk}
                    for name, item in status.items():
                        counted = sum(item["dropped"].values())  # type: ignore[attr-defined]
                        if name not in done_at and counted >= len(junk[name].payloads):
                            done_at[name] = time.monotonic() - started
                    time.sleep(0.05)
                time.sleep(0.5)
            status = {name: run.source_status(name) for name in junk}
    print(f"junk sent in {sent_s:.1f} s from 3 threads; quarantine caps at their defaults")
    print(
        f"{'source':<8}{'junk':>10}{'absorbed/s':>12}{'lost':>10}{'stored':>10}"
        f"{'counted':>10}  reasons"
    )
    for name, item in status.items():
        dropped: dict[str, int] = dict(item["dropped"])  # type: ignore[call-overload]
        lost = dropped.pop("kernel_socket_overflow", 0) + dropped.pop("internal_queue_full", 0)
        absorbed = sum(dropped.values())
        took = done_at.get(name)
        rate = f"{absorbed / took:,.0f}" if took else "timeout"
        quarantine: dict[str, dict[str, int]] = item["quarantine"]  # type: ignore[assignment]
        stored = sum(quarantine["stored"].values())
        counted = sum(quarantine["counted_only"].values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(dropped.items()))
        print(
            f"{name:<8}{len(junk[name].payloads):>10,}{rate:>12}{lost:>10,}{stored:>10,}"
            f"{counted:>10,}  {reasons}"
        )
    print("worst latency during the flood (s):")
    for name in ("radius", "status", "login_page", "console_page"):
        samples = probe.samples.get(name, [])
        print(f"  {name:<14}{probe.worst.get(name, 0.0):>8.3f}  ({len(samples)} samples)")
    print(f"  radius requests unanswered: {probe.unanswered}")


if __name__ == "__main__":
    main()
