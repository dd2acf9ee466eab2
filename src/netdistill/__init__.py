"""netdistill: network usage accounting and billing mediation.

Devices report usage (NetFlow/IPFIX today); gatherers decode it into columnar batches of
usage records; the manager commits them to the store, from which reports, alerts and
bills are made. See ``docs/`` and the design notes for the words used here.
"""

__version__ = "0.1.0"
