"""`make demo`: placeholder until the [dags-demo] issue lands the flagship example DAG."""

from __future__ import annotations

import sys


def main() -> int:
    """Explain what the demo will do, and fail: there is nothing to run yet."""
    print(
        "make demo will: start the local Rivya emulator (or use the real API when RIVYA_API_KEY is"
        " set), run the flagship example DAG with `airflow dags test`, and print where the"
        " generated images landed under ./output.\n"
        "Not available yet: the example DAGs have not landed.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
