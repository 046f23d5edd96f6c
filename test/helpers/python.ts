import { spawn } from 'node:child_process';
import { ensureVenv, offlinePythonEnv, venvPython } from '../../cloud/training/venv.js';

/** Run Python code in the pinned trainer venv (ultralytics cross-checks); rejects on failure. */
export async function runPython(code: string, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<string> {
  const dir = await ensureVenv();
  return new Promise((resolve, reject) => {
    const child = spawn(venvPython(dir), ['-c', code], {
      env: offlinePythonEnv(opts.env),
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python exited ${code}:\n${err.slice(-4000)}`));
    });
  });
}
