import { Detector } from '../detector/detector.js';
import { errorMessage } from '../../lib/errors.js';
import { sha256File } from '../../lib/fsutil.js';

/**
 * loupe.Inference's Install step (shipped in its code bundle; loupe.Model carries no code): the
 * model must match its digest and load and run in ONNX Runtime before Inference runs on it.
 * The install script names `{loupe.Model:artifacts:path}`, and Greengrass re-runs Install when
 * the interpolated install script changes, so every new loupe.Model version is checked here
 * before Inference starts on it. A model that fails keeps Inference from ever reaching RUNNING,
 * so the deployment fails (and rolls back) for certain; a model that failed only once the Run
 * step had started would race the deployment's health check, which counts RUNNING as healthy.
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
  process.stdout.write(
    JSON.stringify({ msg: 'model verified', path, sha256: actual, names: det.info.names, imgsz: det.info.imgsz, ms: Date.now() - t0 }) +
      '\n',
  );
  await det.dispose();
  process.exit(0);
} catch (e) {
  process.stderr.write(`model refused: ${path ?? '(no model)'}: ${errorMessage(e)}\n`);
  process.exit(1);
}
