"""A stand-in for ``systemd-run --scope`` in tests: appends its arguments (as one JSON
line) to the file named first, then becomes the command after ``--`` in its place, as
``systemd-run --scope`` does."""

import json
import os
import sys
from pathlib import Path

log, args = sys.argv[1], sys.argv[2:]
with Path(log).open("a", encoding="utf-8") as f:
    f.write(json.dumps(args) + "\n")
command = args[args.index("--") + 1 :]
os.execv(command[0], command)
