"""The console: the password-protected web UI and the access rules of the manager's HTTP
API (seed 001, "User Interface Server and Clients"; SYSTEM.md §1 "console").

Parts, one idea each:

* ``roles.py``     viewer < operator < admin, and which role a request needs
* ``users.py``     console users, argon2 password hashes, the first admin
* ``sessions.py``  server-side sessions with expiry and a CSRF token each
* ``access.py``    the API guard: the manager's bearer token (admin) or a session
* ``audit.py``     every change made through the API, who/when/what
* ``auth.py``      login, logout, users and audit routes
* ``dashboard.py`` the dashboard's figures, computed in the store
* ``explore.py``   the explorer: series, top-N by any field, records, CSV (bound SQL)
* ``pages.py``     HTML pages, static files, offline API docs
* ``app.py``       ``Console``: builds the parts and mounts them on the manager's app
"""
