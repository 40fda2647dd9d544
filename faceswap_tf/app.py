"""Running an absl entry point so that user mistakes end in one line and a non-zero exit.

Importing this module starts holding back TensorFlow's start-up noise (`quiet`), so every
entry module imports it before anything that imports TensorFlow.
"""

import gc
import os
import sys

from faceswap_tf import quiet

quiet.install()

from absl import app  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from faceswap_tf.errors import UserError  # noqa: E402

EXIT_USER_ERROR = 2


def run(main) -> None:
    """absl's `app.run(main)`, with `UserError` printed as `error: ...` and exit code 2.
    `--verbosity=1` (`-v 1`) also shows TensorFlow's start-up log."""
    # Everything imported by now (TensorFlow's modules are most of it) lives until the exit:
    # frozen, the collector no longer walks it, in a run or at the exit (measured: a smoke
    # training command's exit 1.7-1.8 s without this, 0.6 s with it).
    gc.freeze()

    def guarded(argv):
        # absl has set its logging verbosity from --verbosity (-v) by now: no FLAGS read here.
        quiet.release(verbose=absl_logging.get_verbosity() >= 1)
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            if err.exit_at_once:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_USER_ERROR)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    app.run(guarded)
