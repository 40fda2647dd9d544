"""Running an absl entry point so that user mistakes end in one line and a non-zero exit."""

import sys

from absl import app

from faceswap_tf.errors import UserError

EXIT_USER_ERROR = 2


def run(main) -> None:
    """absl's `app.run(main)`, with `UserError` printed as `error: ...` and exit code 2."""

    def guarded(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    app.run(guarded)
