"""``python -m netdistill.cli`` (as ``python -m netdistill``), e.g. for
``python -X importtime -m netdistill.cli query --help``."""

from netdistill.cli import main

main()
