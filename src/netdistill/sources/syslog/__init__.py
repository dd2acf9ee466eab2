"""Syslog (RFC 5424, RFC 3164 over UDP RFC 5426 and TCP RFC 6587) and plain line sockets,
with the firewall line formats netfilter, Cisco ASA and CEF."""
