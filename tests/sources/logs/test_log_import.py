"""``netdistill import`` of log files: the format from ``--format`` or from a scheme's
``type: file`` source, exact totals, bad lines quarantined as ``path:line``."""

from __future__ import annotations

import subprocess

import peers

LINES = [
    '192.0.2.1 - alice [01/Mar/2024:10:00:00 +0000] "GET /a HTTP/1.1" 200 1000 1500',
    '192.0.2.2 - - [01/Mar/2024:10:00:01 +0000] "GET /b HTTP/1.1" 404 - 20',
    "a broken line",
    '192.0.2.1 - alice [01/Mar/2024:10:00:02 +0000] "POST /c HTTP/1.1" 201 250 3000000',
]


def test_import_with_format_from_the_scheme(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("\n".join(LINES))  # no newline after the last line: still a line
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(
        "sources:\n"
        "  - name: web\n"
        "    type: file\n"
        "    paths: [/var/log/apache2/access.log]\n"
        "    format: clf\n"
        "    format_options: {elapsed: microseconds}\n"
    )
    data = tmp_path / "data"
    done = peers.netdistill(
        "import", "--data-dir", str(data), "--config", str(scheme), "--source", "web", str(log)
    )
    assert "imported 3 records from 4 lines in 1 file(s); quarantined 1" in done.stderr
    rows = peers.query(
        data,
        "select source, user_name, url, bytes, http_status, duration_s from records "
        "order by record_id",
    )
    assert rows == [
        {"source": "web", "user_name": "alice", "url": "/a", "bytes": 1000,
         "http_status": 200, "duration_s": 0.0015},
        {"source": "web", "user_name": None, "url": "/b", "bytes": 0,
         "http_status": 404, "duration_s": 0.00002},
        {"source": "web", "user_name": "alice", "url": "/c", "bytes": 250,
         "http_status": 201, "duration_s": 3.0},
    ]  # fmt: skip
    assert peers.query(data, "select location, detail from quarantine") == [
        {"location": f"{log}:3", "detail": 'expected "request" (and "referer" "user-agent")'}
    ]


def test_import_format_errors_are_clear(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(LINES[0] + "\n")
    command = [*peers.netdistill_command(), "import", "--data-dir", str(tmp_path / "d")]
    unknown = subprocess.run(
        [*command, "--format", "apache", str(log)], capture_output=True, text=True, check=False
    )
    assert unknown.returncode == 1
    assert "--format apache: unknown format 'apache' (known: " in unknown.stderr
    bad_option = subprocess.run(
        [*command, "--format", "clf", "--format-option", "elapsed=hours", str(log)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad_option.returncode == 1 and "--format clf:" in bad_option.stderr
