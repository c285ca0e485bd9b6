"""`python -m skiff.dataplane`: the data-plane process (main.py)."""

import sys

from skiff.dataplane.main import main

if __name__ == "__main__":
    sys.exit(main())
