import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CreateModelPackageCommand,
  CreateModelPackageGroupCommand,
  DescribeModelPackageCommand,
  DescribeModelPackageGroupCommand,
  ListModelPackagesCommand,
  SageMakerClient,
  UpdateModelPackageCommand,
} from '@aws-sdk/client-sagemaker';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { SageMakerModelRegistry, metaValue } from '../../cloud/registry/sagemaker-registry.js';
import { sha256, sha256File } from '../../lib/fsutil.js';
import { statSync } from 'node:fs';
import { SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { list as tarList } from 'tar';

const GROUP_ARN = 'arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/metal-tags';
const PKG_ARN = 'arn:aws:sagemaker:eu-west-1:123456789012:model-package/metal-tags/2';

describe('SageMaker Model Registry adapter (control plane mocked, S3 real)', () => {
  let dir: string;
  let store: ObjectStore;
  let s3: S3Client;
  const sm = mockClient(SageMakerClient);
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-smreg-'));
    store = await startObjectStore({ dir: join(dir, 's3'), buckets: ['models-bucket'] });
    s3 = new S3Client(store.clientConfig);
  });
  afterAll(async () => {
    s3.destroy();
    await store.stop();
    await rm(dir, { recursive: true, force: true });
    sm.restore();
  });
  beforeEach(() => sm.reset());

  const onnx = join(SHIPPED_MODEL_DIR, 'model.onnx');
  const pt = join(SHIPPED_MODEL_DIR, 'model.pt');

  it('creates the group when missing and registers a version with metrics, metadata and approval status', async () => {
    sm.on(DescribeModelPackageGroupCommand).rejects(
      Object.assign(new Error('ModelPackageGroup metal-tags does not exist.'), { name: 'ValidationException' }),
    );
    sm.on(CreateModelPackageGroupCommand).resolves({ ModelPackageGroupArn: GROUP_ARN });
    let created: Record<string, unknown> = {};
    sm.on(CreateModelPackageCommand).callsFake((input) => {
      created = input;
      return { ModelPackageArn: PKG_ARN };
    });
    sm.on(DescribeModelPackageCommand).callsFake(() => ({
      ModelPackageArn: PKG_ARN,
      ModelPackageGroupName: 'metal-tags',
      ModelPackageVersion: 2,
      ModelApprovalStatus: created.ModelApprovalStatus,
      CustomerMetadataProperties: created.CustomerMetadataProperties,
      CreationTime: new Date('2024-05-01T00:00:00Z'),
    }));
    const reg = new SageMakerModelRegistry({
      sagemaker: new SageMakerClient({ region: 'eu-west-1' }),
      s3,
      bucket: 'models-bucket',
      inferenceImage: '111.dkr.ecr.eu-west-1.amazonaws.com/loupe-infer:1',
    });
    const card = join(dir, 'card.json');
    await writeFile(card, JSON.stringify({ name: 'metal-tags', classes: ['scratch'] }));
    const gate = {
      passed: true,
      metric: 'map50',
      challenger: 0.91,
      champion: 0.9,
      championRef: 'metal-tags:1',
      threshold: 0.5,
      tolerance: 0.02,
      reasons: ['ok'],
    };
    const v = await reg.register({
      group: 'metal-tags',
      onnx,
      pt,
      card,
      metrics: { map50: 0.91, map50_95: 0.6 },
      datasetVersion: 'ds-abc',
      parentRef: 'metal-tags:1',
      gate,
      source: 'loop run 3',
      idempotencyKey: 'k1',
    });

    const onnxSha = await sha256File(onnx);
    const ptSha = await sha256File(pt);
    expect(sm.commandCalls(DescribeModelPackageGroupCommand)[0]!.args[0].input).toEqual({ ModelPackageGroupName: 'metal-tags' });
    expect(sm.commandCalls(CreateModelPackageGroupCommand)[0]!.args[0].input).toEqual({
      ModelPackageGroupName: 'metal-tags',
      ModelPackageGroupDescription: 'loupe model group metal-tags (YOLOv8 ONNX models for edge inspection)',
      Tags: [{ Key: 'loupe:group', Value: 'metal-tags' }],
    });
    const runKey = sha256('k1').slice(0, 16);
    const tarUri = `s3://models-bucket/loupe/models/metal-tags/${runKey}/model.tar.gz`;
    expect(created).toEqual({
      ModelPackageGroupName: 'metal-tags',
      ModelPackageDescription: 'loupe metal-tags from loop run 3',
      ClientToken: runKey,
      ModelApprovalStatus: 'Approved',
      InferenceSpecification: {
        Containers: [{ Image: '111.dkr.ecr.eu-west-1.amazonaws.com/loupe-infer:1', ModelDataUrl: tarUri, Framework: 'ONNX' }],
        SupportedContentTypes: ['image/jpeg', 'image/png'],
        SupportedResponseMIMETypes: ['application/json'],
      },
      ModelMetrics: {
        ModelQuality: {
          Statistics: { ContentType: 'application/json', S3Uri: `s3://models-bucket/loupe/models/metal-tags/${runKey}/metrics.json` },
        },
      },
      CustomerMetadataProperties: {
        'loupe:source': 'loop run 3',
        'loupe:idempotency-key': 'k1',
        'loupe:onnx': `${onnxSha}:${statSync(onnx).size}`,
        'loupe:pt': `${ptSha}:${statSync(pt).size}`,
        'loupe:card': expect.stringMatching(/^[0-9a-f]{64}:\d+$/),
        'loupe:status-by': 'gate+policy',
        'loupe:dataset-version': 'ds-abc',
        'loupe:parent': 'metal-tags:1',
        'loupe:metric:map50': '0.91',
        'loupe:metric:map50_95': '0.6',
        'loupe:gate': 'passed map50=0.91 champion=0.9 threshold=0.5 tolerance=0.02',
      },
      Domain: 'COMPUTER_VISION',
      Task: 'OBJECT_DETECTION',
      SourceUri: tarUri,
    });
    // Every CustomerMetadataProperties value satisfies SageMaker's pattern and length.
    for (const [k, val] of Object.entries(created.CustomerMetadataProperties as Record<string, string>)) {
      expect(k.length).toBeLessThanOrEqual(128);
      expect(val).toMatch(/^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,256}$/u);
    }
    // The artefacts really are in S3 under their digests, and the archive holds the three files.
    const got = await s3.send(new GetObjectCommand({ Bucket: 'models-bucket', Key: `loupe/models/metal-tags/sha256/${onnxSha}.onnx` }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    expect(sha256(bytes)).toBe(onnxSha);
    const tgz = await s3.send(new GetObjectCommand({ Bucket: 'models-bucket', Key: `loupe/models/metal-tags/${runKey}/model.tar.gz` }));
    const tgzPath = join(dir, 'model.tar.gz');
    await writeFile(tgzPath, await tgz.Body!.transformToByteArray());
    const names: string[] = [];
    await tarList({ file: tgzPath, onReadEntry: (e) => names.push(e.path) });
    expect(names.sort()).toEqual(['card.json', 'model.onnx', 'model.pt']);
    const metrics = JSON.parse(
      await (
        await s3.send(new GetObjectCommand({ Bucket: 'models-bucket', Key: `loupe/models/metal-tags/${runKey}/metrics.json` }))
      ).Body!.transformToString(),
    );
    expect(metrics.metrics).toEqual({ map50: 0.91, map50_95: 0.6 });

    // And the version reads back from the package's properties.
    expect(v.ref).toBe('metal-tags:2');
    expect(v.status).toBe('approved');
    expect(v.artefacts.onnx).toEqual({ sha256: onnxSha, size: expect.any(Number), ext: '.onnx' });
    expect(v.metrics).toEqual({ map50: 0.91, map50_95: 0.6 });
    expect(v.parentRef).toBe('metal-tags:1');
    expect(v.datasetVersion).toBe('ds-abc');
    expect(reg.artefactUri(v, 'onnx')).toBe(`s3://models-bucket/loupe/models/metal-tags/sha256/${onnxSha}.onnx`);
  });

  it('approves with UpdateModelPackage, lists and finds the newest approved package with ListModelPackages', async () => {
    sm.on(DescribeModelPackageGroupCommand).resolves({ ModelPackageGroupArn: GROUP_ARN, ModelPackageGroupName: 'metal-tags' } as never);
    let status = 'PendingManualApproval';
    const props: Record<string, string> = { 'loupe:onnx': `${'a'.repeat(64)}:10`, 'loupe:source': 'cli' };
    sm.on(DescribeModelPackageCommand).callsFake(() => ({
      ModelPackageArn: PKG_ARN,
      ModelPackageGroupName: 'metal-tags',
      ModelPackageVersion: 2,
      ModelApprovalStatus: status,
      CustomerMetadataProperties: props,
      CreationTime: new Date(),
    }));
    sm.on(UpdateModelPackageCommand).callsFake((input) => {
      status = input.ModelApprovalStatus;
      return { ModelPackageArn: PKG_ARN };
    });
    sm.on(ListModelPackagesCommand).resolves({
      ModelPackageSummaryList: [{ ModelPackageArn: PKG_ARN, CreationTime: new Date(), ModelPackageStatus: 'Completed' }] as never,
    });
    const reg = new SageMakerModelRegistry({ sagemaker: new SageMakerClient({ region: 'eu-west-1' }), s3, bucket: 'models-bucket' });
    // without a gate result the approval is refused unless forced (nothing sent to SageMaker)
    await expect(reg.setStatus('metal-tags:2', 'approved', { by: 'user:qa' })).rejects.toMatchObject({ code: 'REGISTRY_NO_GATE' });
    expect(sm.commandCalls(UpdateModelPackageCommand)).toHaveLength(0);
    props['loupe:gate'] = 'passed map50=0.91 champion=0.9 threshold=0.5 tolerance=0.02';
    const v = await reg.setStatus('metal-tags:2', 'approved', { by: 'user:qa', reason: 'checked the gate page' });
    expect(sm.commandCalls(DescribeModelPackageCommand)[0]!.args[0].input).toEqual({ ModelPackageName: PKG_ARN });
    expect(sm.commandCalls(UpdateModelPackageCommand)[0]!.args[0].input).toEqual({
      ModelPackageArn: PKG_ARN,
      ModelApprovalStatus: 'Approved',
      ApprovalDescription: 'user:qa: checked the gate page',
      CustomerMetadataProperties: { 'loupe:status-by': 'user:qa' },
    });
    expect(v.status).toBe('approved');
    const champ = await reg.newestApproved('metal-tags');
    expect(sm.commandCalls(ListModelPackagesCommand)[0]!.args[0].input).toEqual({
      ModelPackageGroupName: 'metal-tags',
      ModelPackageType: 'Versioned',
      ModelApprovalStatus: 'Approved',
      SortBy: 'CreationTime',
      SortOrder: 'Descending',
      MaxResults: 1,
    });
    expect(champ?.ref).toBe('metal-tags:2');
    await expect(reg.setStatus('metal-tags:2', 'approved', { by: 'x' })).resolves.toBeTruthy();
    expect(sm.commandCalls(UpdateModelPackageCommand).length).toBe(1); // already approved: no second call
  });

  it("keeps metadata values inside SageMaker's allowed characters", () => {
    expect(metaValue('gate failed: map50 0.3 < 0.5; (x)')).toBe('gate failed: map50 0.3 0.5 x');
    expect(metaValue('')).toBe('-');
    expect(metaValue('a'.repeat(300)).length).toBe(256);
  });
});
