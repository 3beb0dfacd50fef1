"""Command line: `python -m fastgan info` (versions and backends)."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastgan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, and which backends are available and why not")
    args = parser.parse_args(argv)
    if args.command == "info":
        from . import backends

        print(backends.info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
