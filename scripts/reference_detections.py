#!/usr/bin/env python3
"""Reference detections for dumpwatch's detector test, computed independently of the Rust code
with Python onnxruntime + numpy + Pillow, using the same letterbox (scale to fit 640x640 keeping
the aspect ratio, bilinear, centred on grey 114, RGB, NCHW float 0..1) and the same decoding
(best class per anchor, score >= 0.25, class-aware NMS at IoU 0.45, boxes back to source pixels,
clamped).

    scripts/reference_detections.py            # writes tests/fixtures/reference_detections.json

Creates a virtual environment in target/pyref with onnxruntime==1.31.1, numpy and pillow on
first use. Needs scripts/setup.sh (model) and Debian's darknet package (photos).
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "pyref")
PHOTOS = ["dog.jpg", "person.jpg", "horses.jpg", "kite.jpg"]
PHOTO_DIR = "/usr/share/darknet/data"
MODEL = os.path.join(ROOT, "models", "yolov12n.onnx")
OUT = os.path.join(ROOT, "tests", "fixtures", "reference_detections.json")
WRONG_SHAPE = os.path.join(ROOT, "tests", "fixtures", "wrong_output_shape.onnx")
DYNAMIC_BATCH = os.path.join(ROOT, "tests", "fixtures", "tiny_dynamic_batch_detector.onnx")
CONF, IOU, SIZE, PAD = 0.25, 0.45, 640, 114


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "onnxruntime==1.31.1", "numpy", "pillow", "onnx"], check=True)
    os.execv(python, [python, *sys.argv])


def letterbox(img):
    import numpy as np
    from PIL import Image

    w, h = img.size
    scale = min(SIZE / w, SIZE / h)
    iw = min(max(round(w * scale), 1), SIZE)
    ih = min(max(round(h * scale), 1), SIZE)
    px, py = (SIZE - iw) // 2, (SIZE - ih) // 2
    resized = img.resize((iw, ih), Image.BILINEAR)
    canvas = np.full((SIZE, SIZE, 3), PAD, dtype=np.uint8)
    canvas[py:py + ih, px:px + iw] = np.asarray(resized)
    tensor = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    return tensor, scale, px, py


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def decode(out, scale, px, py, w, h, names):
    import numpy as np

    out = out[0]  # [84, 8400]
    scores = out[4:]
    best = scores.argmax(axis=0)
    best_score = scores.max(axis=0)
    keep = np.nonzero(best_score >= CONF)[0]
    order = keep[np.argsort(-best_score[keep], kind="stable")]
    kept = []
    for a in order:
        cx, cy, bw, bh = out[:4, a]
        box = [
            min(max((cx - bw / 2 - px) / scale, 0.0), w),
            min(max((cy - bh / 2 - py) / scale, 0.0), h),
            min(max((cx + bw / 2 - px) / scale, 0.0), w),
            min(max((cy + bh / 2 - py) / scale, 0.0), h),
        ]
        if (box[2] - box[0]) * (box[3] - box[1]) <= 0:
            continue
        c = int(best[a])
        if any(k["class_id"] == c and iou(k["bbox"], box) > IOU for k in kept):
            continue
        kept.append({"class_id": c, "class": names[c], "score": float(best_score[a]), "bbox": [float(v) for v in box]})
    return kept


def write_wrong_shape_model():
    """A tiny valid ONNX model whose output is [1, 3] (a classifier, not a detector), for the
    test that an unexpected shape is refused with a clear error."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["output0"])],
        "wrong_shape",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, WRONG_SHAPE)


def write_dynamic_batch_model():
    """A tiny detector with a dynamic batch dimension: input [N, 3, 32, 32], output [N, 6, 16]
    in the YOLO v8 layout with 2 classes. Each of the 16 anchors is an 8x8 cell; its box and
    scores are the cell's mean R, G, B values, so detections depend on each picture's content and
    batched runs can be compared with single ones."""
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, 3, 16])
    graph = helper.make_graph(
        [
            helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
            helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
            helper.make_node("Concat", ["flat", "flat"], ["output0"], axis=1),
        ],
        "tiny_dynamic_batch_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, 16])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "names", "{0: 'green', 1: 'blue'}"
    onnx.checker.check_model(model)
    onnx.save(model, DYNAMIC_BATCH)


def main():
    ensure_venv()
    write_wrong_shape_model()
    write_dynamic_batch_model()
    import ast

    import onnxruntime as ort
    from PIL import Image

    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    names = ast.literal_eval(session.get_modelmeta().custom_metadata_map["names"])
    result = {"model_sha256": None, "confidence": CONF, "iou": IOU, "images": {}}
    import hashlib

    with open(MODEL, "rb") as f:
        result["model_sha256"] = hashlib.sha256(f.read()).hexdigest()
    for photo in PHOTOS:
        img = Image.open(os.path.join(PHOTO_DIR, photo)).convert("RGB")
        tensor, scale, px, py = letterbox(img)
        (out,) = session.run(None, {"images": tensor})
        dets = decode(out, scale, px, py, img.size[0], img.size[1], names)
        result["images"][photo] = {"size": list(img.size), "detections": dets}
        print(f"{photo}: " + ", ".join(f"{d['class']} {d['score']:.3f}" for d in dets))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
