"""Licences: signed files that say what an installation may run (seed 001, the CEM's
"licensing"), checked by the manager.

* ``keys.py`` — the vendor's public keys, built in
* ``terms.py`` — what a licence grants; the community edition; several added up
* ``signed.py`` — the file format and its verification (Ed25519, ``cryptography``)
* ``tables.py`` — installed licences, admitted gatherers/exporters, the install id
* ``book.py`` — ``LicenceBook``: install, check periodically, admit, read-only mode
* ``api.py`` — ``/api/licences`` and the read-only guard; ``cli.py`` — ``netdistill licence``
* ``issue.py`` — the vendor's side (keygen, signing); never imported at run time

docs/licences.md describes the format, the checks, the limits and expiry.
"""
