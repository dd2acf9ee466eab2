"""The contract between gatherers and managers, owned by neither (SYSTEM.md §3, seed 000).

* ``entry.py``    — the unit of delivery (one spooled batch) and its kinds;
* ``wire.py``     — the request body byte by byte, and the records payload: Arrow IPC
                    with columns named by **field name** and typed by registry type;
* ``ack.py``      — what each answer means: acknowledged, retried, or refused for good;
* ``arrow.py``    — Arrow IPC and the quarantine as an Arrow table;
* ``pipeline.py`` — the producing side: sources → a sink whose commit is idempotent on
                    (origin, sequence), the gatherer's spool or the manager's store.

``gatherer/`` (spool, forwarders) and ``manager/`` (ingest) import from here, never from
each other.
"""
