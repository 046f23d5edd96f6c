import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { runPython } from '../helpers/python.js';

const script = readFileSync(join(projectRoot, 'test', 'detector', 'py', 'ultra_ref.py'), 'utf8');

/**
 * Ask the pinned ultralytics (in the trainer venv) for reference outputs: predict boxes, the
 * predictor's/validator's input tensors, val metrics, NMS and metric functions on synthetic data.
 * See test/detector/py/ultra_ref.py. Arguments travel in a JSON file in `cwd` (a test temp dir,
 * so nothing ultralytics creates lands in the repo); ultralytics logs to stdout, so the JSON
 * answer follows a marker.
 */
export async function ultralytics<T>(op: string, args: Record<string, unknown> & { cwd: string }, timeoutMs = 900_000): Promise<T> {
  const argsFile = join(args.cwd, `args-${randomBytes(6).toString('hex')}.json`);
  await writeFile(argsFile, JSON.stringify({ op, ...args }));
  try {
    const code = `import json\nARGS = json.load(open(${JSON.stringify(argsFile)}))\n${script}`;
    const out = await runPython(code, {
      timeoutMs,
      cwd: args.cwd,
      env: { YOLO_OFFLINE: 'true', YOLO_AUTOINSTALL: 'false', YOLO_VERBOSE: 'false' },
    });
    const i = out.lastIndexOf('\n@@JSON@@');
    if (i < 0) throw new Error(`no JSON from ultra_ref ${op}:\n${out.slice(-2000)}`);
    return JSON.parse(out.slice(i + 9)) as T;
  } finally {
    await rm(argsFile, { force: true });
  }
}
