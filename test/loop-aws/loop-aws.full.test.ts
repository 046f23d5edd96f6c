import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { datasetDir } from '../../lib/paths.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { readLabelsCsv, pyAnnotations } from '../../contracts/labels-csv.js';
import { uploadSidecar } from '../../contracts/upload.js';
import { openRegistry } from '../../cloud/registry/sqlite-registry.js';
import { SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { FleetStore } from '../../cloud/publish/fleet-store.js';
import { STEP_NAMES } from '../../cloud/loop/steps.js';
import type { LoopConfigInput } from '../../cloud/loop/config.js';
import { ensureVenv } from '../../cloud/training/venv.js';
import { snapshotDist, type DistSnapshot } from '../helpers/dist-snapshot.js';
import { ACCOUNT, FakeAwsWorkers, bytesOf, readCalls, seedFleet, suiteFleet, type RecordedCall } from './fake-aws.js';
import { EXPECTED_DEFAULT_DEPLOYMENT_POLICIES, EXPECTED_FEATURE_DEFINITIONS, EXPECTED_METRIC_DEFINITIONS } from '../helpers/aws-shapes.js';

/**
 * The loop with every stage on AWS: Feature Store label mirror, Ground Truth labelling and
 * verification, SageMaker training, SageMaker Model Registry mirror, Greengrass fleet. The AWS
 * control plane is mocked (aws-sdk-client-mock, fake-aws.ts) and every request it got is
 * asserted exactly; the S3 data plane is the real embedded object store. Each loop run is its own
 * process (loop-child.ts) and is SIGKILLed right after an AWS create call was accepted (the worst
 * moment: AWS has the job, the loop never saw the answer), then resumed; once a Ground Truth job
 * outlasts the wait, the run pauses ("waiting") and the next run picks it up. At the end: one of
 * each job, package, component version and deployment, and every label record in Feature Store
 * once (plus the one record whose PutRecord was accepted just before the kill, identical).
 * Training is real (train.py, 1 epoch at 160 px, run the way SageMaker runs the image).
 */
const REGION = 'eu-west-1';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/loupe-sagemaker`;
const WORKTEAM = `arn:aws:sagemaker:${REGION}:${ACCOUNT}:workteam/private-crowd/inspectors`;
const IMAGE = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/loupe-train:1`;
const GROUP_ARN = `arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/press-line-3`;
const CREDS = { accessKeyId: 'AKIALOOPAWSTEST00001', secretAccessKey: 'loop-aws-test-secret' };
const DEVICE = 'press-3-cam-1';

let dist: DistSnapshot;
let dir: string;
let store: ObjectStore;
let s3: S3Client;
let workers: FakeAwsWorkers;

const metal = datasetDir('metal-tags');
const reference = readLabelsCsv(join(metal, 'labels.csv'));
const tail = (ref: string) => ref.split('/').slice(-2).join('/');
// Six photos the device uploads: four with scratches, two without.
const withBoxes = reference.filter((r) => r.annotations.length > 0).slice(0, 4);
const without = reference.filter((r) => r.annotations.length === 0).slice(0, 2);
const uploads = [...withBoxes, ...without].map((r, i) => ({ key: `incoming/${DEVICE}/2026/11/26/f${i}`, ref: r }));
const uploadRef = (i: number) => `s3://loupe-uploads/${uploads[i]!.key}.jpg`;

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function loopRun(home: string, env: Record<string, string> = {}): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [dist.file('test/loop-aws/loop-child.js'), home, join(dir, 'aws'), REGION], {
      // Keys for the S3 client through the default chain (storage.backend "s3" never reads keys from loop.json).
      env: {
        ...process.env,
        LOUPE_NO_PROGRESS: '1',
        AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const report = (c: Child) =>
  JSON.parse(c.stdout.trim().split('\n').at(-1)!) as {
    status: string;
    halt: string | null;
    resumed: boolean;
    run: number;
    steps: { name: string; status: string; attempts: number }[];
    outputs: Record<string, Record<string, unknown>>;
  };
const calls = (cmd: string): RecordedCall[] => readCalls(join(dir, 'aws')).filter((c) => c.cmd === cmd);
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function keys(bucket: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    out.push(...(page.Contents ?? []).map((c) => c.Key!));
    token = page.NextContinuationToken;
  } while (token);
  return out.sort();
}

async function object(bucket: string, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

describe.sequential('the loop with its AWS stages (control plane mocked, S3 real, killed and resumed)', () => {
  let home: string;
  const shippedSha = sha256(readFileSync(join(SHIPPED_MODEL_DIR, 'model.onnx')));

  beforeAll(async () => {
    await ensureVenv();
    dist = snapshotDist();
    dir = await mkdtemp(join(tmpdir(), 'lp-aws-'));
    store = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe-uploads', 'loupe-ml'], credentials: CREDS, region: REGION });
    s3 = new S3Client({ ...store.clientConfig, credentials: CREDS });
    // The device's uploads: the photo and its sidecar (detections are the pre-annotations).
    for (const [i, u] of uploads.entries()) {
      // A new photo of a part the reference labelled: same scene, new bytes (a snapshot leaves out byte-identical copies).
      const photo = await sharp(join(metal, tail(u.ref.source_ref)))
        .jpeg({ quality: 92 })
        .toBuffer();
      await s3.send(new PutObjectCommand({ Bucket: 'loupe-uploads', Key: `${u.key}.jpg`, Body: photo }));
      const detections =
        i === 0 ? [{ xyxy: [81, 123, 163, 220] as [number, number, number, number], conf: 0.62, cls: 0, name: 'scratch' }] : [];
      const sidecar = uploadSidecar({
        device: DEVICE,
        camera: 'cam1',
        frameId: `f${i}`,
        seq: i,
        time: `2026-11-26T08:00:0${i}Z`,
        trigger: 'interval',
        reason: 'defect',
        reasons: detections.length ? ['defect'] : [],
        verdict: detections.length ? 'fail' : 'pass',
        model: { name: 'metal-tags', version: '1.0.0', sha256: shippedSha },
        image: {
          key: `${u.key}.jpg`,
          width: u.ref.image_width,
          height: u.ref.image_height,
          originalWidth: u.ref.image_width,
          originalHeight: u.ref.image_height,
          bytes: photo.length,
          sha256: sha256(photo),
          contentType: 'image/jpeg',
        },
        detections,
      });
      await s3.send(new PutObjectCommand({ Bucket: 'loupe-uploads', Key: `${u.key}.json`, Body: JSON.stringify(sidecar) }));
    }
    // The thing group as loupe's suite left it: loupe.Model 1.0.0 (the shipped model) and its siblings.
    seedFleet(
      join(dir, 'aws'),
      suiteFleet({
        thingGroupArn: GROUP_ARN,
        devices: [DEVICE],
        artefacts: 's3://loupe-ml/loupe/components/loupe.Model/1.0.0/',
        modelSha256: shippedSha,
        inference: { configurationUpdate: { merge: '{"threshold":0.4}' } },
      }),
    );
    const byRef = new Map(uploads.map((u, i) => [uploadRef(i), u.ref]));
    workers = new FakeAwsWorkers({
      dir: join(dir, 'aws'),
      s3,
      classes: ['scratch'],
      truth: async (ref) => {
        const r = byRef.get(ref);
        if (!r) throw new Error(`no truth for ${ref}`);
        return { width: r.image_width, height: r.image_height, boxes: r.annotations };
      },
      rejectComment: (ref) => (ref === uploadRef(1) ? 'the scratch on the left edge has no box' : undefined),
    });
    workers.start();

    home = join(dir, 'home');
    await mkdir(home, { recursive: true });
    const config: LoopConfigInput = {
      group: 'metal-tags',
      classes: ['scratch'],
      storage: {
        backend: 's3',
        region: REGION,
        endpoint: store.endpoint,
        forcePathStyle: true,
        bucket: 'loupe-uploads',
        prefix: 'incoming/',
      },
      aws: { region: REGION, roleArn: ROLE, bucket: 'loupe-ml' },
      history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal },
      labelStore: { backend: 'featurestore', featureGroupName: 'loupe-labels' },
      labeling: {
        backend: 'groundtruth',
        workersPerImage: 2,
        cap: 20,
        waitMinutes: 0.03,
        groundTruth: { workteamArn: WORKTEAM, pollSeconds: 0.2 },
      },
      train: {
        backend: 'sagemaker',
        epochs: 1,
        imgsz: 160,
        batch: 16,
        workers: 0,
        sagemaker: { image: IMAGE, instanceType: 'ml.g5.xlarge', pollSeconds: 0.5 },
      },
      // Wide open: the run must go through register, publish and deploy with a CI-sized challenger.
      gate: { metric: 'map50', threshold: 0, tolerance: 1 },
      // int8 opened wide too: the fleet gets the challenger's int8 file, and SageMaker records both.
      int8: { tolerance: 1 },
      registry: { backend: 'sagemaker' },
      fleet: { backend: 'aws', thingGroupArn: GROUP_ARN, bucket: 'loupe-ml', confirmTimeoutSeconds: 60, pollSeconds: 0.5 },
    };
    await writeFile(join(home, 'loop.json'), JSON.stringify(config, null, 2));
  });

  afterAll(async () => {
    await workers?.stop();
    s3?.destroy();
    await store?.stop();
    dist?.remove();
    if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
  });

  it('killed after each AWS create call, paused while Ground Truth works, resumed: one of everything', async () => {
    const crash = async (spec: string) => {
      const c = await loopRun(home, { FAKE_AWS_CRASH: spec });
      expect(c.signal, `${spec}: ${c.stderr.slice(-3000)}`).toBe('SIGKILL');
    };
    // 1. ingest: killed mid-mirror, right after Feature Store accepted the 120th record
    await crash('PutRecord#120');
    // 2. label: killed right after CreateLabelingJob was accepted
    await crash('CreateLabelingJob#1');
    // 3. label again: re-attaches to the job, whose images are still with people → the run waits
    const waiting = await loopRun(home);
    expect(waiting.code, waiting.stderr.slice(-3000)).toBe(0);
    const w = report(waiting);
    expect(w.status).toBe('waiting');
    expect(w.halt).toMatch(
      /^Ground Truth labelling job loupe-[0-9a-f]{8}-r1 is InProgress \(0 labelled, 0 to go\); `loupe loop run` or `loupe loop watch` picks it up$/,
    );
    expect(w.steps.find((s) => s.name === 'label')).toMatchObject({ status: 'waiting', attempts: 2 });
    // People label; the next run imports the labels and starts verification (killed after it was accepted)
    workers.releaseLabeling();
    await crash('CreateLabelingJob#2');
    // 4. train: killed right after CreateTrainingJob; the job runs on at "AWS"
    await crash('CreateTrainingJob#1');
    // 5. register: killed right after the challenger's CreateModelPackage (the seed's was #1)
    await crash('CreateModelPackage#2');
    // 6. publish and deploy on Greengrass
    await crash('CreateComponentVersion#1');
    await crash('CreateDeployment#1');
    const last = await loopRun(home);
    expect(last.code, last.stderr.slice(-4000)).toBe(0);
    expect(workers.failures()).toEqual([]);
    const r = report(last);
    expect(r).toMatchObject({ run: 1, status: 'succeeded', resumed: true, halt: null });
    const attempts = Object.fromEntries(r.steps.map((s) => [s.name, s.attempts]));
    expect(attempts).toEqual({
      ingest: 2,
      label: 3,
      verify: 2,
      snapshot: 1,
      train: 2,
      quantize: 1,
      evaluate: 1,
      gate: 1,
      register: 2,
      publish: 2,
      deploy: 2,
      confirm: 1,
    });
    expect(r.steps.map((s) => s.status)).toEqual(STEP_NAMES.map(() => 'done'));

    const installation = (
      new Database(join(home, 'loop.db'), { readonly: true }).prepare("SELECT v FROM kv WHERE k = 'installation.id'").get() as { v: string }
    ).v;
    const prefix = `loupe-${JSON.parse(installation) as string}`;
    const job = `${prefix}-r1`;
    const trainJob = `${job}-train`;
    expect(r.outputs.label).toMatchObject({ job, items: 6, consolidated: 6, groundTruth: { job, status: 'Completed', created: false } });
    expect(r.outputs.verify).toMatchObject({
      job,
      approved: 5,
      rejected: 1,
      groundTruth: { job: `${job}-verify`, status: 'Completed', created: false },
    });
    expect(r.outputs.train).toMatchObject({ backend: 'sagemaker', epochs: 1, sagemaker: { name: trainJob, attached: true, earlier: [] } });

    // ---- SageMaker training: one job, found again by name after the kill ----
    const reg = openRegistry(join(home, 'registry'));
    const [v1, v2] = await reg.list({ group: 'metal-tags' });
    reg.close();
    expect([v1?.status, v2?.status]).toEqual(['approved', 'approved']);
    expect(calls('CreateTrainingJob').map((c) => c.input)).toEqual([
      {
        TrainingJobName: trainJob,
        AlgorithmSpecification: {
          TrainingImage: IMAGE,
          TrainingInputMode: 'File',
          MetricDefinitions: EXPECTED_METRIC_DEFINITIONS,
        },
        RoleArn: ROLE,
        HyperParameters: {
          data_yaml: 'data.yaml',
          model: `${v1!.artefacts.pt!.sha256}.pt`,
          epochs: '1',
          imgsz: '160',
          batch: '16',
          patience: '50',
          seed: '0',
          workers: '0',
        },
        InputDataConfig: [
          {
            ChannelName: 'dataset',
            DataSource: {
              S3DataSource: {
                S3DataType: 'S3Prefix',
                S3Uri: `s3://loupe-ml/loupe/training/${trainJob}/input/dataset/`,
                S3DataDistributionType: 'FullyReplicated',
              },
            },
          },
          {
            ChannelName: 'base',
            DataSource: {
              S3DataSource: {
                S3DataType: 'S3Prefix',
                S3Uri: `s3://loupe-ml/loupe/training/${trainJob}/input/base/`,
                S3DataDistributionType: 'FullyReplicated',
              },
            },
          },
        ],
        OutputDataConfig: { S3OutputPath: `s3://loupe-ml/loupe/training/${trainJob}/output` },
        ResourceConfig: { InstanceType: 'ml.g5.xlarge', InstanceCount: 1, VolumeSizeInGB: 30 },
        StoppingCondition: { MaxRuntimeInSeconds: 3600 },
      },
    ]);
    const describes = calls('DescribeTrainingJob');
    expect(describes.length).toBeGreaterThanOrEqual(3); // not found before the create, found after the kill, polled until Completed
    for (const d of describes) expect(d.input).toEqual({ TrainingJobName: trainJob });
    expect(calls('StopTrainingJob')).toEqual([]);
    // The channels and the model came through the real store; the challenger is what the job trained.
    const channel = await keys('loupe-ml', `loupe/training/${trainJob}/input/`);
    expect(channel).toContain(`loupe/training/${trainJob}/input/dataset/data.yaml`);
    expect(channel).toContain(`loupe/training/${trainJob}/input/base/${v1!.artefacts.pt!.sha256}.pt`);
    expect(channel.filter((k) => k.includes('/dataset/images/')).length).toBe((r.outputs.snapshot!.counts as { images: number }).images);
    expect(await keys('loupe-ml', `loupe/training/${trainJob}/output/`)).toEqual([
      `loupe/training/${trainJob}/output/${trainJob}/output/model.tar.gz`,
    ]);
    expect(readFileSync(String(r.outputs.train!.onnx)).length).toBe(v2!.artefacts.onnx.size);
    expect(sha256(readFileSync(String(r.outputs.train!.onnx)))).toBe(v2!.artefacts.onnx.sha256);

    // ---- Ground Truth: one labelling job and one verification job ----
    const lambda = (kind: string) => `arn:aws:lambda:${REGION}:568282634449:function:${kind}`;
    const gtBase = `s3://loupe-ml/loupe/labeling/${job}/`;
    const humanTask = {
      WorkteamArn: WORKTEAM,
      TaskTimeLimitInSeconds: 600,
      TaskAvailabilityLifetimeInSeconds: 864000,
      MaxConcurrentTaskCount: 1000,
    };
    const tags = [
      { Key: 'loupe:component', Value: 'labeling' },
      { Key: 'loupe:installation', Value: prefix.slice('loupe-'.length) },
    ];
    expect(calls('CreateLabelingJob').map((c) => c.input)).toEqual([
      {
        LabelingJobName: job,
        LabelAttributeName: 'bounding-box',
        InputConfig: {
          DataSource: { S3DataSource: { ManifestS3Uri: `${gtBase}input.manifest` } },
          DataAttributes: { ContentClassifiers: ['FreeOfPersonallyIdentifiableInformation', 'FreeOfAdultContent'] },
        },
        OutputConfig: { S3OutputPath: `${gtBase}output/` },
        RoleArn: ROLE,
        LabelCategoryConfigS3Uri: `${gtBase}categories.json`,
        StoppingConditions: { MaxPercentageOfInputDatasetLabeled: 100 },
        HumanTaskConfig: {
          ...humanTask,
          UiConfig: { UiTemplateS3Uri: `${gtBase}template.liquid.html` },
          PreHumanTaskLambdaArn: lambda('PRE-BoundingBox'),
          TaskKeywords: ['Image', 'Bounding Box', 'Quality inspection'],
          TaskTitle: 'Box the defects (scratch)',
          TaskDescription: 'Box every scratch on the tag; leave the box empty when there is none.',
          NumberOfHumanWorkersPerDataObject: 2,
          AnnotationConsolidationConfig: { AnnotationConsolidationLambdaArn: lambda('ACS-BoundingBox') },
        },
        Tags: tags,
      },
      {
        LabelingJobName: `${job}-verify`,
        LabelAttributeName: 'verify-bounding-box',
        InputConfig: {
          DataSource: { S3DataSource: { ManifestS3Uri: `${gtBase}output/${job}/manifests/output/output.manifest` } },
          DataAttributes: { ContentClassifiers: ['FreeOfPersonallyIdentifiableInformation', 'FreeOfAdultContent'] },
        },
        OutputConfig: { S3OutputPath: `${gtBase}verification/output/` },
        RoleArn: ROLE,
        LabelCategoryConfigS3Uri: `${gtBase}verification/categories.json`,
        StoppingConditions: { MaxPercentageOfInputDatasetLabeled: 100 },
        HumanTaskConfig: {
          ...humanTask,
          UiConfig: { UiTemplateS3Uri: `${gtBase}verification/template.liquid.html` },
          PreHumanTaskLambdaArn: lambda('PRE-VerificationBoundingBox'),
          TaskKeywords: ['Image', 'Label verification', 'Quality inspection'],
          TaskTitle: 'Check the defect boxes',
          TaskDescription: 'Approve the boxes when every defect is boxed tightly; otherwise say what is wrong.',
          NumberOfHumanWorkersPerDataObject: 1,
          AnnotationConsolidationConfig: { AnnotationConsolidationLambdaArn: lambda('ACS-VerificationBoundingBox') },
        },
        Tags: tags,
      },
    ]);
    for (const d of calls('DescribeLabelingJob'))
      expect([{ LabelingJobName: job }, { LabelingJobName: `${job}-verify` }]).toContainEqual(d.input);
    // The input manifest in the real store: the six uploads with the device's detections.
    const manifest = (await object('loupe-ml', `loupe/labeling/${job}/input.manifest`))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(manifest.map((l) => l['source-ref'])).toEqual(uploads.map((_, i) => uploadRef(i)));
    expect(manifest[0]!['loupe-pre-annotations']).toEqual([{ class_id: 0, left: 81, top: 123, width: 82, height: 97, confidence: 0.62 }]);

    // ---- labels: each written once; the verdicts of the verification job ----
    const db = new Database(join(home, 'labels.db'), { readonly: true });
    interface Rec {
      seq: number;
      source_ref: string;
      event_time: number;
      status: string;
      labeling_job: string;
      annotations: string;
      image_width: number;
      image_height: number;
      image_depth: number;
      device: string;
      capture_time: number | null;
      model_version: string;
      meta: string;
    }
    const records = db.prepare('SELECT * FROM label_records ORDER BY seq').all() as Rec[];
    const watermark = db.prepare('SELECT seq FROM featurestore_mirror').get() as { seq: number };
    db.close();
    const dup = records.map((x) => `${x.source_ref}|${x.status}|${x.labeling_job}`).filter((k, i, a) => a.indexOf(k) !== i);
    expect(dup).toEqual([]);
    const mine = records.filter((x) => x.labeling_job === `labeling-job/${job}`);
    expect(
      mine
        .filter((x) => x.status === 'APPROVED')
        .map((x) => x.source_ref)
        .sort(),
    ).toEqual([0, 2, 3, 4, 5].map(uploadRef).sort());
    const rejected = mine.filter((x) => x.status === 'REJECTED');
    expect(rejected.map((x) => [x.source_ref, JSON.parse(x.meta).reason])).toEqual([
      [uploadRef(1), 'A defect is not boxed: the scratch on the left edge has no box'],
    ]);
    const approved0 = mine.find((x) => x.source_ref === uploadRef(0) && x.status === 'APPROVED')!;
    expect(JSON.parse(approved0.annotations).map(({ confidence: _c, ...b }: Record<string, number>) => b)).toEqual(
      uploads[0]!.ref.annotations,
    );

    // ---- Feature Store: the group once, every record once (one repeat: the one accepted just before the kill) ----
    expect(calls('CreateFeatureGroup').map((c) => c.input)).toEqual([
      {
        FeatureGroupName: 'loupe-labels',
        RecordIdentifierFeatureName: 'source_ref',
        EventTimeFeatureName: 'event_time',
        FeatureDefinitions: EXPECTED_FEATURE_DEFINITIONS,
        OnlineStoreConfig: { EnableOnlineStore: false },
        OfflineStoreConfig: { S3StorageConfig: { S3Uri: 's3://loupe-ml/loupe/featurestore/' }, DisableGlueTableCreation: false },
        RoleArn: ROLE,
        Description: 'loupe label records (reference feature-store layout + device, capture time, model version)',
      },
    ]);
    const puts = calls('PutRecord').map(
      (c) => c.input as { FeatureGroupName: string; Record: { FeatureName: string; ValueAsString: string }[] },
    );
    expect(puts.length).toBe(records.length + 1);
    expect(watermark.seq).toBe(records.at(-1)!.seq);
    expect(JSON.stringify(puts[120])).toBe(JSON.stringify(puts[119])); // re-put once after the kill, identical
    const unique = [...puts.slice(0, 120), ...puts.slice(121)];
    const value = (p: (typeof puts)[number], f: string) => p.Record.find((x) => x.FeatureName === f)?.ValueAsString;
    expect(unique.map((p) => `${value(p, 'source_ref')}@${value(p, 'event_time')}`)).toEqual(
      records.map((x) => `${x.source_ref}@${x.event_time}`),
    );
    for (const p of puts) expect(p.FeatureGroupName).toBe('loupe-labels');
    // One record in full: the approved labels of the first upload.
    const put0 = unique[records.indexOf(approved0)]!;
    expect(put0).toEqual({
      FeatureGroupName: 'loupe-labels',
      Record: [
        { FeatureName: 'source_ref', ValueAsString: uploadRef(0) },
        { FeatureName: 'image_width', ValueAsString: '450' },
        { FeatureName: 'image_height', ValueAsString: '300' },
        { FeatureName: 'image_depth', ValueAsString: '3' },
        { FeatureName: 'annotations', ValueAsString: pyAnnotations(JSON.parse(approved0.annotations)) },
        { FeatureName: 'event_time', ValueAsString: String(approved0.event_time) },
        { FeatureName: 'labeling_job', ValueAsString: `labeling-job/${job}` },
        { FeatureName: 'status', ValueAsString: 'APPROVED' },
        { FeatureName: 'device', ValueAsString: DEVICE },
        { FeatureName: 'capture_time', ValueAsString: String(Date.parse('2026-11-26T08:00:00Z') / 1000) },
        { FeatureName: 'model_version', ValueAsString: '1.0.0' },
        { FeatureName: 'meta', ValueAsString: approved0.meta },
      ],
    });
    expect(JSON.parse(approved0.meta)).toMatchObject({ camera: 'cam1', verifier: `groundtruth:labeling-job/${job}-verify` });

    // ---- SageMaker Model Registry: the group once, the seed and the challenger once each ----
    expect(calls('CreateModelPackageGroup').map((c) => c.input)).toEqual([
      {
        ModelPackageGroupName: 'metal-tags',
        ModelPackageGroupDescription: 'loupe model group metal-tags (YOLOv8 ONNX models for edge inspection)',
        Tags: [{ Key: 'loupe:group', Value: 'metal-tags' }],
      },
    ]);
    const packages = calls('CreateModelPackage').map((c) => c.input);
    expect(packages.map((p) => (p.CustomerMetadataProperties as Record<string, string>)['loupe:idempotency-key'])).toEqual([
      v1!.idempotencyKey,
      v2!.idempotencyKey,
    ]);
    const runKey = sha256(v2!.idempotencyKey).slice(0, 16);
    const g = v2!.gate!;
    expect(packages[1]).toEqual({
      ModelPackageGroupName: 'metal-tags',
      ModelPackageDescription: 'loupe metal-tags from loop run 1 loupe metal-tags:2',
      ClientToken: runKey,
      ModelApprovalStatus: 'Approved',
      ModelMetrics: {
        ModelQuality: {
          Statistics: { ContentType: 'application/json', S3Uri: `s3://loupe-ml/loupe/models/metal-tags/${runKey}/metrics.json` },
        },
      },
      CustomerMetadataProperties: {
        'loupe:source': 'loop run 1 loupe metal-tags:2',
        'loupe:idempotency-key': v2!.idempotencyKey,
        'loupe:onnx': `${v2!.artefacts.onnx.sha256}:${v2!.artefacts.onnx.size}`,
        'loupe:onnx-int8': `${v2!.artefacts.onnxInt8!.sha256}:${v2!.artefacts.onnxInt8!.size}`,
        'loupe:fleet-precision': 'int8',
        'loupe:status-by': 'gate+policy',
        'loupe:pt': `${v2!.artefacts.pt!.sha256}:${v2!.artefacts.pt!.size}`,
        'loupe:card': `${v2!.artefacts.card!.sha256}:${v2!.artefacts.card!.size}`,
        'loupe:dataset-version': v2!.datasetVersion,
        'loupe:parent': 'metal-tags:1',
        'loupe:metric:map50': String(v2!.metrics.map50),
        'loupe:metric:map50_95': String(v2!.metrics.map50_95),
        'loupe:metric:precision': String(v2!.metrics.precision),
        'loupe:metric:recall': String(v2!.metrics.recall),
        'loupe:metric:int8_map50': String(v2!.metrics.int8_map50),
        'loupe:metric:int8_map50_95': String(v2!.metrics.int8_map50_95),
        'loupe:metric:int8_precision': String(v2!.metrics.int8_precision),
        'loupe:metric:int8_recall': String(v2!.metrics.int8_recall),
        'loupe:gate': `passed map50=${g.challenger} champion=${g.champion} threshold=0 tolerance=1`,
      },
      Domain: 'COMPUTER_VISION',
      Task: 'OBJECT_DETECTION',
      SourceUri: `s3://loupe-ml/loupe/models/metal-tags/${runKey}/model.tar.gz`,
    });
    expect(packages[0]).toMatchObject({ ModelApprovalStatus: 'Approved', ClientToken: sha256(v1!.idempotencyKey).slice(0, 16) });
    // The resumed run found the challenger's package by its key among those made since its intent.
    const lists = calls('ListModelPackages').map((c) => c.input);
    expect(lists).toHaveLength(1);
    expect(lists[0]).toMatchObject({
      ModelPackageGroupName: 'metal-tags',
      ModelPackageType: 'Versioned',
      SortBy: 'CreationTime',
      SortOrder: 'Descending',
      MaxResults: 100,
    });
    expect(Object.keys(lists[0]!).sort()).toEqual([
      'CreationTimeAfter',
      'MaxResults',
      'ModelPackageGroupName',
      'ModelPackageType',
      'SortBy',
      'SortOrder',
    ]);
    expect(r.outputs.register).toMatchObject({
      ref: 'metal-tags:2',
      status: 'approved',
      sagemaker: { ref: 'metal-tags:2', arn: `arn:aws:sagemaker:${REGION}:${ACCOUNT}:model-package/metal-tags/2`, status: 'approved' },
    });
    expect(calls('UpdateModelPackage')).toEqual([]);
    // Artefacts content-addressed in the real store, byte for byte.
    const onnxKey = `loupe/models/metal-tags/sha256/${v2!.artefacts.onnx.sha256}.onnx`;
    expect(sha256(await object('loupe-ml', onnxKey))).toBe(v2!.artefacts.onnx.sha256);
    const int8Sha = v2!.artefacts.onnxInt8!.sha256;
    expect(v2!.fleetPrecision).toBe('int8');
    expect(sha256(await object('loupe-ml', `loupe/models/metal-tags/sha256/${int8Sha}.onnx`))).toBe(int8Sha);
    expect(await keys('loupe-ml', `loupe/models/metal-tags/${runKey}/`)).toEqual([
      `loupe/models/metal-tags/${runKey}/metrics.json`,
      `loupe/models/metal-tags/${runKey}/model.tar.gz`,
    ]);

    // ---- Greengrass: one component version, one deployment, devices confirmed ----
    const ccv = calls('CreateComponentVersion').map((c) => c.input);
    expect(ccv).toHaveLength(1);
    const recipeBytes = bytesOf(ccv[0]!.inlineRecipe);
    const recipe = JSON.parse(recipeBytes.toString()) as {
      ComponentName: string;
      ComponentVersion: string;
      ComponentConfiguration: { DefaultConfiguration: Record<string, unknown> };
      Manifests: { Artifacts: { Uri: string; Digest?: string }[] }[];
    };
    expect(ccv[0]).toEqual({
      inlineRecipe: { $bytes: recipeBytes.toString('base64') },
      tags: { 'loupe:component': 'loupe.Model' },
      clientToken: sha256(`loupe.Model@1.0.1\n${recipeBytes.toString()}`).slice(0, 64),
    });
    expect(recipe).toMatchObject({
      ComponentName: 'loupe.Model',
      ComponentVersion: '1.0.1',
      ComponentConfiguration: { DefaultConfiguration: { name: 'metal-tags', version: '1.0.1', sha256: int8Sha, modelRef: 'metal-tags:2' } },
    });
    const onnxArtefact = recipe.Manifests[0]!.Artifacts.find((a) => a.Uri.endsWith('/model.onnx'))!;
    // loupe.Model carries the file the gate chose for the fleet: the int8 one.
    expect(onnxArtefact).toMatchObject({
      Uri: 's3://loupe-ml/loupe/components/loupe.Model/1.0.1/model.onnx',
      Digest: Buffer.from(int8Sha, 'hex').toString('base64'),
    });
    expect(sha256(await object('loupe-ml', 'loupe/components/loupe.Model/1.0.1/model.onnx'))).toBe(int8Sha);
    expect(calls('CreateDeployment').map((c) => c.input)).toEqual([
      {
        targetArn: GROUP_ARN,
        deploymentName: 'loupe-run-1',
        components: {
          'loupe.Camera': { componentVersion: '1.0.0' },
          'loupe.Inference': { componentVersion: '1.0.0', configurationUpdate: { merge: '{"threshold":0.4}' } },
          'loupe.Model': { componentVersion: '1.0.1' },
          'loupe.Uploader': { componentVersion: '1.0.0' },
        },
        ...EXPECTED_DEFAULT_DEPLOYMENT_POLICIES,
        tags: { 'loupe:deployment': 'loupe-run-1' },
        clientToken: sha256(`${GROUP_ARN}\nloupe-run-1`).slice(0, 64),
      },
    ]);
    expect(r.outputs.confirm).toMatchObject({
      via: 'control plane',
      devices: [{ device: DEVICE, modelVersion: '1.0.1', state: 'RUNNING' }],
    });
    const fleet = new FleetStore(join(home, 'fleet.db'));
    try {
      expect(fleet.componentVersions('aws', 'loupe.Model').map((c) => `${c.version}:${c.state}`)).toEqual(['1.0.1:created']);
      expect(fleet.deployments().map((d) => `${d.name}:${d.version}:${d.previousVersion}:${d.state}`)).toEqual([
        'loupe-run-1:1.0.1:1.0.0:confirmed',
      ]);
    } finally {
      fleet.close();
    }
    expect(readdirSync(join(dir, 'aws', 'greengrass', 'deployments'))).toHaveLength(2);
    expect(existsSync(join(dir, 'aws', 'training', `${trainJob}-2.json`))).toBe(false);
    expect(basename(String(r.outputs.train!.dir))).toBe('train');
  }, 1_200_000);
});
