"""The ``netdistill`` command. Each command is thin: it parses options, calls the component
that does the work and prints.

* ``common.py`` — the app, consoles, ``--data-dir``, logging, error handling
* ``processes.py`` — check-config, run, manager, gatherer, accounting
* ``data.py`` — query, import, replay, fields
* ``report.py`` — report; ``export.py`` — export (rollup periods to billing)
* ``netdistill.billing.cli`` — invoices (issued invoices and notes)
* ``stages.py`` — stages (status of the running manager's stages, one round now)
* ``netdistill.console.cli`` — user (console users)
* ``netdistill.licence.cli`` — licence (install, list, remove; the vendor's keygen, issue)
"""

from __future__ import annotations

import importlib
import os
import sys

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, err, hoist_global_options, out

# each module registers its commands; --help lists them in this order
for _module in (
    "netdistill.cli.processes",
    "netdistill.cli.data",
    "netdistill.cli.report",
    "netdistill.cli.export",
    "netdistill.billing.cli",
    "netdistill.cli.stages",
    "netdistill.console.cli",
    "netdistill.licence.cli",
):
    importlib.import_module(_module)

__all__ = ["DEFAULT_DATA_DIR", "DataDir", "app", "err", "main", "out"]


def main() -> None:
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    app(hoist_global_options(sys.argv[1:]), prog_name="netdistill")


if __name__ == "__main__":
    main()
