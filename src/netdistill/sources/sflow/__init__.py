"""sFlow version 5 (sflow.org, "sFlow Version 5", July 2004): the pure decoder.

``SflowDecoder`` turns batches of UDP payloads into usage-record tables (flow samples)
and interface-counter records (counter samples); the socket shell lives in
``listener.py``.
"""

from netdistill.sources.sflow.decode import SflowDecoder

__all__ = ["SflowDecoder"]
