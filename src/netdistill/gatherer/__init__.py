"""The gatherer: runs next to the devices, turns what they report into record batches.

In ``netdistill run`` the gatherer lives in the manager's process and its sink is the
store itself; as a separate process it spools and forwards instead.
"""
