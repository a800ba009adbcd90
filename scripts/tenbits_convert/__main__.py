"""``python -m tenbits_convert GGUF_PATH OUT_DIR [options]`` (run from scripts/)."""

import sys

from .convert import main

sys.exit(main())
