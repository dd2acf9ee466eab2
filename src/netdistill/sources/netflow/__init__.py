"""NetFlow v5, v9 (RFC 3954) and IPFIX (RFC 7011/7012): the pure decoder.

``NetflowDecoder`` turns batches of UDP payloads into usage-record tables; the socket
shell, encoder and demo generator live beside it in their own modules.
"""

from netdistill.sources.netflow.decode import NetflowDecoder

__all__ = ["NetflowDecoder"]
