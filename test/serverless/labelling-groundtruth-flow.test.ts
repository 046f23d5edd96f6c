import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { parse as parseCsv } from 'csv-parse/sync';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { ingestHandler, labelHandler, lambda, publishLabelsHandler, verifyHandler } from '../../cloud/serverless/handlers.js';
import { RUNTIME_ENV } from '../../cloud/serverless/runtime.js';
import { datasetDir } from '../../lib/paths.js';
import type { GtBox } from '../../contracts/box.js';
import { executeStateMachine, synthesiseDefinitions, task } from '../helpers/local-sfn.js';
import { LATE_REFERENCE_PHOTOS, putUpload } from '../helpers/uploads.js';
import { ACCOUNT, FakeAwsWorkers, installFakeAws, readCalls } from '../loop-aws/fake-aws.js';

/**
 * The labelling state machine's Ground Truth wait loops (Label ⟲ WaitForLabellers, Verify ⟲
 * WaitForVerifiers), walked with labeling.backend "groundtruth": the real handlers start and
 * poll Ground Truth jobs through loupe's Ground Truth backend; the SageMaker control plane is the
 * request-shape fake of test/loop-aws/fake-aws.ts (moto 5.2.5 does not implement
 * CreateLabelingJob), whose simulated workers write real Ground Truth output manifests to the
 * embedded object store once the test lets them start (after the state machine has waited once).
 */
const REGION = 'eu-west-1';
const metal = datasetDir('metal-tags');
const PHOTOS = LATE_REFERENCE_PHOTOS.slice(0, 3);
const WORKTEAM = `arn:aws:sagemaker:${REGION}:${ACCOUNT}:workteam/private-crowd/inspectors`;

let dir: string;
let os: ObjectStore;
let s3: S3Client;
let workers: FakeAwsWorkers;
let fake: { restore(): void };
const saved: Record<string, string | undefined> = {};

/** The reference boxes of each photo (labels.csv: Python-literal dicts). */
function referenceBoxes(): Map<string, { width: number; height: number; boxes: GtBox[] }> {
  const rows = parseCsv(readFileSync(join(metal, 'labels.csv')), {
    columns: true,
    skip_empty_lines: true,
    relax_column_count: true,
  }) as Record<string, string>[];
  const out = new Map<string, { width: number; height: number; boxes: GtBox[] }>();
  for (const r of rows) {
    if (!r.source_ref || !r.annotations) continue;
    const photo = r.source_ref!.split('/').slice(-2).join('/');
    out.set(photo, {
      width: Number(r.image_width),
      height: Number(r.image_height),
      boxes: JSON.parse(r.annotations!.replaceAll("'", '"')) as GtBox[],
    });
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-sfn-gt-'));
  os = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe', 'loupe-ml'] });
  s3 = new S3Client(os.clientConfig);
  // Storage "s3" (Ground Truth reads and writes through S3) at the embedded store, with its keys from the environment.
  for (const [k, v] of Object.entries({
    AWS_ACCESS_KEY_ID: os.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: os.credentials.secretAccessKey,
  })) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  const refs = referenceBoxes();
  const byUpload = new Map<string, string>();
  for (const [i, f] of PHOTOS.entries()) {
    const key = `incoming/line-1/2024/06/01/frame-${i}`;
    await putUpload(s3, 'loupe', key, readFileSync(join(metal, f)), { device: 'line-1', seq: i });
    byUpload.set(`s3://loupe/${key}.jpg`, f);
  }
  fake = installFakeAws(join(dir, 'aws'), { region: REGION, services: ['sagemaker'] });
  workers = new FakeAwsWorkers({
    dir: join(dir, 'aws'),
    s3,
    classes: ['scratch'],
    truth: async (ref) => {
      const t = refs.get(byUpload.get(ref) ?? '');
      if (!t) throw new Error(`no reference for ${ref}`);
      return t;
    },
  });
  workers.start();
}, 240_000);

afterAll(async () => {
  await workers?.stop();
  fake?.restore();
  s3?.destroy();
  await os?.stop();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the labelling state machine with Ground Truth (fake control plane, real handlers, embedded S3)', () => {
  it('waits for the labellers and the verifiers (the wait loops), then writes the labels and starts the model build', async () => {
    const definition = (await synthesiseDefinitions(join(dir, 'synth'), { account: ACCOUNT, region: REGION })).labelling;
    const env: NodeJS.ProcessEnv = {
      [RUNTIME_ENV.config]: JSON.stringify({
        group: 'metal-tags',
        classes: ['scratch'],
        storage: { backend: 's3', region: REGION, endpoint: os.endpoint, forcePathStyle: true, bucket: 'loupe', prefix: 'incoming/' },
        aws: { region: REGION, roleArn: `arn:aws:iam::${ACCOUNT}:role/loupe-ground-truth`, bucket: 'loupe-ml' },
        history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal, until: 1657199072 },
        // waitMinutes 0: each invocation looks at the job once and answers `waiting`; the state machine waits.
        labeling: {
          backend: 'groundtruth',
          workersPerImage: 1,
          cap: 20,
          waitMinutes: 0,
          groundTruth: { workteamArn: WORKTEAM, pollSeconds: 0.2 },
        },
        labelStore: { backend: 'sqlite' },
      }),
      [RUNTIME_ENV.home]: 's3://loupe-ml/loupe/home/',
      [RUNTIME_ENV.logLevel]: 'silent',
    };
    const label = task(lambda(labelHandler, env));
    let waits = 0;
    const x = await executeStateMachine(definition, {
      name: 'gt-1',
      machine: 'loupe-labelling',
      input: { trigger: 'schedule' },
      tasks: {
        Ingest: task(lambda(ingestHandler, env)),
        Label: async (i) => {
          const r = (await label(i)) as { status: string };
          // The people start once the state machine has waited for them once.
          if (r.status === 'waiting' && ++waits === 2) workers.releaseLabeling();
          return r as never;
        },
        Verify: task(lambda(verifyHandler, env)),
        WriteFeatureGroup: task(lambda(publishLabelsHandler, env)),
        StartModelBuild: () => ({ PipelineExecutionArn: `arn:aws:sagemaker:${REGION}:${ACCOUNT}:pipeline/loupe-model-build/execution/x1` }),
      },
      waits: { WaitForLabellers: 300, WaitForVerifiers: 300 },
    });
    expect(x.error, JSON.stringify(x.error)).toBeUndefined();
    expect(workers.failures()).toEqual([]);
    const p = x.path;
    expect(p.slice(0, 4)).toEqual(['Start', 'Ingest', 'ShouldLabel', 'Label']);
    // At least two turns of the labelling wait loop (the workers start after the second), then verification.
    const loop = ['LabellingDone', 'WaitForLabellers', 'Label'];
    expect(p.slice(4, 10)).toEqual([...loop, ...loop]);
    const verifyAt = p.indexOf('Verify');
    expect(p.slice(verifyAt - 1, verifyAt + 1)).toEqual(['LabellingDone', 'Verify']);
    expect(p).toContain('WaitForVerifiers');
    expect(p.slice(-4)).toEqual(['WriteFeatureGroup', 'NewLabels', 'StartModelBuild', 'ModelBuildStarted']);
    const o = x.output as { label: { status: string }; verify: { status: string; output: { approved: number } } };
    expect(o.label.status).toBe('done');
    expect(o.verify).toMatchObject({ status: 'done' });
    expect(o.verify.output.approved).toBe(PHOTOS.length);
    // One labelling job and one verification job, however many times the state machine looked.
    const calls = readCalls(join(dir, 'aws'));
    const created = calls.filter((c) => c.cmd === 'CreateLabelingJob').map((c) => c.input.LabelingJobName);
    expect(created).toHaveLength(2);
    expect(new Set(created).size).toBe(2);
    expect(calls.filter((c) => c.cmd === 'DescribeLabelingJob').length).toBeGreaterThanOrEqual(4);
  }, 300_000);
});
