"""Restore one image with the agent, from Python.

python examples/restore_one.py degraded.png restored.png
"""

from __future__ import annotations

import sys

from restoregraph.api import restore, summarise

if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    result = restore(src, dst, planner="fixed", max_steps=8)
    print(summarise(result))
    print("report:", result.report)
