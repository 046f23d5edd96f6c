import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';

describe('loupe models list|show|register|approve|reject', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'loupe-mcli-'));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('lists the seeded champion, registers by hand (pending without a gate), approves and rejects with a history', async () => {
    const list = await runCli(['models', 'list', '--home', home, '--json']);
    expect(list.code, list.stderr).toBe(0);
    const l = JSON.parse(list.stdout);
    expect(l.champion).toBe('metal-tags:1');
    expect(l.versions.map((v: { ref: string; status: string }) => `${v.ref}:${v.status}`)).toEqual(['metal-tags:1:approved']);

    const onnx = join(projectRoot, 'test', 'fixtures', 'models', 'metal-tags-fp16.onnx');
    const reg = await runCli([
      'models',
      'register',
      '--home',
      home,
      '--onnx',
      onnx,
      '--parent',
      'metal-tags:1',
      '--dataset-version',
      'ds-x',
      '--json',
    ]);
    expect(reg.code, reg.stderr).toBe(0);
    expect(JSON.parse(reg.stdout)).toMatchObject({
      ref: 'metal-tags:2',
      status: 'pending',
      parentRef: 'metal-tags:1',
      datasetVersion: 'ds-x',
      source: 'cli',
    });
    // Registering the same file again adds nothing.
    expect(
      JSON.parse(
        (
          await runCli([
            'models',
            'register',
            '--home',
            home,
            '--onnx',
            onnx,
            '--parent',
            'metal-tags:1',
            '--dataset-version',
            'ds-x',
            '--json',
          ])
        ).stdout,
      ).ref,
    ).toBe('metal-tags:2');

    const noReason = await runCli(['models', 'reject', 'metal-tags:2', '--home', home]);
    expect(noReason.code).toBe(1);
    expect(noReason.stderr).toContain('--reason: rejecting needs a reason');

    // no gate result: approving needs --force and a reason, and says so
    const plain = await runCli(['models', 'approve', 'metal-tags:2', '--home', home, '--by', 'user:qa']);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(
      /metal-tags:2: no passing gate result: it has no gate result\. Gate it \(loupe models gate\), or approve with --force --reason WHY/,
    );
    const noWhy = await runCli(['models', 'approve', 'metal-tags:2', '--home', home, '--force']);
    expect(noWhy.stderr).toMatch(/a forced approval needs --reason/);
    const ok = await runCli([
      'models',
      'approve',
      'metal-tags:2',
      '--home',
      home,
      '--by',
      'user:qa',
      '--force',
      '--reason',
      'fp16 checked on the line',
      '--json',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ref: 'metal-tags:2', status: 'approved', champion: true });

    const no = await runCli(['models', 'reject', 'metal-tags:2', '--home', home, '--reason', 'too many false alarms', '--json']);
    expect(JSON.parse(no.stdout)).toMatchObject({ status: 'rejected', champion: false });

    const show = await runCli(['models', 'show', 'metal-tags:2', '--home', home, '--json']);
    const v = JSON.parse(show.stdout);
    expect(
      v.events.map(
        (e: { from: string | null; to: string; by: string; forced: boolean }) =>
          `${e.from ?? 'new'}>${e.to} ${e.by}${e.forced ? ' forced' : ''}`,
      ),
    ).toEqual(['new>pending policy', 'pending>approved user:qa forced', 'approved>rejected ' + v.events[2].by]);
    expect((await runCli(['models', 'show', 'metal-tags:2', '--home', home])).stdout).toMatch(
      /pending -> approved FORCED \(no passing gate\) {2}by user:qa: fp16 checked on the line/,
    );
    // a text file is not a model: refused at register, nothing added
    const notes = join(home, 'notes.onnx');
    await writeFile(notes, 'weights: see the shared drive\n');
    const txt = await runCli(['models', 'register', '--home', home, '--onnx', notes]);
    expect(txt.code).toBe(1);
    expect(txt.stderr).toMatch(/notes\.onnx: not a detection model loupe can run: not an ONNX model/);
    expect(v.paths.onnx).toContain(v.artefacts.onnx.sha256);

    const text = await runCli(['models', 'list', '--home', home]);
    expect(text.stdout.split('\n')[0]).toMatch(/^metal-tags:1\s+approved\s+champion/);
    expect(text.stdout.split('\n')[1]).toMatch(/^metal-tags:2\s+rejected/);
  });

  it('refuses bad input with a clear message and a non-zero exit', async () => {
    const a = await runCli(['models', 'show', 'metal-tags', '--home', home]);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('metal-tags: expected <group>:<version>');
    const b = await runCli(['models', 'list', '--home', home, '--status', 'great']);
    expect(b.stderr).toContain('--status great: must be pending, approved or rejected');
    const c = await runCli(['models', 'register', '--home', home, '--onnx', join(home, 'missing.onnx')]);
    expect(c.stderr).toContain('missing.onnx: artefact file not found');
    const d = await runCli(['models', 'approve', 'metal-tags:9', '--home', home]);
    expect(d.stderr).toContain('metal-tags:9: no such model version');
  });
});
