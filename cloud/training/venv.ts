import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { cacheDir, projectRoot } from '../../lib/paths.js';
import { sha256 } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { Progress } from '../../lib/progress.js';

/**
 * The trainer's Python environment: a venv built from the pinned requirements file and cached
 * by its hash under ~/.cache/loupe/venvs, so clean clones and CI re-runs reuse it (torch from
 * PyPI is gigabytes). LOUPE_VENV points at a ready venv instead.
 */
export const requirementsFile = join(projectRoot, 'cloud', 'training', 'requirements.txt');

/**
 * A venv loupe makes: its pinned requirements, where it is cached (by the requirements' hash),
 * the import check that says it works, and the variable that points at a ready one instead.
 */
export interface VenvSpec {
  name: string;
  requirements: string;
  /** Sub-folder of ~/.cache/loupe/venvs: '' for the trainer (its folder is the bare hash, as before). */
  prefix: string;
  importCheck: string;
  envVar: string;
}

export const TRAINER_VENV: VenvSpec = {
  name: 'trainer',
  requirements: requirementsFile,
  prefix: '',
  importCheck: 'import ultralytics, torch, onnx, onnxruntime',
  envVar: 'LOUPE_VENV',
};

/**
 * quantize.py's own venv, only where LOUPE_QUANTIZER_VENV names one (the cloud image builds it:
 * onnxruntime without torch). Elsewhere `loupe quantize` uses the trainer venv, which has the same
 * pins, so a host that can train needs nothing more.
 */
export const QUANTIZER_VENV: VenvSpec = {
  name: 'quantizer',
  requirements: join(projectRoot, 'cloud', 'quantize', 'requirements.txt'),
  prefix: 'quantizer-',
  importCheck: 'import onnx, onnxruntime, numpy',
  envVar: 'LOUPE_QUANTIZER_VENV',
};

export function venvDir(spec: VenvSpec = TRAINER_VENV): string {
  const given = process.env[spec.envVar];
  if (given) return given;
  const hash = sha256(readFileSync(spec.requirements)).slice(0, 12);
  return join(cacheDir(), 'venvs', `${spec.prefix}${hash}`);
}

export function venvPython(dir = venvDir()): string {
  return join(dir, 'bin', 'python');
}

const READY = '.loupe-ready';

export function venvReady(dir = venvDir()): boolean {
  return existsSync(join(dir, READY)) && existsSync(venvPython(dir));
}

/**
 * Environment for every Python child: ultralytics fully offline (no hub weights, fonts,
 * pip auto-installs or version checks) with its settings kept in loupe's cache.
 */
export function offlinePythonEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    YOLO_OFFLINE: 'true',
    YOLO_AUTOINSTALL: 'false',
    YOLO_VERBOSE: process.env.YOLO_VERBOSE ?? 'true',
    YOLO_CONFIG_DIR: process.env.YOLO_CONFIG_DIR ?? join(cacheDir(), 'ultralytics'),
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}

/** What a line of pip's output tells (pip >= 24.1 with `--progress-bar raw` prints "Progress N of TOTAL"). */
export type PipLine =
  | { kind: 'collecting'; what: string }
  | { kind: 'download'; file: string; bytes: number | null }
  | { kind: 'progress'; done: number; total: number }
  | { kind: 'installing'; what: string }
  | { kind: 'installed'; what: string }
  | { kind: 'text'; text: string };

const UNITS: Record<string, number> = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9 };

export function parsePipLine(line: string): PipLine {
  const t = line.trim();
  let m = /^Progress (\d+) of (\d+)$/.exec(t);
  if (m) return { kind: 'progress', done: Number(m[1]), total: Number(m[2]) };
  m = /^Downloading (\S+)(?: \(([\d.]+) (B|kB|KB|MB|GB)\))?/.exec(t);
  if (m) return { kind: 'download', file: m[1]!.split('/').pop()!, bytes: m[2] ? Math.round(Number(m[2]) * UNITS[m[3]!]!) : null };
  m = /^Collecting (.+)$/.exec(t);
  if (m) return { kind: 'collecting', what: m[1]! };
  m = /^Installing collected packages: (.+)$/.exec(t);
  if (m) return { kind: 'installing', what: m[1]! };
  m = /^Successfully installed (.+)$/.exec(t);
  if (m) return { kind: 'installed', what: m[1]! };
  return { kind: 'text', text: t };
}

function run(cmd: string, args: string[], log: Logger, what: string, onLine?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let tail = '';
    const keep = (stream: NodeJS.ReadableStream) =>
      createInterface({ input: stream }).on('line', (line) => {
        tail = `${tail}${line}\n`.slice(-4000);
        if (onLine) onLine(line);
        else if (line.trim()) log.debug({ step: what }, line.trim());
      });
    keep(child.stdout);
    keep(child.stderr);
    child.on('error', (e) =>
      reject(
        new LoupeError(
          'PYTHON_MISSING',
          `cannot run ${cmd} (${e.message}); install Python 3.9+ (Debian: loupe setup system) or set LOUPE_PYTHON`,
          { input: cmd },
        ),
      ),
    );
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new LoupeError('VENV_FAILED', `${what} failed (exit ${code}):\n${tail}`, { input: cmd })),
    );
  });
}

/**
 * `pip install -r requirements.txt` with its downloads shown: one progress bar per file (bytes,
 * rate, ETA) at a terminal, log events otherwise, and one log line per package collected.
 */
function pipInstall(python: string, log: Logger, raw: boolean, requirements: string, installing = 'pip: installing'): Promise<void> {
  let bar: Progress | undefined;
  let file = '';
  let downloads = 0;
  const onLine = (line: string) => {
    const p = parsePipLine(line);
    switch (p.kind) {
      case 'collecting':
        log.info({ requirement: p.what }, 'pip: collecting');
        break;
      case 'download':
        bar?.finish();
        downloads++;
        file = p.file;
        bar = new Progress(`download ${p.file}`, p.bytes ?? 0, log, { unit: 'B', logEveryMs: 10_000 });
        if (!raw) log.info({ file: p.file, bytes: p.bytes }, 'pip: downloading');
        break;
      case 'progress':
        if (!bar) bar = new Progress(`download ${file || 'file'}`, p.total, log, { unit: 'B', logEveryMs: 10_000 });
        bar.setTotal(p.total);
        bar.update(p.done);
        if (p.done >= p.total) {
          bar.finish();
          bar = undefined;
        }
        break;
      case 'installing':
        bar?.finish();
        bar = undefined;
        log.info({ downloads }, installing);
        break;
      case 'installed':
        log.info({ packages: p.what.split(' ').length }, 'pip: installed');
        break;
      default:
        if (p.text) log.debug({ step: 'pip install' }, p.text);
    }
  };
  const args = ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', raw ? 'raw' : 'off', '-r', requirements];
  return run(python, args, log, 'pip install -r requirements.txt', onLine).finally(() => bar?.stop());
}

async function pipSupportsRaw(python: string): Promise<boolean> {
  const r = spawnSync(python, ['-m', 'pip', '--version'], { encoding: 'utf8' });
  const m = /^pip (\d+)\.(\d+)/.exec(r.stdout ?? '');
  return Boolean(m && (Number(m[1]) > 24 || (Number(m[1]) === 24 && Number(m[2]) >= 1)));
}

/** Create the venv if it is missing or half-built; returns its directory. Idempotent. */
export async function ensureVenv(log: Logger = silentLogger, spec: VenvSpec = TRAINER_VENV): Promise<string> {
  const dir = venvDir(spec);
  if (venvReady(dir)) return dir;
  if (process.env[spec.envVar]) {
    throw new LoupeError('VENV_BROKEN', `${spec.envVar}=${dir} is not a ready loupe venv (no ${READY} marker or bin/python)`, {
      input: spec.envVar,
    });
  }
  const python = process.env.LOUPE_PYTHON ?? 'python3';
  log.info(
    { venv: dir, requirements: spec.requirements },
    spec === TRAINER_VENV ? 'creating the trainer venv (first run downloads torch, several minutes)' : `creating the ${spec.name} venv`,
  );
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, '..'), { recursive: true });
  await run(python, ['-m', 'venv', dir], log, 'python -m venv');
  // pip 24.1 added machine-readable download progress (--progress-bar raw); older pips (Debian 12's
  // venv bundles 23.0) get a current pip first, and install without byte progress if that fails.
  if (!(await pipSupportsRaw(venvPython(dir)))) {
    log.info('updating pip in the venv (for download progress)');
    await run(venvPython(dir), ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', 'pip>=24.1'], log, 'pip self-update').catch(
      (e: Error) => log.warn({ err: e.message }, 'pip could not be updated; installing without download progress'),
    );
  }
  await pipInstall(
    venvPython(dir),
    log,
    await pipSupportsRaw(venvPython(dir)),
    spec.requirements,
    spec === TRAINER_VENV ? 'pip: installing (torch takes a few minutes to unpack)' : 'pip: installing',
  );
  await run(venvPython(dir), ['-c', spec.importCheck], log, 'venv import check');
  await writeFile(join(dir, READY), `${new Date().toISOString()}\n`);
  log.info({ venv: dir }, `${spec.name} venv ready`);
  return dir;
}
