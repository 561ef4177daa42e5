"""`python -m maillage_devstack` is the `maillage` command."""

import sys

from maillage_devstack.cli import main

if __name__ == "__main__":
    sys.exit(main())
