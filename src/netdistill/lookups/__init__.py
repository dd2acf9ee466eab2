"""Synchronous devices (the seeds' SISMs): lookups with typed functions, asked per batch."""
