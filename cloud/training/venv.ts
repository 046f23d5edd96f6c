import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { cacheDir, projectRoot } from '../../lib/paths.js';
import { sha256 } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';

/**
 * The trainer's Python environment: a venv built from the pinned requirements file and cached
 * by its hash under ~/.cache/loupe/venvs, so clean clones and CI re-runs reuse it (torch from
 * PyPI is gigabytes). LOUPE_VENV points at a ready venv instead.
 */
export const requirementsFile = join(projectRoot, 'cloud', 'training', 'requirements.txt');

export function venvDir(): string {
  if (process.env.LOUPE_VENV) return process.env.LOUPE_VENV;
  const hash = sha256(readFileSync(requirementsFile)).slice(0, 12);
  return join(cacheDir(), 'venvs', hash);
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

function run(cmd: string, args: string[], log: Logger, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let tail = '';
    const keep = (b: Buffer) => {
      tail = (tail + b.toString()).slice(-4000);
      for (const line of b.toString().split('\n')) if (line.trim()) log.debug({ step: what }, line.trim());
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (e) =>
      reject(new LoupeError('PYTHON_MISSING', `cannot run ${cmd} (${e.message}); install Python 3.9+ or set LOUPE_PYTHON`, { input: cmd })),
    );
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new LoupeError('VENV_FAILED', `${what} failed (exit ${code}):\n${tail}`, { input: cmd })),
    );
  });
}

/** Create the venv if it is missing or half-built; returns its directory. Idempotent. */
export async function ensureVenv(log: Logger = silentLogger): Promise<string> {
  const dir = venvDir();
  if (venvReady(dir)) return dir;
  if (process.env.LOUPE_VENV) {
    throw new LoupeError('VENV_BROKEN', `LOUPE_VENV=${dir} is not a ready loupe venv (no ${READY} marker or bin/python)`, { input: 'LOUPE_VENV' });
  }
  const python = process.env.LOUPE_PYTHON ?? 'python3';
  log.info({ venv: dir, requirements: requirementsFile }, 'creating the trainer venv (first run downloads torch, several minutes)');
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, '..'), { recursive: true });
  await run(python, ['-m', 'venv', dir], log, 'python -m venv');
  await run(venvPython(dir), ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', requirementsFile], log, 'pip install -r requirements.txt');
  await run(venvPython(dir), ['-c', 'import ultralytics, torch, onnx, onnxruntime'], log, 'venv import check');
  await writeFile(join(dir, READY), `${new Date().toISOString()}\n`);
  log.info({ venv: dir }, 'trainer venv ready');
  return dir;
}
