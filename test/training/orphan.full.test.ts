import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { trainScript } from '../../cloud/training/local-trainer.js';
import { offlinePythonEnv, venvPython } from '../../cloud/training/venv.js';
import { metalTagsSubset } from './yolo-fixture.js';

/**
 * A driver killed with SIGKILL (the loop, `loupe train`) runs no clean-up: train.py must notice
 * that its parent is gone and stop by itself (PR_SET_PDEATHSIG on Linux, a polling thread
 * elsewhere), through its SIGTERM path that keeps last.pt. The parent here is a small Node
 * process running the real local trainer (built dist/: run `npx tsc -p .` first).
 */
let tmp: string;
let data: string;

interface Proc {
  pid: number;
  ppid: number;
  state: string;
  argv: string[];
}

/** Every process, from /proc (state Z: dead, waiting to be reaped; it runs nothing). */
function processes(): Proc[] {
  const out: Proc[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(p), state: rest[0]!, ppid: Number(rest[1]), argv: readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
const running = (p: Proc) => p.state !== 'Z' && p.state !== 'X';

/** train.py processes (and the data loader workers it forks, which share its command line) writing to `out`. */
function trainersOf(out: string): Proc[] {
  return processes().filter((p) => running(p) && p.argv.some((a) => a.endsWith('train.py')) && p.argv[p.argv.indexOf('--out') + 1] === out);
}

function descendantsOf(pid: number): Proc[] {
  const all = processes();
  const found: Proc[] = [];
  let frontier = [pid];
  while (frontier.length) {
    const next = all.filter((p) => frontier.includes(p.ppid));
    found.push(...next);
    frontier = next.map((p) => p.pid);
  }
  return found;
}

/**
 * The observer: a subreaper (PR_SET_CHILD_SUBREAPER) that starts the parent and adopts whatever
 * is orphaned below it, so the test learns how every process of the tree ended (the trainer's
 * exit status tells its clean stop, 130, from a crash) and that none is left: it exits when it
 * has no child left.
 */
const REAPER = `import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    # on a line of its own: the trainer may have left a progress bar without its newline
    print(f"\\nREAPED {pid} {os.waitstatus_to_exitcode(status)}", flush=True)
`;

/** A parent that trains through trainLocal and prints the trainer's events. */
const PARENT = `const { trainLocal } = await import(process.argv[2]);
const [data, out, epochs] = process.argv.slice(3);
await trainLocal({ data, base: 'yolov8n.yaml', epochs: Number(epochs), imgsz: 160, batch: 8, patience: 100, seed: 0, workers: 2, device: 'cpu' }, out, {
  onEvent: (e) => process.stdout.write('EVENT ' + e.event + (e.epoch ? ' ' + e.epoch : '') + '\\n'),
});
process.stdout.write('FINISHED\\n');
`;

/**
 * The fallback, on its own: a parent that hands train.py its own stdout and stderr (so no broken
 * pipe can stop it either) and a sitecustomize that makes `ctypes.CDLL(None)` fail, as on a
 * system without prctl: only the thread that polls getppid() can notice the parent's death.
 */
const POLLING_PARENT = `import { spawn } from 'node:child_process';
const [python, script, siteDir, ...args] = process.argv.slice(2);
spawn(python, [script, ...args], { stdio: 'inherit', env: { ...process.env, PYTHONPATH: siteDir, LOUPE_PARENT_PID: String(process.pid) } });
`;
const NO_PRCTL = `import ctypes

_CDLL = ctypes.CDLL


class _NoProcessHandle(_CDLL):
    def __init__(self, name, *args, **kwargs):
        if name is None:
            raise OSError("no prctl in this test")
        super().__init__(name, *args, **kwargs)


ctypes.CDLL = _NoProcessHandle
`;

interface Ending {
  parentPid: number;
  trainerPid: number;
  /** every process below the parent when it was killed (the trainer; ultralytics starts no data loader workers on CPU) */
  tree: number[];
  /** exit status by pid (negative: killed by that signal), for everything the reaper saw end */
  reaped: Map<number, number>;
  /** seconds from the kill to the trainer's end, and to the last process's end */
  trainerSeconds: number;
  allSeconds: number;
  events: string[];
  /** everything the tree printed through the reaper */
  output: string;
}

/**
 * Start a parent under the reaper, SIGKILL it when the trainer event `killAt` is seen ('start',
 * 'epoch 1'), and wait for the whole tree to end. Default parent: trainLocal from the built dist/.
 */
async function killParentAt(out: string, killAt: string, parentArgs?: string[]): Promise<Ending> {
  await writeFile(join(tmp, 'reaper.py'), REAPER);
  await writeFile(join(tmp, 'parent.mjs'), PARENT);
  const args = parentArgs ?? [
    join(tmp, 'parent.mjs'),
    join(projectRoot, 'dist', 'cloud', 'training', 'local-trainer.js'),
    data,
    out,
    '100',
  ];
  const reaper = spawn(venvPython(), [join(tmp, 'reaper.py'), process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: offlinePythonEnv(),
  });
  const events: string[] = [];
  const reaped = new Map<number, number>();
  const reapedAt = new Map<number, number>();
  let text = '';
  let seen: (() => void) | undefined;
  createInterface({ input: reaper.stdout! }).on('line', (line) => {
    text += line + '\n';
    const m = /^REAPED (\d+) (-?\d+)$/.exec(line);
    if (m) {
      reaped.set(Number(m[1]), Number(m[2]));
      reapedAt.set(Number(m[1]), performance.now());
    } else if (line.startsWith('EVENT ') || line.startsWith('LOUPE_EVENT ')) {
      // EVENT: trainLocal's hook, printed by the parent; LOUPE_EVENT: train.py's own line (polling parent)
      let name = line.slice(6);
      if (line.startsWith('LOUPE_EVENT ')) {
        const e = JSON.parse(line.slice(12)) as { event: string; epoch?: number };
        name = e.event + (e.epoch ? ` ${e.epoch}` : '');
      }
      events.push(name);
      if (name === killAt) seen?.();
    }
  });
  reaper.stderr!.on('data', (b: Buffer) => (text += b.toString()));
  const ended = new Promise<number | null>((resolve) => reaper.on('close', (c) => resolve(c)));
  await Promise.race([
    new Promise<void>((resolve) => (seen = resolve)),
    ended.then(() => {
      throw new Error(`the parent ended before "${killAt}":\n${text.slice(-3000)}`);
    }),
  ]);
  const parent = processes().find((p) => p.ppid === reaper.pid && p.argv.includes(args[0]!))!;
  expect(parent, 'the parent process').toBeDefined();
  const tree = descendantsOf(parent.pid);
  const trainer = tree.find((p) => p.ppid === parent.pid && p.argv.some((a) => a.endsWith('train.py')))!;
  expect(trainer, 'the train.py process').toBeDefined();
  const t0 = performance.now();
  process.kill(parent.pid, 'SIGKILL');
  const timer = setTimeout(() => reaper.kill('SIGKILL'), 30_000); // afterAll then kills what is left
  await ended;
  clearTimeout(timer);
  const at = (pid: number) => ((reapedAt.get(pid) ?? Infinity) - t0) / 1000;
  return {
    parentPid: parent.pid,
    trainerPid: trainer.pid,
    tree: tree.map((p) => p.pid),
    reaped,
    trainerSeconds: at(trainer.pid),
    allSeconds: Math.max(...[parent.pid, ...tree.map((p) => p.pid)].map(at)),
    events,
    output: text,
  };
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lt-orph-'));
  data = await metalTagsSubset(join(tmp, 'data'), { limit: { train: 16, val: 4, test: 0 } });
});

afterAll(async () => {
  // a failed assertion must not leave a trainer running on the shared machine
  for (const p of processes().filter((p) => running(p) && p.argv.some((a) => a.startsWith(tmp)) && p.pid !== process.pid)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await rm(tmp, { recursive: true, force: true });
});

describe('train.py stops when the process that started it dies', () => {
  it('parent SIGKILLed right after the start event: the trainer stops cleanly within seconds, nothing left below it', async () => {
    const out = join(tmp, 'out-start');
    const e = await killParentAt(out, 'start');
    expect(e.reaped.get(e.parentPid)).toBe(-9);
    expect(
      e.reaped.get(e.trainerPid),
      `train.py exit status (130: its interrupt path; 1: a crash); reaped ${JSON.stringify([...e.reaped])}, trainer ${e.trainerPid}:\n${e.output.slice(-2000)}`,
    ).toBe(130);
    expect(
      e.tree.filter((pid) => !e.reaped.has(pid)),
      'processes that never ended',
    ).toEqual([]);
    expect(trainersOf(out)).toEqual([]);
    expect(e.trainerSeconds).toBeLessThan(10);
    expect(existsSync(join(out, 'model.onnx'))).toBe(false);
    console.log(
      `orphan check (start): train.py exited 130 ${e.trainerSeconds.toFixed(2)} s after its parent was killed; all ${e.tree.length} process(es) below it gone after ${e.allSeconds.toFixed(2)} s`,
    );
  }, 240_000);

  it('parent SIGKILLed after the first epoch: the trainer stops through its SIGTERM path and keeps last.pt', async () => {
    const out = join(tmp, 'out-epoch');
    const e = await killParentAt(out, 'epoch 1');
    expect(
      e.reaped.get(e.trainerPid),
      `train.py exit status (130: its interrupt path; 1: a crash); reaped ${JSON.stringify([...e.reaped])}, trainer ${e.trainerPid}:\n${e.output.slice(-2000)}`,
    ).toBe(130);
    expect(
      e.tree.filter((pid) => !e.reaped.has(pid)),
      'processes that never ended',
    ).toEqual([]);
    expect(trainersOf(out)).toEqual([]);
    expect(e.trainerSeconds).toBeLessThan(10);
    expect(existsSync(join(out, 'last.pt'))).toBe(true);
    expect(existsSync(join(out, 'model.onnx'))).toBe(false);
    console.log(
      `orphan check (epoch 1): train.py exited 130 ${e.trainerSeconds.toFixed(2)} s after its parent was killed, last.pt kept; all ${e.tree.length} process(es) below it gone after ${e.allSeconds.toFixed(2)} s`,
    );
  }, 240_000);

  it('without prctl, the thread that polls the parent stops the trainer the same way', async () => {
    const out = join(tmp, 'out-poll');
    const site = join(tmp, 'no-prctl');
    await mkdir(site, { recursive: true });
    await writeFile(join(site, 'sitecustomize.py'), NO_PRCTL);
    await writeFile(join(tmp, 'polling-parent.mjs'), POLLING_PARENT);
    const args = [
      join(tmp, 'polling-parent.mjs'),
      venvPython(),
      trainScript,
      site,
      '--data',
      data,
      '--epochs',
      '100',
      '--imgsz',
      '160',
      '--batch',
      '8',
      '--device',
      'cpu',
      '--out',
      out,
    ];
    const e = await killParentAt(out, 'epoch 1', args);
    expect(e.output).toMatch(/prctl unavailable \(no prctl in this test\); polling the parent instead/);
    expect(
      e.reaped.get(e.trainerPid),
      `train.py exit status (130: its interrupt path); reaped ${JSON.stringify([...e.reaped])}, trainer ${e.trainerPid}:\n${e.output.slice(-2000)}`,
    ).toBe(130);
    expect(
      e.tree.filter((pid) => !e.reaped.has(pid)),
      'processes that never ended',
    ).toEqual([]);
    expect(e.trainerSeconds).toBeLessThan(10);
    expect(existsSync(join(out, 'last.pt'))).toBe(true);
    console.log(
      `orphan check (polling fallback): train.py exited 130 ${e.trainerSeconds.toFixed(2)} s after its parent was killed, last.pt kept`,
    );
  }, 240_000);

  it('refuses to start when the parent it was told about is already gone (the race prctl cannot see)', async () => {
    const out = join(tmp, 'out-race');
    // Started by this test process, but told its parent is another pid: as if that parent had died already.
    const child = spawn(venvPython(), [trainScript, '--data', data, '--epochs', '1', '--imgsz', '160', '--out', out], {
      env: offlinePythonEnv({ LOUPE_PARENT_PID: String(process.pid + 1_000_000) }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(stderr).toMatch(/the process that started this trainer \(pid \d+\) is gone; not starting/);
    expect(existsSync(out)).toBe(false);
  }, 60_000);
});
