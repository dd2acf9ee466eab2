"""Log files as a source (``type: file``) and the web-proxy and web-server log formats.

``tail.py`` follows files through rotation and keeps offsets durably; ``listener.py`` is
the runtime source that cuts files into lines and hands them to a line format
(``sources/lines.py``); ``squid.py`` and ``clf.py`` are the Squid native and the
Common/Combined Log Format parsers.
"""
