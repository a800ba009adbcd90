"""``model-rows.onnx``: the decoder graph with logits only at the rows asked for.

The base graph computes the LM head at every input position, but answering
a yes/no question, scoring a prompt or prefilling a generation needs one
row per stream; the head is about a quarter of a small model's prefill and
its output (`batch × seq × vocab` floats) is copied out on every pass.
This graph is derived from ``model.onnx`` by graph surgery, not by a second
conversion:

* a new input ``logit_rows`` (int64, ``[batch, rows]``) names, per stream,
  the positions of this call whose logits are returned;
* the final norm's output goes through ``GatherND(batch_dims=1)`` before
  the LM head, so ``logits`` is ``[batch, rows, vocab]``;
* everything else (the layers, the key/value outputs, the weights, the
  external data file if there is one) is the base graph's, unchanged, so a
  cache filled through either graph is the same.

The Rust side fingerprints a model by ``model.onnx``; this file records the
sha256 of the ``model.onnx`` it was derived from (metadata key
``tenbits.base_sha256``) and is ignored where that does not match. Being a
pure function of ``model.onnx``, it needs no converter version bump:
set-up derives it for cached models that lack it.
"""

from __future__ import annotations

import os
import sys
import tempfile

import onnx
from onnx import TensorProto, helper

from .gguf_io import sha256_file

ROWS_GRAPH_NAME = "model-rows.onnx"
BASE_SHA_KEY = "tenbits.base_sha256"


def rows_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """Edits `model` (the base decoder) in place into the rows graph."""
    g = model.graph
    finals = [n for n in g.node if n.output and n.output[0].startswith("final_ln_out")]
    if len(finals) != 1:
        raise ValueError(f"expected one final norm node, found {len(finals)}")
    normed = finals[0].output[0]
    const_name = "logit_rows_axis"
    g.initializer.append(helper.make_tensor(const_name, TensorProto.INT64, [1], [-1]))
    index = "logit_rows_index"
    gathered = "final_ln_rows"
    new_nodes = [
        helper.make_node("Unsqueeze", ["logit_rows", const_name], [index], name="rows_unsqueeze"),
        helper.make_node("GatherND", [normed, index], [gathered], name="rows_gather",
                         batch_dims=1),
    ]
    # Every reader of the final norm's output (the LM head) reads the
    # gathered rows instead.
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == normed:
                n.input[i] = gathered
    # A tied head reshapes its 2-D product to [batch, seq, vocab] from the
    # shape of `input_ids` (Shape -> Slice -> Concat -> Reshape); here the
    # second dimension is the rows'. Only that chain is followed: other
    # readers of input_ids' shape (masks, positions) keep it.
    producer = {o: n for n in g.node for o in n.output}
    head = producer.get("logits")
    if head is not None and head.op_type == "Reshape":
        concat = producer.get(head.input[1])
        sliced = producer.get(concat.input[0]) if concat is not None else None
        shape = producer.get(sliced.input[0]) if sliced is not None else None
        if shape is None or shape.op_type != "Shape" or list(shape.input) != ["input_ids"]:
            raise ValueError("the tied LM head's output shape is not built from input_ids")
        readers = [m for m in g.node if shape.output[0] in m.input]
        if readers != [sliced]:
            raise ValueError("the logits' Shape node has other readers")
        shape.input[0] = gathered
    at = list(g.node).index(finals[0]) + 1
    for k, node in enumerate(new_nodes):
        g.node.insert(at + k, node)
    g.input.append(helper.make_tensor_value_info("logit_rows", TensorProto.INT64,
                                                 ["batch", "rows"]))
    for out in g.output:
        if out.name == "logits":
            dims = out.type.tensor_type.shape.dim
            dims[1].ClearField("dim_value")
            dims[1].dim_param = "rows"
    return model


def derive(model_dir: str, quiet: bool = False) -> str:
    """Writes ``model_dir/model-rows.onnx`` from ``model_dir/model.onnx``
    (through a temporary file, then renamed); returns its path."""
    base = os.path.join(model_dir, "model.onnx")
    out = os.path.join(model_dir, ROWS_GRAPH_NAME)
    base_sha = sha256_file(base)
    # External weights stay where they are: the new graph refers to the same
    # model.onnx.data by the same offsets.
    model = onnx.load(base, load_external_data=False)
    rows_graph(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = BASE_SHA_KEY, base_sha
    fd, tmp = tempfile.mkstemp(prefix=".model-rows-", suffix=".onnx", dir=model_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString(deterministic=True))
        # mkstemp makes the file private; give it the mode a plain write would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if not quiet:
        print(f"wrote {out} (logits at chosen rows, from model.onnx {base_sha[:16]})",
              file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Derive model-rows.onnx (logits only at the rows "
                                             "asked for) from a converted model's model.onnx.")
    ap.add_argument("model_dir", nargs="+", metavar="MODEL_DIR")
    args = ap.parse_args(argv)
    for d in args.model_dir:
        derive(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
