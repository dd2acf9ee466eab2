"""A private Postfix instance (Debian ``postfix``) on 127.0.0.1 writes its own maillog
(``maillog_file`` through ``postlogd``) while relaying to an SMTP sink run by the test;
the postfix format turns that maillog into one record per message, checked against
what the test sent and what the sink received."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import peers
import pyarrow as pa
import pytest

from netdistill.sources.lines import make_format

MASTER_CF = """\
127.0.0.1:{smtpd_port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {tmp}/queue
data_directory = {tmp}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.invalid
mydestination =
relayhost = [127.0.0.1]:{sink_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = {tmp}
maillog_file = {tmp}/maillog
alias_maps =
alias_database =
smtp_tls_security_level = none
biff = no
"""


class Sink:
    """aiosmtpd handler: keeps (sender, recipients, size) of each message; refuses
    recipients starting with ``nobody`` with 550, so Postfix bounces them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], int]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.startswith("nobody"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), len(envelope.content)))
        return "250 OK queued"


def postfix(config: Path, command: str) -> None:
    # postfix(1) reports to syslog or a terminal only; its exit code is what we check
    subprocess.run(["postfix", "-c", str(config), command], check=True, timeout=60)


@pytest.fixture
def mta() -> Iterator[tuple[int, int, Sink, Path]]:
    peers.require("postfix")
    # not pytest's tmp_path: its parent is mode 0700, and Postfix's daemons run as the
    # unprivileged mail_owner, which must reach the queue and data directories
    tmp_path = Path(tempfile.mkdtemp(prefix="netdistill-postfix-"))
    tmp_path.chmod(0o755)
    from aiosmtpd.controller import Controller

    sink = Sink()
    sink_port, smtpd_port = peers.free_tcp_port(), peers.free_tcp_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    config = tmp_path / "conf"
    for name in ("conf", "queue", "data"):
        (tmp_path / name).mkdir()
    shutil.chown(tmp_path / "data", "postfix")
    (config / "main.cf").write_text(MAIN_CF.format(tmp=tmp_path, sink_port=sink_port))
    (config / "master.cf").write_text(MASTER_CF.format(smtpd_port=smtpd_port))
    try:
        postfix(config, "start")
        yield smtpd_port, sink_port, sink, tmp_path / "maillog"
    finally:
        if (tmp_path / "queue" / "pid" / "master.pid").exists():
            postfix(config, "stop")
        controller.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_one_record_per_message_from_a_real_postfix(mta: tuple[int, int, Sink, Path]) -> None:
    smtpd_port, sink_port, sink, maillog = mta
    body = "Subject: test {n}\r\nMessage-ID: <{n}@a.example>\r\n\r\n" + "x" * 70 + "\r\n"
    sent = [
        ("ann@a.example", ["b@b.example", "c@b.example"], body.format(n="m1") * 1),
        ("bob@a.example", ["d@b.example"], body.format(n="m2") + ("y" * 70 + "\r\n") * 20),
        ("cy@a.example", ["nobody@b.example"], body.format(n="m3")),
    ]
    with smtplib.SMTP("127.0.0.1", smtpd_port, timeout=30) as smtp:
        for sender, recipients, message in sent:
            smtp.sendmail(sender, recipients, message)
    # two delivered messages plus the bounce notice to cy; then every "removed" logged
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = maillog.read_text() if maillog.exists() else ""
        if len(sink.messages) >= 3 and text.count(": removed") >= 4:
            break
        time.sleep(0.2)
    lines = maillog.read_text().splitlines()
    fmt = make_format("postfix")
    half = len(lines) // 2  # two batches: the join must hold state between them
    parsed = [
        fmt.parse(pa.table({"line": lines[:half]})),
        fmt.parse(pa.table({"line": lines[half:]})),
    ]
    assert all(p.bad == [] for p in parsed)
    records = {r["message_id"]: r for p in parsed for r in p.records.to_pylist()}
    sizes = {tuple(rcpts): size for _, rcpts, size in sink.messages}
    m1, m2, m3 = records["m1@a.example"], records["m2@a.example"], records["m3@a.example"]
    assert (m1["mail_from"], m1["mail_to"], m1["recipients"]) == (
        "ann@a.example",
        "b@b.example,c@b.example",
        2,
    )
    assert (m2["mail_from"], m2["mail_to"], m2["recipients"]) == ("bob@a.example", "d@b.example", 1)
    assert (m3["mail_from"], m3["mail_to"], m3["mail_status"]) == (
        "cy@a.example",
        "nobody@b.example",
        "bounced",
    )
    # size= is the queue file's message size: what the sink received of the same message
    assert m1["bytes"] == sizes[("b@b.example", "c@b.example")]
    assert m2["bytes"] == sizes[("d@b.example",)]
    for r in (m1, m2, m3):
        assert r["src_ip"] == "127.0.0.1"
        assert r["dst_ip"] == "127.0.0.1"
        assert r["mail_relay"] == f"127.0.0.1[127.0.0.1]:{sink_port}"
        assert r["service"] == "smtp"
        assert r["start_time"] <= r["end_time"]
    assert (m1["mail_status"], m2["mail_status"]) == ("sent", "sent")
    # the bounce notice Postfix generated is a message of its own, from <>, to cy
    notices = [r for r in records.values() if r["mail_from"] == ""]
    assert [(n["mail_to"], n["mail_status"]) for n in notices] == [("cy@a.example", "sent")]
    assert notices[0]["bytes"] == sizes[("cy@a.example",)]
    assert len(records) == 4
    assert fmt.flush().records.num_rows == 0
