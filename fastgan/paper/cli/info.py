"""python -m fastgan info: versions, and which backends run here and why not."""
HELP = "versions, and which backends are available and why not"


def add_arguments(parser):
    pass


def run(args) -> int:
    from fastgan import backends

    print(backends.info())
    return 0
