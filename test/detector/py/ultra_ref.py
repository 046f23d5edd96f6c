"""Reference outputs from the pinned ultralytics (8.3.253) for loupe's agreement tests.

Run by test/detector/reference.ts: ARGS (a dict) is prepended by the caller; main() dispatches on
ARGS["op"] and prints one JSON document on stdout. Nothing here writes outside ARGS' temp paths.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np


def op_predict(a):
    """ultralytics predict per image; boxes as [x1, y1, x2, y2, conf, cls] in original pixels."""
    from ultralytics import YOLO

    m = YOLO(a["model"], task="detect")
    kw = a.get("kwargs", {})
    out = {}
    for f in a["files"]:
        r = m.predict(f, verbose=False, **kw)[0]
        out[f] = {"shape": list(r.orig_shape), "boxes": r.boxes.data.tolist()}
    return out


def op_predict_many(a):
    """Several predict jobs in one process (torch/ultralytics import once)."""
    return [op_predict(j) for j in a["jobs"]]


def op_capture(a):
    """The input tensor ultralytics' predictor feeds the model, per image, saved as raw bytes."""
    from ultralytics import YOLO

    m = YOLO(a["model"], task="detect")
    m.predict(a["files"][0], verbose=False, **a.get("kwargs", {}))  # sets up the predictor
    caps = []
    orig = m.predictor.inference

    def cap(im, *args, **kw):
        caps.append(im.cpu().numpy().copy())
        return orig(im, *args, **kw)

    m.predictor.inference = cap
    out = []
    for i, f in enumerate(a["files"]):
        caps.clear()
        m.predict(f, verbose=False, **a.get("kwargs", {}))
        t = caps[0]
        path = os.path.join(a["out"], f"t{i}.bin")
        t.tofile(path)
        out.append({"file": f, "shape": list(t.shape), "dtype": str(t.dtype), "path": path})
    return out


def private_yolo_copy(data_yaml, split, tmp):
    """Symlinked images + copied labels, so ultralytics' .cache files land in our temp dir."""
    import yaml

    d = yaml.safe_load(open(data_yaml))
    root = d["path"]
    os.makedirs(f"{tmp}/images/{split}")
    os.makedirs(f"{tmp}/labels/{split}")
    for f in os.listdir(f"{root}/images/{split}"):
        os.symlink(f"{root}/images/{split}/{f}", f"{tmp}/images/{split}/{f}")
    if os.path.isdir(f"{root}/labels/{split}"):
        for f in os.listdir(f"{root}/labels/{split}"):
            shutil.copy(f"{root}/labels/{split}/{f}", f"{tmp}/labels/{split}/{f}")
    y = f"{tmp}/data.yaml"
    with open(y, "w") as fh:
        yaml.safe_dump({"path": tmp, "train": f"images/{split}", "val": f"images/{split}", "test": f"images/{split}", "names": d["names"]}, fh)
    return y


def op_val(a):
    """ultralytics val (batch 1, exported-model semantics) on one split."""
    from ultralytics import YOLO

    tmp = tempfile.mkdtemp(prefix="uval", dir=a["tmp"])
    y = private_yolo_copy(a["data"], a["split"], tmp)
    m = YOLO(a["model"], task="detect")
    r = m.val(data=y, split=a["split"], imgsz=a["imgsz"], batch=1, plots=False, verbose=False, project=tmp, name="val", **a.get("kwargs", {}))
    b = r.box
    return {
        "map50": float(b.map50),
        "map50_95": float(b.map),
        "precision": float(b.mp),
        "recall": float(b.mr),
        "per_class": [{"cls": int(c), "ap50": float(b.ap50[i]), "ap50_95": float(b.ap[i]), "p": float(b.p[i]), "r": float(b.r[i])} for i, c in enumerate(b.ap_class_index)],
        "instances": int(r.nt_per_class.sum()) if hasattr(r, "nt_per_class") and r.nt_per_class is not None else None,
    }


def op_val_capture(a):
    """The validator's input tensors (uint8 CHW before /255) for the first images of a split."""
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionValidator

    tmp = tempfile.mkdtemp(prefix="uvcap", dir=a["tmp"])
    y = private_yolo_copy(a["data"], a["split"], tmp)
    caps = []
    limit = a["limit"]

    class Enough(Exception):
        pass

    class Capture(DetectionValidator):
        def preprocess(self, batch):
            caps.append((batch["im_file"][0], batch["img"][0].cpu().numpy().copy(), batch["ratio_pad"][0]))
            if len(caps) >= limit:
                raise Enough()  # the rest of the split is not needed
            return super().preprocess(batch)

    m = YOLO(a["model"], task="detect")
    try:
        m.val(data=y, split=a["split"], imgsz=a["imgsz"], batch=1, plots=False, verbose=False, project=tmp, name="val", validator=Capture)
    except Enough:
        pass
    out = []
    for i, (f, t, rp) in enumerate(caps):
        path = os.path.join(a["out"], f"v{i}.bin")
        t.tofile(path)
        out.append({"file": os.path.realpath(f), "shape": list(t.shape), "path": path, "ratio_pad": [list(map(float, rp[0])), list(map(float, rp[1]))]})
    return out


def op_nms(a):
    """utils/nms.py non_max_suppression on synthetic predictions."""
    import torch
    from ultralytics.utils import nms

    out = []
    for c in a["cases"]:
        p = torch.tensor(np.array(c["pred"], dtype=np.float32).reshape(c["shape"]))
        if c.get("fp16"):
            p = p.half()
        r = nms.non_max_suppression(p, c["conf"], c["iou"], c.get("classes"), False, multi_label=c.get("multi", False), max_det=c.get("max_det", 300), end2end=c.get("end2end", False))[0]
        out.append(r.float().tolist())
    return out


def op_metrics(a):
    """match_predictions / ap_per_class / ConfusionMatrix on synthetic per-image data."""
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ConfusionMatrix, ap_per_class, box_iou

    v = DetectionValidator()
    tps, confs, pcls, tcls = [], [], [], []
    names = {i: f"c{i}" for i in range(a["nc"])}
    cm = ConfusionMatrix(names=names)
    for im in a["images"]:
        pb = torch.tensor(im["pboxes"], dtype=torch.float32).reshape(-1, 4)
        pc = torch.tensor(im["pcls"], dtype=torch.float32)
        pf = torch.tensor(im["pconf"], dtype=torch.float32)
        gb = torch.tensor(im["gboxes"], dtype=torch.float32).reshape(-1, 4)
        gc = torch.tensor(im["gcls"], dtype=torch.float32)
        if len(gc) and len(pc):
            tp = v.match_predictions(pc, gc, box_iou(gb, pb)).numpy()
        else:
            tp = np.zeros((len(pc), 10), dtype=bool)
        tps.append(tp)
        confs.append(pf.numpy())
        pcls.append(pc.numpy())
        tcls.append(gc.numpy())
        cm.process_batch({"bboxes": pb, "conf": pf, "cls": pc}, {"bboxes": gb, "cls": gc}, conf=a["conf"])
    tp, conf, pc, tc = (np.concatenate(x, 0) for x in (tps, confs, pcls, tcls))
    res = ap_per_class(tp, conf, pc, tc)
    p, r, f1, ap, classes = res[2], res[3], res[4], res[5], res[6]
    return {"tp": tp.astype(int).tolist(), "p": p.tolist(), "r": r.tolist(), "ap": ap.tolist(), "classes": classes.tolist(), "cm": cm.matrix.tolist()}


def op_resize(a):
    """cv2.resize INTER_LINEAR of random images, saved raw."""
    import cv2

    rng = np.random.default_rng(a["seed"])
    out = []
    for i, (sw, sh, dw, dh) in enumerate(a["sizes"]):
        img = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        if i % 2:
            img = cv2.GaussianBlur(img, (5, 5), 0)
        dst = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR)
        img.tofile(os.path.join(a["out"], f"r{i}.src"))
        dst.tofile(os.path.join(a["out"], f"r{i}.dst"))
        out.append({"src": os.path.join(a["out"], f"r{i}.src"), "dst": os.path.join(a["out"], f"r{i}.dst"), "size": [sw, sh, dw, dh]})
    return out


def _bmp(rgb, bpp, masks=None, top_down=False):
    """A BMP file (40-byte header) of an RGB array: 4-bit (16-colour palette), 16, 24 or 32 bits."""
    import struct

    h, w, _ = rgb.shape
    stride = (bpp * w + 31) // 32 * 4
    pal = b""
    if bpp == 4:
        pal = b"".join(bytes((int(v) // 2, int(v), 255 - int(v), 0)) for v in np.linspace(0, 255, 16))
        idx = (rgb[..., 1].astype(np.int32) * 16 // 256).astype(np.uint8)
    rows = []
    for y in range(h):
        r = rgb[y]
        if bpp == 4:
            q = idx[y]
            q = np.concatenate([q, np.zeros(w % 2, np.uint8)])
            line = ((q[0::2] << 4) | q[1::2]).astype(np.uint8).tobytes()
        elif bpp == 16:
            R, G, B = (r[:, 0].astype(np.uint16), r[:, 1].astype(np.uint16), r[:, 2].astype(np.uint16))
            v = ((R >> 3) << 11) | ((G >> 2) << 5) | (B >> 3) if masks else ((R >> 3) << 10) | ((G >> 3) << 5) | (B >> 3)
            line = v.astype("<u2").tobytes()
        elif bpp == 24:
            line = np.ascontiguousarray(r[:, ::-1]).tobytes()
        else:
            line = np.concatenate([r[:, ::-1], np.full((w, 1), 0x5A, np.uint8)], axis=1).tobytes()
        rows.append(line + b"\0" * (stride - len(line)))
    if not top_down:
        rows.reverse()
    comp = 3 if masks else 0
    extra = struct.pack("<3I", *masks) if masks else b""
    off = 14 + 40 + len(extra) + len(pal)
    data = b"".join(rows)
    head = struct.pack("<2sIHHI", b"BM", off + len(data), 0, 0, off)
    dib = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, comp, len(data), 2835, 2835, 16 if bpp == 4 else 0, 0)
    return head + dib + extra + pal + data


def op_images(a):
    """Odd inputs made from a dataset image: grayscale, RGBA PNG (varying alpha), EXIF-rotated JPEGs,
    16-bit PNG, palette PNG; plus what cv2.imdecode(IMREAD_COLOR) makes of each (RGB raw)."""
    import cv2
    from PIL import Image

    src = a["src"]
    d = a["out"]
    base = Image.open(src).convert("RGB")
    made = {}
    g = base.convert("L")
    g.save(f"{d}/gray.png")
    g.save(f"{d}/gray.jpg", quality=92)
    rgba = np.array(base.convert("RGBA"))
    rgba[..., 3] = (np.arange(rgba.shape[1])[None, :] * 7) % 256
    Image.fromarray(rgba).save(f"{d}/rgba.png")
    base.convert("P").save(f"{d}/palette.png")
    a16 = (np.array(base).astype(np.uint16) * 257 + np.arange(base.size[0], dtype=np.uint16)[None, :, None]).astype(np.uint16)
    cv2.imwrite(f"{d}/rgb16.png", a16[..., ::-1])
    for o in (3, 6, 8):
        exif = base.getexif()
        exif[0x0112] = o
        base.save(f"{d}/exif{o}.jpg", quality=90, exif=exif.tobytes())
    # BMP as machine-vision tools write it: PIL's (24-bit, 8-bit grey and palette, 1-bit, 32-bit),
    # plus hand-made headers PIL does not write (4-bit, 16-bit 5-5-5 and 5-6-5, top-down, bit fields).
    base.save(f"{d}/rgb.bmp")
    g.save(f"{d}/gray.bmp")
    base.convert("P").save(f"{d}/palette.bmp")
    base.convert("1").save(f"{d}/mono.bmp")
    base.convert("RGBA").save(f"{d}/rgba.bmp")
    rgb = np.array(base)
    bmps = ["rgb.bmp", "gray.bmp", "palette.bmp", "mono.bmp", "rgba.bmp"]
    for name, kw in (("pal4.bmp", {"bpp": 4}), ("rgb555.bmp", {"bpp": 16}), ("rgb565.bmp", {"bpp": 16, "masks": (0xF800, 0x07E0, 0x001F)}),
                     ("topdown.bmp", {"bpp": 24, "top_down": True}), ("bgrx.bmp", {"bpp": 32, "masks": (0xFF0000, 0xFF00, 0xFF)})):
        with open(f"{d}/{name}", "wb") as f:
            f.write(_bmp(rgb, **kw))
        bmps.append(name)
    for name in ("gray.png", "gray.jpg", "rgba.png", "palette.png", "rgb16.png", "exif3.jpg", "exif6.jpg", "exif8.jpg", *bmps):
        im = cv2.imdecode(np.fromfile(f"{d}/{name}", np.uint8), cv2.IMREAD_COLOR)
        np.ascontiguousarray(im[..., ::-1]).tofile(f"{d}/{name}.rgb")
        made[name] = {"path": f"{d}/{name}", "rgb": f"{d}/{name}.rgb", "width": int(im.shape[1]), "height": int(im.shape[0])}
    return made


def main():
    os.environ.setdefault("YOLO_OFFLINE", "true")
    res = globals()["op_" + ARGS["op"]](ARGS)  # noqa: F821 (ARGS is prepended by the caller)
    sys.stdout.write("\n@@JSON@@" + json.dumps(res) + "\n")


main()
