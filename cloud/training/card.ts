import { existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { sha256, sha256File } from '../../lib/fsutil.js';
import { readYoloDataset } from '../dataset/yolo-read.js';
import type { TrainMetricsFile } from './options.js';
import { modelCardSchema, type ModelCard, type TestMetrics, type ValMetrics } from '../../contracts/model-card.js';

// The card's schema, reader and writer are a contract (contracts/model-card.ts); re-exported while other branches import them from here.
export {
  modelCardSchema,
  readModelCard,
  writeModelCard,
  type ModelCard,
  type TestMetrics,
  type ValMetrics,
} from '../../contracts/model-card.js';

export interface DatasetFacts {
  source: string;
  versionId: string;
  splitRule: string;
  counts: Record<string, { images: number; boxes: number }>;
  testImages: string[];
}

/** loupe's YOLO exporter writes manifest.json beside data.yaml (cloud/dataset/yolo-write.ts). */
interface ManifestLike {
  version?: string;
  splitRule?: string;
  images?: { id: string; split: string; file: string; boxes: number }[];
}

/**
 * Facts about a YOLO data set for a card. With loupe's manifest.json: its version id, split rule
 * and the original image ids of the test split. Without one (a hand-made YOLO folder): a content
 * digest over names, file names and label text, and the test split's file names.
 */
export function datasetFacts(dataYaml: string, source?: string): DatasetFacts {
  const ds = readYoloDataset(dataYaml);
  const counts: DatasetFacts['counts'] = {};
  for (const [split, items] of Object.entries(ds.splits)) {
    counts[split] = { images: items.length, boxes: items.reduce((n, i) => n + i.labels.length, 0) };
  }
  const manifestPath = join(dirname(ds.yamlPath), 'manifest.json');
  const manifest = existsSync(manifestPath) ? (JSON.parse(readFileSync(manifestPath, 'utf8')) as ManifestLike) : undefined;
  if (manifest?.version && manifest.images) {
    return {
      source: source ?? ds.yamlPath,
      versionId: manifest.version,
      splitRule: manifest.splitRule ?? 'loupe split',
      counts,
      testImages: manifest.images
        .filter((i) => i.split === 'test')
        .map((i) => i.id)
        .sort(),
    };
  }
  const rel = (p: string) => relative(ds.root, p);
  const records = Object.entries(ds.splits)
    .flatMap(([split, items]) =>
      items.map((i) => [split, rel(i.imagePath), i.labels.map((l) => `${l.cls} ${l.cx} ${l.cy} ${l.w} ${l.h}`).sort()] as const),
    )
    .sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return {
    source: source ?? ds.yamlPath,
    versionId: sha256(JSON.stringify({ names: ds.names, records })),
    splitRule: 'as given by data.yaml (no loupe manifest)',
    counts,
    testImages: (ds.splits.test ?? []).map((i) => basename(i.imagePath)).sort(),
  };
}

async function ref(path: string, dir: string): Promise<ModelCard['files']['onnx']> {
  return { file: relative(dir, path) || basename(path), sha256: await sha256File(path), bytes: (await stat(path)).size };
}

export interface CardInput {
  name: string;
  version: string;
  classes: string[];
  imgsz: number;
  /** Where card.json will live: file references are relative to it. */
  dir: string;
  onnx: string;
  onnxInt8?: string;
  pt?: string;
  trainer: ModelCard['trainer'];
  dataset: DatasetFacts;
  test: TestMetrics | null;
  val: ValMetrics | null;
  int8Test?: TestMetrics | null;
  fleetPrecision?: ModelCard['fleetPrecision'];
  command: string;
  trainerCommand?: string;
  notes?: string[];
  created?: Date;
}

export async function buildModelCard(input: CardInput): Promise<ModelCard> {
  const card: ModelCard = {
    schema: 'loupe.model-card/1',
    name: input.name,
    version: input.version,
    created: (input.created ?? new Date()).toISOString(),
    task: 'detect',
    classes: input.classes,
    imgsz: input.imgsz,
    files: {
      onnx: await ref(input.onnx, input.dir),
      ...(input.onnxInt8 ? { onnxInt8: await ref(input.onnxInt8, input.dir) } : {}),
      ...(input.pt ? { pt: await ref(input.pt, input.dir) } : {}),
    },
    trainer: input.trainer,
    dataset: input.dataset,
    metrics: { test: input.test, val: input.val, ...(input.int8Test !== undefined ? { int8: input.int8Test } : {}) },
    ...(input.fleetPrecision ? { fleetPrecision: input.fleetPrecision } : {}),
    command: input.command,
    ...(input.trainerCommand ? { trainerCommand: input.trainerCommand } : {}),
    ...(input.notes?.length ? { notes: input.notes } : {}),
  };
  return modelCardSchema.parse(card);
}

/** A shell-quoted command line, for the card's reproducing command. */
export function shellCommand(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export interface RunCardInput {
  /** The folder with model.onnx, the checkpoint and card.json-to-be. */
  dir: string;
  onnx: string;
  onnxInt8?: string;
  pt?: string;
  /** train.py's metrics.json for the run. */
  metrics: TrainMetricsFile;
  data: string;
  datasetSource?: string;
  name: string;
  version: string;
  backend: string;
  /** The base model given to train.py (default: the one metrics.json recorded). */
  base?: string;
  script: string;
  test: TestMetrics | null;
  int8Test?: TestMetrics | null;
  fleetPrecision?: ModelCard['fleetPrecision'];
  command: string;
  trainerCommand?: string;
  notes?: string[];
}

/** A card for one train.py run, from its metrics.json (the trainer's numbers) and loupe eval's. */
export async function cardForRun(r: RunCardInput): Promise<ModelCard> {
  const m = r.metrics;
  const args = m.args ?? {};
  const imgsz = Number(args.imgsz);
  const val = m.val;
  return buildModelCard({
    name: r.name,
    version: r.version,
    classes: m.names,
    imgsz,
    dir: r.dir,
    onnx: r.onnx,
    onnxInt8: r.onnxInt8,
    pt: r.pt,
    int8Test: r.int8Test,
    fleetPrecision: r.fleetPrecision,
    trainer: {
      name: m.trainer.name,
      version: m.trainer.version,
      torch: m.trainer.torch,
      script: r.script,
      backend: r.backend,
      device: m.device,
      base: r.base ?? String(args.model),
      epochsRequested: m.epochs_requested,
      epochsRun: m.epochs_run,
      seconds: m.seconds,
      secondsPerEpoch: m.seconds_per_epoch,
      // what train.py was given, plus the schedule it chose (newer train.py records it as `hyp`)
      hyperparameters: {
        ...Object.fromEntries(
          Object.entries(args).filter(
            ([k, v]) => !['data', 'model', 'out', 'keep_work', 'sagemaker', 'export_variants'].includes(k) && v !== null,
          ),
        ),
        ...(m.hyp ?? {}),
      },
    },
    dataset: datasetFacts(r.data, r.datasetSource),
    test: r.test,
    val:
      val.map50 !== null && val.map50_95 !== null
        ? {
            map50: val.map50,
            map50_95: val.map50_95,
            ...(val.precision !== null ? { precision: val.precision } : {}),
            ...(val.recall !== null ? { recall: val.recall } : {}),
            source: 'ultralytics trainer val (best.pt)',
            images: m.counts.val.images,
          }
        : null,
    command: r.command,
    trainerCommand: r.trainerCommand,
    notes: r.notes,
  });
}
