#!/usr/bin/env python3
"""loupe's YOLOv8 trainer: the field's own tool (ultralytics), run fully offline.

One script for both places it runs:
  * locally, driven by loupe's TypeScript trainer backend (`loupe train`), with arguments;
  * as a SageMaker training job (same container), reading hyperparameters and the
    /opt/ml/input/data/<channel> folders and writing /opt/ml/model.

It prints machine-readable lines for its driver:
  LOUPE_EVENT {json}     progress (start, batch, epoch, export, done) for the TypeScript backend
  LOUPE_ERROR {json}     a refused input, with `code` and `message`, then exit status 2
  loupe-metric epoch=N ... plain `key=value` lines matched by SageMaker MetricDefinitions

No download is ever attempted: ultralytics runs with YOLO_OFFLINE/YOLO_AUTOINSTALL off, its plot
font local (DejaVu Sans in place of the Arial download, so plots draw offline), AMP's online self-check skipped, and only
local base models (a `yolov8?.yaml` architecture or an existing `.pt`) accepted. With
LOUPE_FORBID_NETWORK=1 an audit hook refuses (and reports) any non-loopback connection.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

SM_ROOT = Path(os.environ.get("SM_ROOT", "/opt/ml"))
BASE_ARCHS = re.compile(r"^yolov8[nslmx]?\.yaml$")
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130


def emit(event: str, **fields) -> None:
    try:
        print("LOUPE_EVENT " + json.dumps({"event": event, **fields}, default=float), flush=True)
    except BrokenPipeError:
        if not driven_by_loupe():
            raise
        detach_output()  # the driver is gone (see "Stopping with the driver"); nobody reads this any more


class Refused(Exception):
    """A bad input: reported as LOUPE_ERROR with a stable code, exit status 2."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Offline guards (set up before ultralytics is imported: it reads the environment at import).


def network_guard() -> None:
    """Refuse every non-loopback connection and name it, so tests can prove offline-ness."""
    import ipaddress

    def is_local(host) -> bool:
        if host in (None, "", "localhost"):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def hook(event, args):
        if event == "socket.connect":
            addr = args[1]
            host = addr[0] if isinstance(addr, tuple) else None
            if isinstance(addr, tuple) and not is_local(host):
                print("LOUPE_EVENT " + json.dumps({"event": "network_attempt", "address": str(addr)}), flush=True)
                raise ConnectionRefusedError(f"loupe: network access refused (offline trainer): {addr}")
        elif event == "socket.getaddrinfo":
            host = args[0]
            if isinstance(host, bytes):
                host = host.decode()
            if not is_local(host):
                import traceback

                where = "".join(traceback.format_stack(limit=30)[:-1])
                print("LOUPE_EVENT " + json.dumps({"event": "network_attempt", "address": str(host), "stack": where}), flush=True)
                raise OSError(f"loupe: name lookup refused (offline trainer): {host}")

    sys.addaudithook(hook)


def offline_environment(config_dir: Path) -> None:
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "true")
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    # ultralytics checks for Arial fonts whenever it reads a data set and downloads them if
    # absent; matplotlib's bundled DejaVu Sans stands in (fonts only matter for plots).
    try:
        import matplotlib

        dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)  # ultralytics' USER_CONFIG_DIR
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            target = config_dir / "Ultralytics" / name
            if dejavu.exists() and not target.exists():
                shutil.copyfile(dejavu, target)
    except Exception as e:  # matplotlib missing means ultralytics is missing too: reported later
        print(f"loupe: font setup skipped: {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Inputs


def read_yaml(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def names_list(names) -> list[str]:
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in (names or [])]


def split_dirs(data: dict, root: Path, split: str) -> list[Path]:
    entry = data.get(split)
    if entry is None:
        return []
    entries = entry if isinstance(entry, list) else [entry]
    return [(root / e) if not Path(e).is_absolute() else Path(e) for e in entries]


IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def count_split(data: dict, root: Path, split: str) -> tuple[int, int]:
    """Images and boxes of a split (folder or list-file form)."""
    images: list[Path] = []
    for d in split_dirs(data, root, split):
        if d.is_dir():
            images += [p for p in d.rglob("*") if p.suffix.lower() in IMG_EXT]
        elif d.is_file() and d.suffix == ".txt":
            images += [Path(line.strip()) if Path(line.strip()).is_absolute() else root / line.strip()
                       for line in d.read_text().splitlines() if line.strip()]
    boxes = 0
    for img in images:
        parts = list(img.parts)
        if "images" in parts:
            i = len(parts) - 1 - parts[::-1].index("images")
            parts[i] = "labels"
        label = Path(*parts).with_suffix(".txt")
        if label.exists():
            boxes += sum(1 for line in label.read_text().splitlines() if line.strip())
    return len(images), boxes


def prepare_data(data_yaml: Path, work: Path) -> tuple[Path, list[str], dict]:
    """Validate the data set and write a copy of data.yaml with an absolute `path`."""
    if not data_yaml.exists():
        raise Refused("DATA_MISSING", f"{data_yaml}: data set description not found")
    data = read_yaml(data_yaml)
    names = names_list(data.get("names"))
    if not names:
        raise Refused("DATA_NO_NAMES", f"{data_yaml}: `names` is missing or empty")
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    for split in ("train", "val"):
        if data.get(split) is None:
            raise Refused("DATA_NO_SPLIT", f"{data_yaml}: split `{split}` is not defined")
    counts = {s: count_split(data, root, s) for s in ("train", "val", "test")}
    if counts["train"][0] == 0:
        raise Refused("DATA_EMPTY", f"{data_yaml}: the train split has no images (looked in {split_dirs(data, root, 'train')})")
    if counts["train"][1] == 0:
        raise Refused("DATA_NO_LABELS", f"{data_yaml}: the train split has {counts['train'][0]} images but no labelled boxes")
    if counts["val"][0] == 0:
        raise Refused("DATA_EMPTY", f"{data_yaml}: the val split has no images")
    out = dict(data)
    out["path"] = str(root)
    out["names"] = {i: n for i, n in enumerate(names)}
    work.mkdir(parents=True, exist_ok=True)
    resolved = work / "data.yaml"
    import yaml

    resolved.write_text(yaml.safe_dump(out, sort_keys=False))
    return resolved, names, {s: {"images": c[0], "boxes": c[1]} for s, c in counts.items()}


def check_base(base: str, names: list[str]) -> None:
    p = Path(base)
    if p.suffix == ".pt":
        if not p.exists():
            raise Refused("BASE_UNKNOWN", f"{base}: base checkpoint not found (loupe never downloads weights; give a local .pt or yolov8n.yaml)")
        import torch

        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as e:
            raise Refused("BASE_UNREADABLE", f"{base}: not a readable YOLOv8 checkpoint ({e})")
        model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
        if model is None or not hasattr(model, "names"):
            raise Refused("BASE_UNREADABLE", f"{base}: checkpoint holds no YOLO model")
        task = getattr(model, "task", "detect")
        if task != "detect":
            raise Refused("BASE_WRONG_TASK", f"{base}: checkpoint task is {task!r}, loupe trains detection models")
        base_names = names_list(model.names)
        if base_names != names:
            raise Refused(
                "CLASS_MISMATCH",
                f"{base}: the checkpoint's classes {base_names} differ from the data set's {names}; "
                "warm-starting would silently re-map classes. Start from yolov8n.yaml or fix the data set's names.",
            )
    elif p.suffix in (".yaml", ".yml"):
        if not p.exists() and not BASE_ARCHS.match(p.name):
            raise Refused("BASE_UNKNOWN", f"{base}: unknown base model (expected yolov8[n|s|m|l|x].yaml, a model YAML file or a local .pt)")
    else:
        raise Refused("BASE_UNKNOWN", f"{base}: unknown base model (expected yolov8[n|s|m|l|x].yaml, a model YAML file or a local .pt)")


# ---------------------------------------------------------------------------------------------
# Hyperparameters that differ between a cold start and a warm start


def schedule(args) -> dict:
    """Optimizer, learning rate, warmup and mosaic schedule for this run.

    Cold start (a yolov8?.yaml): ultralytics' own defaults (optimizer 'auto', 3 warmup epochs,
    mosaic off for the last 10 epochs), which is how the shipped model was trained.

    Warm start (a .pt checkpoint), where those defaults fit badly:
      * optimizer 'auto' ignores lr0 and, for small data sets, picks AdamW at
        lr = 0.002 * 5 / (4 + nc): the peak rate of a from-scratch run, about 70x the rate the
        shipped model ended on (2.8e-5). Warm starts use AdamW at lr0 = 2e-4 instead (a tenth of
        that peak), decaying linearly to lr0 * lrf as usual.
      * warmup lasts max(warmup_epochs * batches, 100) iterations (about 9 epochs on 163 images at
        batch 16), ramping non-bias rates up from 0 and momentum from 0.8: a short fine-tune spends
        all its epochs warming up towards that from-scratch peak. The weights are already in a good
        basin, so warm starts use warmup_epochs = 0 (ultralytics then skips warmup entirely).
      * close_mosaic counts from the end (mosaic off when epoch == epochs - close_mosaic), so a run
        of fewer than 10 epochs would keep mosaic on throughout, unlike the end of the run that
        produced the checkpoint. Warm starts use close_mosaic = min(10, epochs): a short fine-tune
        sees the same un-mosaicked images the checkpoint finished on and val measures.
    Measured from the shipped model (metal-tags test split, 480 px, CPU; shipped: mAP50 0.898,
    mAP50-95 0.625): 2 epochs with ultralytics' defaults 0.891 / 0.596, 2 epochs with this
    schedule 0.903 / 0.600, 3 epochs with it 0.920 / 0.617. Short runs barely separate the two
    (the defaults' warmup keeps their rate low); the schedule matters for longer fine-tunes, which
    the defaults would warm up to the from-scratch peak rate (not measured here: CPU time).
    Explicit --optimizer/--lr0/--warmup-epochs/--close-mosaic always win.
    """
    warm = Path(args.model).suffix == ".pt"
    chosen = {
        "optimizer": args.optimizer or ("AdamW" if warm else "auto"),
        "warmup_epochs": args.warmup_epochs if args.warmup_epochs is not None else (0.0 if warm else 3.0),
        "close_mosaic": args.close_mosaic if args.close_mosaic is not None else (min(10, args.epochs) if warm else 10),
    }
    if args.lr0 is not None:
        chosen["lr0"] = args.lr0
    elif warm and chosen["optimizer"] != "auto":
        chosen["lr0"] = 0.0002
    # With optimizer 'auto' ultralytics ignores lr0; say so rather than pretend it applies.
    if chosen["optimizer"] == "auto" and "lr0" in chosen:
        raise Refused("BAD_HYPERPARAMETER", "--lr0 has no effect with optimizer 'auto' (ultralytics picks its own rate); also give --optimizer")
    return {"warm_start": warm, **chosen}


# ---------------------------------------------------------------------------------------------
# Training


def train(args) -> dict:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    data_yaml, names, counts = prepare_data(Path(args.data).resolve(), work)
    check_base(args.model, names)
    schedule(args)  # refuses contradictory hyperparameters before the slow imports

    import torch
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False, "hub": False, "runs_dir": str(work / "runs"), "datasets_dir": str(work),
                     **{k: False for k in ("clearml", "comet", "dvc", "mlflow", "neptune", "raytune", "tensorboard", "wandb")}})
    if args.amp:
        # AMP's self-check loads yolo11n.pt from the hub; skip it (AMP is sound on modern GPUs).
        import ultralytics.engine.trainer as trainer_mod

        trainer_mod.check_amp = lambda model: True

    device = args.device or ("0" if torch.cuda.is_available() else "cpu")
    hyp = schedule(args)
    emit("start", epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, base=args.model, names=names,
         counts=counts, device=device, ultralytics=ultralytics.__version__, torch=torch.__version__, hyp=hyp)

    model = YOLO(args.model, task="detect")
    epoch_times: list[float] = []
    t_epoch = [time.time()]

    def on_train_epoch_start(trainer):
        t_epoch[0] = time.time()

    def on_fit_epoch_end(trainer):
        if len(epoch_times) >= trainer.epoch + 1:
            return  # final validation of best.pt re-fires this callback; its numbers go to metrics.json
        dt = time.time() - t_epoch[0]
        epoch_times.append(dt)
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss is not None else {}
        m = trainer.metrics or {}
        rec = {
            "epoch": trainer.epoch + 1,
            "epochs": trainer.epochs,
            "seconds": round(dt, 3),
            "box_loss": float(losses.get("train/box_loss", float("nan"))),
            "cls_loss": float(losses.get("train/cls_loss", float("nan"))),
            "dfl_loss": float(losses.get("train/dfl_loss", float("nan"))),
            "precision": float(m.get("metrics/precision(B)", 0.0)),
            "recall": float(m.get("metrics/recall(B)", 0.0)),
            "map50": float(m.get("metrics/mAP50(B)", 0.0)),
            "map50_95": float(m.get("metrics/mAP50-95(B)", 0.0)),
        }
        emit("epoch", **rec)
        print("loupe-metric " + " ".join(f"{k}={v}" for k, v in rec.items()), flush=True)

    last_batch = [0.0]

    def on_train_batch_end(trainer):
        # per-batch progress like ultralytics' own bar, at most 4 lines a second for the driver
        nb = len(trainer.train_loader) if trainer.train_loader is not None else 0
        i = getattr(trainer, "_loupe_batch", 0) + 1
        trainer._loupe_batch = i
        now = time.time()
        if i < nb and now - last_batch[0] < 0.25:
            return
        last_batch[0] = now
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss is not None else {}
        emit("batch", epoch=trainer.epoch + 1, epochs=trainer.epochs, batch=i, batches=nb,
             box_loss=float(losses.get("train/box_loss", float("nan"))),
             cls_loss=float(losses.get("train/cls_loss", float("nan"))),
             dfl_loss=float(losses.get("train/dfl_loss", float("nan"))))

    def on_train_epoch_start_batches(trainer):
        trainer._loupe_batch = 0

    model.add_callback("on_train_epoch_start", on_train_epoch_start)
    model.add_callback("on_train_epoch_start", on_train_epoch_start_batches)
    model.add_callback("on_train_batch_end", on_train_batch_end)
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)

    t0 = time.time()
    interrupted = False
    try:
        model.train(
            data=str(data_yaml),
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            patience=args.patience,
            seed=args.seed,
            deterministic=True,
            time=(args.time_minutes / 60.0) if args.time_minutes else None,
            device=device,
            workers=args.workers,
            project=str(work / "runs"),
            name="train",
            exist_ok=True,
            # Plots (results.png, curves, confusion matrices, batch mosaics) draw offline: the
            # font ultralytics would download is the local DejaVu copy (offline_environment).
            plots=not args.no_plots,
            cache=args.cache or False,
            amp=bool(args.amp),
            pretrained=False,
            verbose=True,
            val=True,
            **{k: v for k, v in hyp.items() if k != "warm_start"},
        )
    except KeyboardInterrupt:
        interrupted = True
    except BrokenPipeError:
        # the driver died and its pipe broke before its death signal was handled: the same stop
        if not driven_by_loupe():
            raise
        detach_output()
        interrupted = True
    train_seconds = time.time() - t0

    run_dir = work / "runs" / "train"
    weights = run_dir / "weights"
    best = weights / "best.pt" if (weights / "best.pt").exists() else weights / "last.pt"
    if interrupted:
        if (weights / "last.pt").exists():
            shutil.copyfile(weights / "last.pt", out / "last.pt")
        emit("interrupted", seconds=round(train_seconds, 1), epochs_done=len(epoch_times))
        raise KeyboardInterrupt
    if not best.exists():
        raise RuntimeError(f"training produced no checkpoint in {weights}")
    shutil.copyfile(best, out / "best.pt")
    if (run_dir / "results.csv").exists():
        shutil.copyfile(run_dir / "results.csv", out / "results.csv")
    plots = sorted(p for p in run_dir.glob("*") if p.suffix in (".png", ".jpg"))
    if plots:
        (out / "plots").mkdir(exist_ok=True)
        for p in plots:
            shutil.copyfile(p, out / "plots" / p.name)

    trainer = model.trainer
    final = {k: float(v) for k, v in (trainer.metrics or {}).items()} if trainer is not None else {}

    emit("export", format="onnx")
    export_dir = work / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "best.pt", export_dir / "best.pt")
    opset = {"opset": args.opset} if args.opset else {}
    exported = YOLO(str(export_dir / "best.pt")).export(
        format="onnx", imgsz=args.imgsz, simplify=False, dynamic=False, half=False, device="cpu", **opset
    )
    shutil.copyfile(exported, out / "model.onnx")
    extra = {}
    for variant in args.export_variants:
        kw = {"dynamic": {"dynamic": True}, "nms": {"nms": True}, "half": {"half": True, "device": device}}[variant]
        f = YOLO(str(export_dir / "best.pt")).export(format="onnx", imgsz=args.imgsz, simplify=False, **kw, **opset)
        target = out / f"model-{variant}.onnx"
        shutil.copyfile(f, target)
        extra[variant] = target.name

    metrics = {
        "trainer": {"name": "ultralytics", "version": ultralytics.__version__, "torch": torch.__version__},
        "device": device,
        "epochs_run": len(epoch_times),
        "epochs_requested": args.epochs,
        "seconds": round(train_seconds, 1),
        "seconds_per_epoch": round(sum(epoch_times) / len(epoch_times), 3) if epoch_times else None,
        "val": {
            "precision": final.get("metrics/precision(B)"),
            "recall": final.get("metrics/recall(B)"),
            "map50": final.get("metrics/mAP50(B)"),
            "map50_95": final.get("metrics/mAP50-95(B)"),
        },
        "names": names,
        "counts": counts,
        "hyp": hyp,
        "args": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "variants": extra,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    emit("done", **{k: metrics[k] for k in ("epochs_run", "seconds", "seconds_per_epoch", "val")})
    return metrics


# ---------------------------------------------------------------------------------------------
# SageMaker: channels and hyperparameters in, /opt/ml/model out


def sagemaker_args(argv_defaults: argparse.Namespace) -> argparse.Namespace:
    hp_file = SM_ROOT / "input" / "config" / "hyperparameters.json"
    hp = json.loads(hp_file.read_text()) if hp_file.exists() else {}
    ns = argv_defaults
    data_dir = Path(os.environ.get("SM_CHANNEL_DATASET", SM_ROOT / "input" / "data" / "dataset"))
    ns.data = str(data_dir / hp.get("data_yaml", "data.yaml"))
    base_dir = Path(os.environ.get("SM_CHANNEL_BASE", SM_ROOT / "input" / "data" / "base"))
    base = hp.get("model", "yolov8n.yaml")
    ns.model = str(base_dir / base) if (base_dir / base).exists() else base
    for key, cast in (("epochs", int), ("imgsz", int), ("batch", int), ("patience", int), ("seed", int),
                      ("time_minutes", float), ("workers", int), ("optimizer", str), ("lr0", float),
                      ("warmup_epochs", float), ("close_mosaic", int)):
        if key in hp:
            setattr(ns, key, cast(hp[key]))
    ns.amp = str(hp.get("amp", "false")).lower() == "true"
    ns.out = os.environ.get("SM_MODEL_DIR", str(SM_ROOT / "model"))
    return ns


def parse_args(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["train"]:  # SageMaker starts the container as `docker run IMAGE train`
        argv = ["--sagemaker", *argv[1:]]
    p = argparse.ArgumentParser(description="Train a YOLOv8 detector offline (loupe).")
    p.add_argument("--data", help="YOLO data.yaml")
    p.add_argument("--model", default="yolov8n.yaml", help="yolov8n.yaml (cold start) or a local .pt to warm-start from")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--imgsz", type=int, default=480)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-minutes", type=float, default=None, help="time budget; ultralytics stops and keeps the best")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None, help="cpu, 0, ... (default: GPU 0 if present)")
    p.add_argument("--amp", action="store_true", help="mixed precision on a GPU (online self-check skipped)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset for the exports (default: ultralytics' choice)")
    p.add_argument("--optimizer", default=None, choices=["auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp"],
                   help="default: auto for a cold start, AdamW for a .pt warm start")
    p.add_argument("--lr0", type=float, default=None, help="initial learning rate (default: 2e-4 for a warm start)")
    p.add_argument("--warmup-epochs", type=float, default=None, help="default: 3 cold, 0 warm")
    p.add_argument("--close-mosaic", type=int, default=None, help="epochs at the end without mosaic (default: 10 cold, min(10, epochs) warm)")
    p.add_argument("--cache", choices=["ram", "disk"], default=None, help="cache decoded images (faster epochs)")
    p.add_argument("--export-variants", nargs="*", default=[], choices=["dynamic", "nms", "half"])
    p.add_argument("--out", default="train-out")
    p.add_argument("--keep-work", action="store_true")
    p.add_argument("--no-plots", action="store_true", help="skip ultralytics' plots (results.png, curves, batch mosaics)")
    p.add_argument("--sagemaker", action="store_true", help="read /opt/ml channels and hyperparameters")
    args = p.parse_args(argv)
    if args.sagemaker or (not args.data and (SM_ROOT / "input" / "config" / "hyperparameters.json").exists()):
        args = sagemaker_args(args)
        args.sagemaker = True  # also when detected: refusals must reach /opt/ml/output/failure
    if not args.data:
        p.error("--data is required")
    return args


# ---------------------------------------------------------------------------------------------
# Stopping with the driver. A driver killed with SIGKILL (the loop, `loupe train`) runs no
# clean-up; this process trained on, orphaned, until its next write to the dead pipe (the end of
# the epoch under way) and then died of a BrokenPipeError without keeping last.pt. The driver
# names itself in LOUPE_PARENT_PID; when that process dies, this one stops as on SIGTERM
# (keeping last.pt), and a broken stdout is taken for the same event. Not set (SageMaker, a
# person running the script): nothing changes.

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _parent_pid() -> int | None:
    try:
        return int(os.environ["LOUPE_PARENT_PID"])
    except (KeyError, ValueError):
        return None


def driven_by_loupe() -> bool:
    return _parent_pid() is not None


def detach_output() -> None:
    # The driver's pipes died with it: what is still printed (the interrupted event, ultralytics'
    # logs) goes to /dev/null, so a BrokenPipeError does not cut the clean stop short.
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass


def follow_parent() -> bool:
    """Arrange to stop when the driver dies; False when it is already gone."""
    parent = _parent_pid()
    if parent is None:
        return True
    armed = False
    if sys.platform.startswith("linux"):
        # The kernel sends SIGTERM when the parent exits (the thread that forked us, to be exact:
        # Node spawns from its event-loop thread, so the end of a worker thread that called
        # trainLocal stops training too). Set first, then compare getppid(): a parent that died
        # before prctl took effect is seen by the comparison instead.
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
            if not armed:
                print(f"loupe: prctl(PR_SET_PDEATHSIG) failed (errno {ctypes.get_errno()}); polling the parent instead", file=sys.stderr)
        except (OSError, AttributeError) as e:
            print(f"loupe: prctl unavailable ({e}); polling the parent instead", file=sys.stderr)
    if os.getppid() != parent:
        return False
    if not armed:
        # Portable fallback, where prctl is not there: look once a second.
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            if not _interrupted[0]:
                os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="loupe-parent-watch", daemon=True).start()
    return True


_interrupted = [False]


def _raise_interrupt(signum, _frame):
    # Raise once: a terminal Ctrl-C reaches both the driver and this process, and the driver then
    # forwards SIGINT too; a second KeyboardInterrupt would cut short the last.pt hand-over.
    if _interrupted[0]:
        return
    _interrupted[0] = True
    if signum == signal.SIGTERM:
        # More SIGTERMs may follow: PR_SET_PDEATHSIG fires once per exiting thread of a
        # multi-threaded parent (Node), and one landing while the interpreter shuts down (its
        # handlers reset) would end this process as killed rather than with status 130.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if not follow_parent():
        print(f"loupe train: the process that started this trainer (pid {os.environ.get('LOUPE_PARENT_PID')}) is gone; not starting", file=sys.stderr)
        return EXIT_INTERRUPTED
    args = parse_args(argv)
    if os.environ.get("LOUPE_FORBID_NETWORK") == "1":
        network_guard()
    out = Path(args.out).resolve()
    out_existed = out.exists()
    # A private ultralytics config dir per run: SETTINGS.update() below persists runs_dir and
    # datasets_dir to <config>/Ultralytics/settings.json, and a shared file would send every other
    # ultralytics process (and concurrent trainers) into this run's folders.
    offline_environment(out / "work" / "ultralytics-config")
    # Ctrl-C from the driver arrives as SIGINT; SIGTERM (SageMaker stop) is treated the same way.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        train(args)
        return 0
    except Refused as e:
        # nothing was trained: leave no half-made output behind
        shutil.rmtree(out / "work", ignore_errors=True)
        if not out_existed and out.exists() and not any(out.iterdir()):
            out.rmdir()
        print("LOUPE_ERROR " + json.dumps({"code": e.code, "message": str(e)}), flush=True)
        print(f"loupe train: {e}", file=sys.stderr)
        if args.sagemaker:
            (SM_ROOT / "output").mkdir(parents=True, exist_ok=True)
            (SM_ROOT / "output" / "failure").write_text(f"{e.code}: {e}")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        try:
            print("loupe train: interrupted; last checkpoint kept as last.pt", file=sys.stderr)
        except BrokenPipeError:
            detach_output()
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
