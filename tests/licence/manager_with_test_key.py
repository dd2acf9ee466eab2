"""``python manager_with_test_key.py SCHEME DATA_DIR PUBLIC_KEY_B64``: a real
``netdistill manager`` process that trusts a test's licence key — passed to the
constructor here, in the tests, since the installed product has no way to take one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from netdistill.licence.keys import public_key
from netdistill.manager.serve import serve_manager

if __name__ == "__main__":
    scheme, data_dir, key = sys.argv[1:4]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    serve_manager(Path(scheme), Path(data_dir), licence_keys={"test-key": public_key(key)})
