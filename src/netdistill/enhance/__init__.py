"""Field enhancements: the seeds' notation (parse, type-check), procedures, the catalogue
offered to the console, and the per-batch evaluation plan (seeds 001–004, SYSTEM.md §4)."""
