"""python -m fastgan: the paper's application's command line (fastgan.paper.cli)."""
import sys

from fastgan.paper.cli import main

if __name__ == "__main__":
    sys.exit(main())
