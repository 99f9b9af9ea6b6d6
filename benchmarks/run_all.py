"""Alias of ``python -m benchmarks`` (the suite runner), kept for old commands.

.venv/bin/python benchmarks/run_all.py [--smoke|--quick|--full]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
