"""How a command reports an `OSError` (a full disk while writing, a file it cannot read)."""

import errno
import sys

from catface_keras.atomic_files import describe_write_error

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def report_os_error(program, error, out, unchanged):
    """Prints `PROGRAM: error: MESSAGE; UNCHANGED` to stderr and returns exit code 2.

    A full disk or quota reads `no space left on the device while writing FILE`
    (`error.filename`, else `out`); any other error as Python states it (with
    its file name). `unchanged` tells the user what they still have,
    e.g. "earlier results in runs/eval are unchanged" (writes are atomic).
    """
    if error.errno in DISK_FULL:
        message = describe_write_error(error, error.filename or out)
    else:
        message = str(error)
    print(f"{program}: error: {message}; {unchanged}", file=sys.stderr)
    return 2
