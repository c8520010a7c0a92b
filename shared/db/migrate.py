"""The migrations' command line: apply every pending one (`shared.db.schema`).

python -m shared.db.migrate
"""

from __future__ import annotations

import sys

from shared.container import Container
from shared.db.schema import migrate

__all__ = ["main"]


def main() -> int:
    container = Container()
    versions = migrate(container.pool)
    print(f"applied {len(versions)} migration(s): {', '.join(versions) or 'none pending'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
