"""RADIUS accounting source (RFC 2866, RFC 2869): Accounting-Requests in, session records out."""
