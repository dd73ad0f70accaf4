"""`python -m guard.train`: the documented command that trains the offline classifier.
The code is in guard.training.train; the runtime (guard.offline) never imports it."""

import sys

from guard.training.train import main

if __name__ == "__main__":
    sys.exit(main())
