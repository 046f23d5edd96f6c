import { S3Client } from '@aws-sdk/client-s3';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { spawn } from 'node:child_process';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { runCli } from '../helpers/cli.js';
import { putUpload } from '../helpers/uploads.js';

describe('loupe labels / snapshot CLI (built dist/, real child processes)', () => {
  let dir: string;
  let os: ObjectStore;
  /** The embedded store's keys, the way a user hands them to the CLI (the default credential chain). */
  const s3env = () => ({ AWS_ACCESS_KEY_ID: os.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: os.credentials.secretAccessKey });
  const metal = datasetDir('metal-tags');
  const home = () => ['--home', join(dir, 'home')];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lcli-'));
    os = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'] });
    const s3 = new S3Client(os.clientConfig);
    const files = readdirSync(join(metal, 'bad')).sort().slice(10, 13);
    // Uploads named after the reference photos they are: the simulated workforce finds their truth by file name.
    for (const [i, f] of files.entries()) {
      await putUpload(s3, 'loupe', `incoming/line-2/2024/07/01/${f.replace(/\.jpg$/, '')}`, readFileSync(join(metal, 'bad', f)), {
        device: 'line-2',
        seq: i,
        time: new Date((1719820800 + i) * 1000).toISOString(),
      });
    }
    s3.destroy();
  });
  afterAll(async () => {
    await os.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports history, ingests uploads, runs a simulated job and snapshots', async () => {
    const bad = await runCli(['labels', 'import', ...home(), '--csv', join(metal, 'labels.csv'), '--until', 'last tuesday', '--json']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--until.*neither epoch seconds nor an ISO-8601 time|neither epoch seconds nor an ISO-8601 time.*--until/);
    const early = await runCli([
      'labels',
      'import',
      ...home(),
      '--csv',
      join(metal, 'labels.csv'),
      '--until',
      '2022-07-07T12:25:00Z',
      '--json',
    ]);
    expect(early.code, early.stderr).toBe(0);
    expect(JSON.parse(early.stdout)).toEqual({ read: 235, appended: 44, images: 44, later: 191, excluded: 0 });
    const imp = await runCli(['labels', 'import', ...home(), '--csv', join(metal, 'labels.csv'), '--json']);
    expect(imp.code, imp.stderr).toBe(0);
    expect(JSON.parse(imp.stdout)).toEqual({ read: 235, appended: 191, images: 235, later: 0, excluded: 0 });

    const ing = await runCli(['labels', 'ingest', ...home(), '--endpoint', os.endpoint, '--bucket', 'loupe', '--json'], { env: s3env() });
    expect(ing.code, ing.stderr).toBe(0);
    expect(JSON.parse(ing.stdout)).toMatchObject({ recorded: 3, alreadyKnown: 0, invalid: [] });
    expect(
      JSON.parse(
        (await runCli(['labels', 'ingest', ...home(), '--endpoint', os.endpoint, '--bucket', 'loupe', '--json'], { env: s3env() })).stdout,
      ),
    ).toMatchObject({ recorded: 0 });

    const job = await runCli([
      'labels',
      'job',
      'create',
      ...home(),
      '--name',
      'cli-job',
      '--classes',
      'scratch',
      '--workers',
      '2',
      '--json',
    ]);
    expect(job.code, job.stderr).toBe(0);
    expect(JSON.parse(job.stdout)).toMatchObject({ name: 'cli-job', counts: { items: 3 }, workersPerImage: 2 });

    const sim = await runCli(['labels', 'simulate', ...home(), '--job', 'cli-job', '--workers', '2', '--seed', '5', '--json']);
    expect(sim.code, sim.stderr).toBe(0);
    const s = JSON.parse(sim.stdout);
    expect(s.labelled.submitted).toBe(6);
    expect(s.verified.approved + s.verified.rejected).toBe(3);
    expect(s.job.status).toBe('done');

    const stats = JSON.parse((await runCli(['labels', 'stats', ...home(), '--json'])).stdout);
    expect(stats).toMatchObject({ images: 238, approved: 235 + s.verified.approved, rejected: s.verified.rejected });

    const snap = await runCli(['snapshot', 'create', ...home(), '--endpoint', os.endpoint, '--classes', 'scratch', '--json'], {
      env: s3env(),
    });
    expect(snap.code, snap.stderr).toBe(0);
    const sj = JSON.parse(snap.stdout);
    // the uploads are the reference photos byte for byte: each approved one is left out as a duplicate
    expect(s.verified.approved).toBeGreaterThan(0);
    expect(sj.counts).toMatchObject({ images: 235, duplicates: s.verified.approved });
    expect(sj.duplicates).toHaveLength(s.verified.approved);
    expect(
      sj.duplicates.every(
        (d: { sourceRef: string; duplicateOfId: string }) =>
          d.sourceRef.startsWith('s3://loupe/incoming/line-2/') && d.duplicateOfId.startsWith('bad/'),
      ),
    ).toBe(true);
    expect(existsSync(sj.dataYaml)).toBe(true);
    expect(snap.stdout.trim().split('\n')).toHaveLength(1); // logs went to stderr
  });

  it('refuses bad input with a message naming it and a non-zero exit, writing nothing', async () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(
      bad,
      "source_ref,image_width,image_height,image_depth,annotations,event_time,labeling_job,status\ns3://b/a.jpg,450,300,3,[],12,job,APPROVED\ns3://b/b.jpg,450,300,3,\"[{'class_id': 0, 'left': 400, 'top': 0, 'width': 90, 'height': 10}]\",12,job,APPROVED\n",
    );
    const h = ['--home', join(dir, 'home2')];
    const r = await runCli(['labels', 'import', ...h, '--csv', bad]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/bad\.csv: row 3 \(s3:\/\/b\/b\.jpg\): annotations\.0: box .* outside the 450x300 image/);
    expect(JSON.parse((await runCli(['labels', 'stats', ...h, '--json'])).stdout)).toMatchObject({ images: 0, records: 0 });
    const t = await runCli(['labels', 'list', ...h, '--as-of', 'yesterday']);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/--as-of: "yesterday" is neither epoch seconds nor an ISO-8601 time/);
    const e = await runCli(['snapshot', 'create', ...h, '--classes', 'scratch']);
    expect(e.code).not.toBe(0);
    expect(e.stderr).toMatch(/no approved labels/);
    const srv = await runCli(['labels', 'serve', ...h]);
    expect(srv.code).not.toBe(0);
    expect(srv.stderr).toMatch(/no worker has a credential yet; add one with `loupe labels workers add NAME/);
    // a secret on the command line (visible in ps and shell history) is refused, not used
    const tok = await runCli(['labels', 'serve', ...h, '--token', 'shared-secret-123']);
    expect(tok.code).not.toBe(0);
    expect(tok.stderr).toMatch(/--token: shared tokens are gone: one holder could submit as every worker/);
    const w = await runCli(['labels', 'workers', 'add', ...h, 'bad name']);
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/bad name: a worker id is 1-64 letters/);
    const role = await runCli(['labels', 'workers', 'add', ...h, 'ann', '--roles', 'label,approve']);
    expect(role.stderr).toMatch(/unknown role "approve"/);
  });

  it('issues per-worker credentials; the UI serves their owners only', async () => {
    const h = ['--home', join(dir, 'home3')];
    const add = await runCli(['labels', 'workers', 'add', ...h, 'ann', '--roles', 'label']);
    expect(add.code, add.stderr).toBe(0);
    const token = add.stdout.trim();
    expect(token).toMatch(/^loupe_w_[\w-]{43}$/);
    expect(add.stderr).toMatch(/only its hash is stored/);
    expect((await runCli(['labels', 'workers', 'add', ...h, 'ann'])).stderr).toMatch(/already has a credential/);
    const list = await runCli(['labels', 'workers', 'list', ...h, '--json']);
    expect(JSON.parse(list.stdout)).toMatchObject({ id: 'ann', roles: ['label'], revoked: null });
    expect(list.stdout).not.toContain(token);

    const child = spawn(process.execPath, [join(projectRoot, 'bin', 'loupe.js'), 'labels', 'serve', ...h, '--port', '0'], {
      env: { ...process.env, LOUPE_LABEL_TOKEN: 'old-shared-token' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      let err = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr!.on('data', (b: Buffer) => {
          err += b.toString();
          const m = /labelling UI at (http:\/\/\S+)/.exec(err);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`labels serve exited ${code}: ${err}`)));
      });
      expect(err).toMatch(/LOUPE_LABEL_TOKEN is no longer used/);
      const me = await fetch(url + 'api/me', { headers: { authorization: `Bearer ${token}` } });
      expect(await me.json()).toEqual({ worker: 'ann', roles: ['label'] });
      const rot = await runCli(['labels', 'workers', 'rotate', ...h, 'ann', '--json']);
      const fresh = JSON.parse(rot.stdout) as { token: string; worker: { id: string } };
      expect(fresh.worker.id).toBe('ann');
      expect((await fetch(url + 'api/me', { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
      expect((await fetch(url + 'api/me', { headers: { authorization: `Bearer ${fresh.token}` } })).status).toBe(200);
      expect((await runCli(['labels', 'workers', 'revoke', ...h, 'ann'])).stdout).toMatch(/ann .* revoked/);
      expect((await fetch(url + 'api/me', { headers: { authorization: `Bearer ${fresh.token}` } })).status).toBe(401);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
