import { readFile } from 'node:fs/promises';
import yauzl from 'yauzl';
import { Detector, type ModelInfo } from '../../components/detector/detector.js';
import type { ErrorCode } from '../../lib/error-codes.js';
import { errorMessage, isLoupeError, LoupeError } from '../../lib/errors.js';
import { sha256 } from '../../lib/fsutil.js';

/**
 * What the registry checks before it stores a version, so the registry (and the fleet it feeds)
 * never holds a model the device could not run:
 * - the ONNX is loaded as the device's detector loads it (metadata and graph signature against
 *   the detection contract, onnxruntime session) and runs once on a blank frame; so is the int8
 *   file when there is one, which must be an int8 graph with the same classes and input size;
 * - the checkpoint, when given, is a PyTorch zip archive (torch.save since 1.6) holding data.pkl;
 * - the model card, when given, describes this ONNX (files.onnx.sha256), its classes and task.
 */
export interface ValidatedModel {
  info: ModelInfo;
  onnxSha256: string;
}

const bad = (code: ErrorCode, path: string, msg: string, cause?: unknown): LoupeError => new LoupeError(code, msg, { input: path, cause });

async function checkOnnx(path: string): Promise<ValidatedModel> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw bad(
      'ARTEFACT_MISSING',
      path,
      (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'artefact file not found' : `cannot read it (${errorMessage(e)})`,
      e,
    );
  }
  let det: Detector | undefined;
  try {
    // threads: 1 keeps a registry command light beside a running loop.
    det = await Detector.load(path, { threads: 1 });
    await det.warmup();
    return { info: { ...det.info }, onnxSha256: sha256(bytes) };
  } catch (e) {
    // The detector's messages already start with the path; keep them, under the registry's code.
    const msg = isLoupeError(e) ? e.message.replace(`${path}: `, '') : errorMessage(e);
    throw bad('REGISTRY_BAD_MODEL', path, `not a detection model loupe can run: ${msg}`, e);
  } finally {
    await det?.dispose();
  }
}

function zipEntries(path: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('cannot open'));
      const names: string[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        names.push(e.fileName);
        zip.readEntry();
      });
      zip.on('end', () => resolve(names));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

async function checkCheckpoint(path: string): Promise<void> {
  let names: string[];
  try {
    names = await zipEntries(path);
  } catch (e) {
    throw bad('REGISTRY_BAD_CHECKPOINT', path, `not a PyTorch checkpoint (not a readable zip archive: ${errorMessage(e)})`, e);
  }
  if (!names.some((n) => /(^|\/)data\.pkl$/.test(n)))
    throw bad('REGISTRY_BAD_CHECKPOINT', path, 'not a PyTorch checkpoint (no data.pkl in the archive)');
}

async function checkCard(path: string, m: ValidatedModel): Promise<void> {
  let card: Record<string, unknown>;
  try {
    card = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw bad('REGISTRY_BAD_CARD', path, `model card is not valid JSON (${errorMessage(e)})`, e);
  }
  if (typeof card !== 'object' || card === null || Array.isArray(card))
    throw bad('REGISTRY_BAD_CARD', path, 'model card must be a JSON object');
  const files = card.files as { onnx?: { sha256?: unknown } } | undefined;
  const want = files?.onnx?.sha256;
  if (typeof want === 'string' && want !== m.onnxSha256) {
    throw bad('REGISTRY_CARD_MISMATCH', path, `the card describes an ONNX with sha256 ${want}, not this one (${m.onnxSha256})`);
  }
  const classes = Array.isArray(card.classes) ? card.classes : Array.isArray(card.names) ? card.names : undefined;
  if (classes && JSON.stringify(classes) !== JSON.stringify(m.info.names)) {
    throw bad(
      'REGISTRY_CARD_MISMATCH',
      path,
      `card classes ${JSON.stringify(classes)} differ from the model's ${JSON.stringify(m.info.names)}`,
    );
  }
  if (card.task !== undefined && card.task !== m.info.task)
    throw bad('REGISTRY_CARD_MISMATCH', path, `card task ${JSON.stringify(card.task)} differs from the model's '${m.info.task}'`);
}

/** The int8 file beside an fp32 export: an int8 graph of the same model (classes, input size). */
async function checkInt8(path: string, fp32: ValidatedModel): Promise<ValidatedModel> {
  const q = await checkOnnx(path);
  if (q.info.precision !== 'int8')
    throw bad('REGISTRY_BAD_MODEL', path, `given as the int8 model, but its graph is ${q.info.precision} (no quantized nodes)`);
  if (JSON.stringify(q.info.names) !== JSON.stringify(fp32.info.names) || q.info.imgsz.join('x') !== fp32.info.imgsz.join('x')) {
    throw bad(
      'REGISTRY_BAD_MODEL',
      path,
      `the int8 model (classes ${JSON.stringify(q.info.names)}, ${q.info.imgsz.join('x')}) is not a quantization of the fp32 one (classes ${JSON.stringify(fp32.info.names)}, ${fp32.info.imgsz.join('x')})`,
    );
  }
  return q;
}

export async function validateModelArtefacts(input: {
  onnx: string;
  onnxInt8?: string;
  pt?: string;
  card?: string;
}): Promise<ValidatedModel> {
  const m = await checkOnnx(input.onnx);
  if (input.onnxInt8) await checkInt8(input.onnxInt8, m);
  if (input.pt) await checkCheckpoint(input.pt);
  if (input.card) await checkCard(input.card, m);
  return m;
}
