"""Managers feeding a parent manager (seed 001, Fig. 6: points of presence feeding a
central billing system).

A point-of-presence manager (the **POP**) keeps its detailed records and forwards the
output of chosen stages — roll-up periods, aggregate rows — to a **central** manager
over the same acknowledged, spooled delivery as gatherers use (``delivery/``):

* ``config.py``  — the POP's ``upstream:`` section;
* ``outbox.py``  — the POP side: stage output written to an outbox table in the same
                   store transaction that produces it, relayed into the spool;
* ``link.py``    — the POP's upstream component: outbox relay + spool + ``Forwarder``;
* ``receive.py`` — the central side: entries of kind ``STAGE_OUTPUT`` stored with the
                   POP's name, and the central roll-up that sums the POPs' periods.

docs/hierarchy.md describes topology, configuration and guarantees.
"""
