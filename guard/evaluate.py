"""`python -m guard.evaluate`: the documented command that scores the offline classifier.
The code is in guard.training.evaluate; the runtime (guard.offline) never imports it."""

import sys

from guard.training.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
