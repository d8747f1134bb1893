"""The `catface` console script: starts the CLI without loading TensorFlow up front.

`import catface_keras` registers every saved class with Keras, which loads TensorFlow
(seconds). The command needs neither for `catface --help` or for refusing a bad argument,
and its commands import the models they load (which registers them). When this module is
imported before the package, `catface_keras/__init__.py` leaves the registration out.

    catface --help
    python -m catface_command --help
"""

import sys

# `python -m catface_command` runs this file as `__main__`: mark the start under its own
# name too, which is what the package looks for.
sys.modules.setdefault("catface_command", sys.modules[__name__])


def main(argv=None):
    from catface_keras.cli.main import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
