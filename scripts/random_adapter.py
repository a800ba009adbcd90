#!/usr/bin/env python3
"""A random LoRA adapter for a model with LoRA inputs (test fixtures).

    python scripts/random_adapter.py MODEL_DIR OUT.onnx_adapter [--seed 0] [--scale 0.05]

Fills every `lora.*` input of MODEL_DIR/model-lora.onnx with seeded normal
values times `scale`, in float16, and writes an ONNX Runtime adapter file.
Needs the `onnx` and `onnxruntime` Python packages.
"""

import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.05)
    args = ap.parse_args(argv)
    graph = onnx.load(os.path.join(args.model_dir, "model-lora.onnx"), load_external_data=False)
    rng = np.random.default_rng(args.seed)
    params = {}
    for i in graph.graph.input:
        if i.name.startswith("lora."):
            shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
            params[i.name] = ort.OrtValue.ortvalue_from_numpy(
                (rng.standard_normal(shape) * args.scale).astype(np.float16))
    if not params:
        print(f"error: {args.model_dir}/model-lora.onnx has no lora.* inputs", file=sys.stderr)
        return 1
    fmt = ort.AdapterFormat()
    fmt.set_adapter_version(1)
    fmt.set_model_version(1)
    fmt.set_parameters(params)
    fmt.export_adapter(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
