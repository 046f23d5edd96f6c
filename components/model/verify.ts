import { Detector } from '../detector/detector.js';
import { errorMessage } from '../../lib/errors.js';
import { sha256File } from '../../lib/fsutil.js';

/**
 * loupe.Model's Install step: the model must match its digest and load and run in ONNX Runtime
 * before this version is installed. A model that fails here fails the deployment (which rolls
 * back) before anything is restarted, however long the runtime takes to start; Inference
 * would otherwise find out only after it was restarted onto it.
 *
 *   node verify.js <model.onnx> <sha256>
 */
const [path, sha256] = process.argv.slice(2);
try {
  if (!path || !sha256) throw new Error('usage: verify.js <model.onnx> <sha256>');
  const actual = await sha256File(path);
  if (actual !== sha256.toLowerCase()) throw new Error(`SHA-256 mismatch: expected ${sha256}, file has ${actual}`);
  const t0 = Date.now();
  const det = await Detector.load(path, { threads: 1 });
  await det.warmup();
  process.stdout.write(JSON.stringify({ msg: 'model verified', path, sha256: actual, names: det.info.names, imgsz: det.info.imgsz, ms: Date.now() - t0 }) + '\n');
  await det.dispose();
  process.exit(0);
} catch (e) {
  process.stderr.write(`loupe.Model: ${path ?? '(no model)'}: ${errorMessage(e)}\n`);
  process.exit(1);
}
