"""The accounting module: takes each window's aggregate report from the primary manager,
or from the secondary while the primary is in error, and delivers it exactly once
(seed 000, claims 1–2; SYSTEM.md §3, delivery step 5). See ``consumer.py``."""
