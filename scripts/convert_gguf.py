#!/usr/bin/env python3
"""Convert a GGUF language model into the ONNX + tokenizer layout tenbits loads.

    python scripts/convert_gguf.py MODEL.gguf OUT_DIR [--external-data auto|always|never]
                                   [--weights fp32|q4] [--accuracy-level 4|0|1]
                                   [--kv-cache concat|static]
    python scripts/convert_gguf.py --tiny OUT_DIR [--seed 0] [--keep-gguf PATH] [--weights ...]

The entry point scripts/setup.py runs.  The converter itself is the package
scripts/tenbits_convert (its docstring describes the output, the ONNX
contract and when to bump the converter version); ``--tiny`` hands over to
scripts/make_fixtures.py, which makes the test fixtures.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--tiny" in argv:
        argv.remove("--tiny")
        import make_fixtures
        return make_fixtures.main(argv)
    from tenbits_convert.convert import main as convert_main
    return convert_main(argv)


if __name__ == "__main__":
    sys.exit(main())
