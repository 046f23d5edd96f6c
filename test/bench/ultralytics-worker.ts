import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ensureVenv, offlinePythonEnv, venvPython } from '../../cloud/training/venv.js';

/** Shared by the detector benches (01-detect, 01-detect-int8); not an entry itself. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const PY = `
import json, sys, time
from ultralytics import YOLO
m = YOLO(sys.argv[1], task='detect')
for line in sys.stdin:
    files = json.loads(line)
    if not files:
        break
    t0 = time.perf_counter()
    sp = {'preprocess': 0.0, 'inference': 0.0, 'postprocess': 0.0}
    best = float('inf')
    for f in files:
        t1 = time.perf_counter()
        r = m.predict(f, verbose=False)[0]
        best = min(best, (time.perf_counter() - t1) * 1000)
        for k in sp:
            sp[k] += r.speed[k] / len(files)
    dt = (time.perf_counter() - t0) / len(files) * 1000
    sys.stdout.write('@@' + json.dumps({'ms': dt, 'min': best, 'speed': sp}) + '\\n')
    sys.stdout.flush()
`;

/** ultralytics predict in a resident process: send a chunk of files, get ms/image back. */
export class UltralyticsWorker {
  private lines: AsyncIterableIterator<string>;
  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  static async start(model: string): Promise<UltralyticsWorker> {
    const py = venvPython(await ensureVenv());
    const child = spawn(py, ['-c', PY, model], { cwd: '/tmp', env: offlinePythonEnv({ YOLO_VERBOSE: 'false' }) });
    child.stderr.resume();
    return new UltralyticsWorker(child);
  }

  async run(files: string[]): Promise<{ ms: number; min: number; speed: Record<string, number> }> {
    this.child.stdin.write(`${JSON.stringify(files)}\n`);
    for (;;) {
      const { value, done } = await this.lines.next();
      if (done) throw new Error('ultralytics worker exited');
      if (value.startsWith('@@')) return JSON.parse(value.slice(2)) as { ms: number; min: number; speed: Record<string, number> };
    }
  }

  async stop(): Promise<void> {
    this.child.stdin.end('[]\n');
    await new Promise((r) => this.child.once('close', r));
  }
}
