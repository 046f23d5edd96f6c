"""loupe's int8 quantizer: onnxruntime static quantization of an ultralytics YOLOv8 detection export.

Driven by cloud/quantize/quantize.ts (`loupe quantize`), which has already written the calibration
inputs: the exact tensors loupe's detector feeds the model (decode, letterbox, /255, CHW float32),
one raw little-endian file per image, listed in DIR/manifest.json as {"files": [...], "dims": [[1,3,h,w], ...]}.

    python quantize.py --model M.onnx --tensors DIR --out OUT.onnx [--source-sha256 HEX]

What it makes (onnxruntime 1.20 `quantize_static`):
  - QDQ format, int8 weights per output channel (symmetric), uint8 activations (asymmetric),
    MinMax calibration over every calibration image;
  - the detection head (the last `model.N` module of an ultralytics export) is quantized only in
    its learned convolutions (cv2.*, cv3.*), and nodes outside the modules are not quantized
    (nms=True exports are refused by the caller: the calibrator fails on their empty NMS
    tensors); everything else in the head stays float: the SiLU
    activations, the concatenations and reshapes, the DFL softmax and its fixed 16-bin
    expectation conv, the box decode and the class sigmoid. Quantizing the decode part of the
    head collapses the scores (measured: mAP50 0 on metal-tags), and uint8 steps on the DFL's
    softmax probabilities cost box accuracy (measured: -0.009 mAP50 on metal-tags);
  - the input metadata (names, imgsz, stride, ...) is kept, and `loupe_quantization` is added
    (a JSON record of the method and of the calibration set's digest; nothing time-dependent,
    so the same model and calibration tensors give a byte-identical file).

Prints one `LOUPE_EVENT {json}` line per calibration image and one at the end, and a
`LOUPE_ERROR {"code", "message"}` line (exit status 2) for input it refuses.
"""
import argparse
import hashlib
import json
import logging
import os
import re
import sys


def event(**kw):
    sys.stdout.write("LOUPE_EVENT " + json.dumps(kw, sort_keys=True) + "\n")
    sys.stdout.flush()


def refuse(code, message):
    sys.stdout.write("LOUPE_ERROR " + json.dumps({"code": code, "message": message}) + "\n")
    sys.stdout.flush()
    sys.exit(2)


MODULE = re.compile(r"(?:^|/)model\.(\d+)/")


def nodes_to_keep_float(graph):
    """Names of the nodes that stay float: everything but the modules before the detection head
    and the head's learned Convs (cv2.*, cv3.*). The head is the last `model.N` module of the
    export (`/model.N/...`; `/model/model.N/...` when the export wraps the model)."""
    modules = [int(m.group(1)) for n in graph.node for m in [MODULE.search(n.name)] if m]
    if not modules:
        refuse(
            "QUANTIZE_UNKNOWN_GRAPH",
            "no ultralytics module names (/model.N/...) in the graph, so the detection head cannot be found; "
            "quantize a YOLOv8 ONNX export made by ultralytics",
        )
    head = max(modules)
    keep = []
    for n in graph.node:
        m = MODULE.search(n.name)
        index = int(m.group(1)) if m else None
        quantized = index is not None and (index < head or (index == head and n.op_type == "Conv" and "/dfl/" not in n.name))
        if not quantized:
            keep.append(n.name)
    return f"model.{head}", keep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tensors", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--source-sha256", default="")
    a = ap.parse_args()

    import numpy as np
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    # quantize_static warns that the model was not pre-processed (symbolic shape inference and
    # ORT graph optimisation): the exported YOLOv8 graph already has static shapes, and an
    # optimised graph would carry onnxruntime-specific fused nodes into the file the device runs.
    logging.getLogger().setLevel(logging.ERROR)

    with open(os.path.join(a.tensors, "manifest.json")) as fh:
        manifest = json.load(fh)
    files = [os.path.join(a.tensors, f) for f in manifest["files"]]
    dims = manifest["dims"]
    n = len(files)
    if n == 0:
        refuse("QUANTIZE_NO_IMAGES", "no calibration images")

    model = onnx.load(a.model)
    input_name = model.graph.input[0].name
    head, keep_float = nodes_to_keep_float(model.graph)

    calib = hashlib.sha256()

    class Reader(CalibrationDataReader):
        """The calibration tensors in order; supports the strided ranges quantize_static asks for."""

        def __init__(self):
            self.i = 0
            self.end = n
            self.seen = 0

        def __len__(self):
            return n

        def set_range(self, start_index, end_index):
            self.i = start_index
            self.end = end_index

        def get_next(self):
            if self.i >= self.end:
                return None
            raw = np.fromfile(files[self.i], dtype="<f4")
            x = raw.reshape(dims[self.i])
            calib.update(raw.tobytes())
            self.i += 1
            self.seen += 1
            event(event="calibrate", done=self.seen, total=n)
            return {input_name: x}

    # onnxruntime 1.20's CalibMaxIntermediateOutputs drops collected data without merging it, so
    # memory is bounded with strided calibration instead (ranges merged per stride, same result).
    stride = max(d for d in range(1, 9) if n % d == 0)
    tmp_out = a.out + ".q.tmp"
    quantize_static(
        a.model,
        tmp_out,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=keep_float,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"CalibStridedMinMax": stride, "ActivationSymmetric": False, "WeightSymmetric": True},
    )

    q = onnx.load(tmp_out)
    os.remove(tmp_out)
    record = {
        "tool": f"onnxruntime.quantization {onnxruntime.__version__} quantize_static",
        "format": "QDQ",
        "weights": "int8, per output channel, symmetric",
        "activations": "uint8, per tensor, asymmetric",
        "calibration": {"method": "MinMax", "images": n, "sha256": calib.hexdigest(), "preprocessing": "loupe detector (predict letterbox)"},
        "float_nodes": {"head": head, "count": len(keep_float), "rule": "all but the modules before the head and the head's learned Convs (cv2.*, cv3.*)"},
        "source_sha256": a.source_sha256,
    }
    props = [p for p in q.metadata_props if p.key != "loupe_quantization"]
    del q.metadata_props[:]
    q.metadata_props.extend(props)
    q.metadata_props.add(key="loupe_quantization", value=json.dumps(record, sort_keys=True))
    onnx.save(q, a.out)
    ops = {}
    for node in q.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    event(event="done", quantize_linear=ops.get("QuantizeLinear", 0), dequantize_linear=ops.get("DequantizeLinear", 0), float_nodes=len(keep_float), onnxruntime=onnxruntime.__version__)


if __name__ == "__main__":
    main()
