"""A replica that takes one of the API's shared slots and holds it until it is killed
(for the test that a crashed replica's slot comes back after its lease).

    python tests/limits_child.py DB LEASE_S

Prints "HELD" once the slot is taken; its keeper renews the lease while it lives.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moderation.shared_limits import SharedLimits  # noqa: E402


def main(db: str, lease_s: float) -> None:
    limits = SharedLimits.connect(db, None, 1, lease_s=lease_s)
    with limits.slot():
        print("HELD", flush=True)
        threading.Event().wait()  # until the test kills this process


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
