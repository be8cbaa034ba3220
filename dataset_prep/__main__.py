"""``python -m dataset_prep`` — see :mod:`dataset_prep.cli`."""

import sys

from dataset_prep.cli import main

if __name__ == "__main__":
    sys.exit(main())
