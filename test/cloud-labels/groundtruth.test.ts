import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateLabelingJobCommand, DescribeLabelingJobCommand, SageMakerClient } from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { builtinLambdaArns, GroundTruthBackend, VERIFICATION_CATEGORIES } from '../../cloud/labeling/groundtruth.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import { makeRecord } from '../../contracts/label-record.js';

const fixture = (name: string) => readFileSync(join(projectRoot, 'test', 'fixtures', 'groundtruth', name), 'utf8').trim();
const A = 's3://loupe/incoming/line-1/a.jpg';
const B = 's3://loupe/incoming/line-1/b.jpg';
const C = 's3://loupe/incoming/line-1/c.jpg';

describe('Ground Truth backend: exact request shapes (SageMaker mocked), manifests through the real local S3 store', () => {
  let dir: string;
  let os: ObjectStore;
  let s3: S3Client;
  let store: SqliteLabelStore;
  let lab: Labeling;
  const sm = mockClient(SageMakerClient);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gt-'));
    os = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'] });
    s3 = new S3Client(os.clientConfig);
    store = openLabelStore(join(dir, 'labels.db'));
    let t = 100;
    lab = new Labeling(store, { now: () => ++t });
    await store.append(
      [A, B, C].map((ref, i) =>
        makeRecord({
          source_ref: ref,
          image_width: 500,
          image_height: 400,
          annotations: i === 0 ? [{ class_id: 0, left: 100, top: 130, width: 60, height: 120, confidence: 0.7 }] : [],
          event_time: 10 + i,
          labeling_job: '',
          status: 'PENDING',
        }),
      ),
    );
    await lab.createJob({
      name: 'gt-job',
      classes: ['dog', 'bone'],
      instructions: 'Box the dogs and the bones.',
      workersPerImage: 3,
      backend: 'groundtruth',
    });
  });
  afterAll(async () => {
    sm.restore();
    await store.close();
    s3.destroy();
    await os.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('knows the built-in Lambdas per region and refuses unknown regions', () => {
    expect(builtinLambdaArns('eu-west-2', 'BoundingBox')).toEqual({
      pre: 'arn:aws:lambda:eu-west-2:487402164563:function:PRE-BoundingBox',
      acs: 'arn:aws:lambda:eu-west-2:487402164563:function:ACS-BoundingBox',
    });
    expect(builtinLambdaArns('us-east-1', 'VerificationBoundingBox').pre).toBe(
      'arn:aws:lambda:us-east-1:432418664414:function:PRE-VerificationBoundingBox',
    );
    expect(() => builtinLambdaArns('mars-1', 'BoundingBox')).toThrow(/region: .* not available in mars-1/);
  });

  it('labels with a bounding-box job, verifies with a chained verification job, reads both outputs back', async () => {
    const gt = new GroundTruthBackend({
      sagemaker: new SageMakerClient({ region: 'us-east-1' }),
      s3,
      region: 'us-east-1',
      bucket: 'loupe',
      prefix: 'labeling',
      roleArn: 'arn:aws:iam::111122223333:role/loupe-groundtruth',
      workteamArn: 'arn:aws:sagemaker:us-east-1:111122223333:workteam/private-crowd/inspectors',
    });
    sm.on(CreateLabelingJobCommand).resolves({ LabelingJobArn: 'arn:aws:sagemaker:us-east-1:111122223333:labeling-job/x' });
    await gt.startLabelingJob(lab, 'gt-job');
    const created = sm.commandCalls(CreateLabelingJobCommand);
    expect(created).toHaveLength(1);
    expect(created[0]!.args[0].input).toEqual({
      LabelingJobName: 'gt-job',
      LabelAttributeName: 'bounding-box',
      InputConfig: {
        DataSource: { S3DataSource: { ManifestS3Uri: 's3://loupe/labeling/gt-job/input.manifest' } },
        DataAttributes: { ContentClassifiers: ['FreeOfPersonallyIdentifiableInformation', 'FreeOfAdultContent'] },
      },
      OutputConfig: { S3OutputPath: 's3://loupe/labeling/gt-job/output/' },
      RoleArn: 'arn:aws:iam::111122223333:role/loupe-groundtruth',
      LabelCategoryConfigS3Uri: 's3://loupe/labeling/gt-job/categories.json',
      StoppingConditions: { MaxPercentageOfInputDatasetLabeled: 100 },
      HumanTaskConfig: {
        WorkteamArn: 'arn:aws:sagemaker:us-east-1:111122223333:workteam/private-crowd/inspectors',
        UiConfig: { UiTemplateS3Uri: 's3://loupe/labeling/gt-job/template.liquid.html' },
        PreHumanTaskLambdaArn: 'arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox',
        TaskKeywords: ['Image', 'Bounding Box', 'Quality inspection'],
        TaskTitle: 'Box the defects (dog, bone)',
        TaskDescription: 'Box the dogs and the bones.',
        NumberOfHumanWorkersPerDataObject: 3,
        TaskTimeLimitInSeconds: 600,
        TaskAvailabilityLifetimeInSeconds: 864000,
        MaxConcurrentTaskCount: 1000,
        AnnotationConsolidationConfig: {
          AnnotationConsolidationLambdaArn: 'arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox',
        },
      },
      Tags: [{ Key: 'loupe:component', Value: 'labeling' }],
    });
    const get = async (key: string) => (await s3.send(new GetObjectCommand({ Bucket: 'loupe', Key: key }))).Body!.transformToString();
    const manifestLines = (await get('labeling/gt-job/input.manifest'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(manifestLines.map((l) => l['source-ref'])).toEqual([A, B, C]);
    expect(manifestLines[0]['loupe-pre-annotations']).toEqual([
      { class_id: 0, left: 100, top: 130, width: 60, height: 120, confidence: 0.7 },
    ]);
    expect(JSON.parse(await get('labeling/gt-job/categories.json'))).toEqual({
      'document-version': '2018-11-28',
      labels: [{ label: 'dog' }, { label: 'bone' }],
      instructions: { shortInstruction: 'Box the dogs and the bones.', fullInstruction: 'Box the dogs and the bones.' },
    });
    expect(await get('labeling/gt-job/template.liquid.html')).toMatch(/<crowd-bounding-box name="annotatedResult"/);

    // Not finished yet: reading refuses, naming the job and its state.
    sm.on(DescribeLabelingJobCommand, { LabelingJobName: 'gt-job' }).resolvesOnce({ LabelingJobStatus: 'InProgress' });
    await expect(gt.importLabels(lab, 'gt-job')).rejects.toThrow(/gt-job: labelling job is InProgress/);

    // The job's output, from the documentation's real sample (source-ref set to our images);
    // b.jpg expired (a failure line, as Ground Truth writes it).
    const sample = JSON.parse(fixture('bounding-box.manifest'));
    const outKey = 'labeling/gt-job/output/gt-job/manifests/output/output.manifest';
    const output = [
      JSON.stringify({ ...sample, 'source-ref': A }),
      JSON.stringify({
        'source-ref': B,
        'bounding-box-metadata': { 'failure-reason': 'ClientError: Annotation tasks expired', 'job-name': 'labeling-job/gt-job' },
      }),
      JSON.stringify({ ...sample, 'source-ref': C }),
    ].join('\n');
    await s3.send(new PutObjectCommand({ Bucket: 'loupe', Key: outKey, Body: output }));
    sm.on(DescribeLabelingJobCommand, { LabelingJobName: 'gt-job' }).resolves({
      LabelingJobStatus: 'Completed',
      LabelingJobOutput: { OutputDatasetS3Uri: `s3://loupe/${outKey}` },
    });
    expect(await gt.importLabels(lab, 'gt-job')).toEqual({ recorded: 2, failed: 1 });
    expect(await gt.importLabels(lab, 'gt-job')).toEqual({ recorded: 0, failed: 1 }); // idempotent
    const [a] = await store.latest({ sourceRefs: [A] });
    expect(a).toMatchObject({
      status: 'PENDING',
      labeling_job: 'labeling-job/gt-job',
      meta: { groundTruth: { job: 'identify-dogs-and-toys', humanAnnotated: true } },
    });
    // class 5 "bone" in the sample's class-map becomes our class 1 "bone"
    expect(a!.annotations).toEqual([
      { class_id: 0, left: 111, top: 134, width: 61, height: 128, confidence: 0.8 },
      { class_id: 1, left: 161, top: 250, width: 30, height: 30, confidence: 0.9 },
      { class_id: 1, left: 20, top: 20, width: 30, height: 30, confidence: 0.9 },
    ]);
    expect(lab.items('gt-job').map((i) => i.sourceRef)).toEqual([A, C]); // b.jpg released to the pool

    await gt.startVerificationJob(lab, 'gt-job');
    const verify = sm.commandCalls(CreateLabelingJobCommand)[1]!.args[0].input;
    expect(verify).toEqual({
      LabelingJobName: 'gt-job-verify',
      LabelAttributeName: 'verify-bounding-box',
      InputConfig: {
        DataSource: { S3DataSource: { ManifestS3Uri: `s3://loupe/${outKey}` } },
        DataAttributes: { ContentClassifiers: ['FreeOfPersonallyIdentifiableInformation', 'FreeOfAdultContent'] },
      },
      OutputConfig: { S3OutputPath: 's3://loupe/labeling/gt-job/verification/output/' },
      RoleArn: 'arn:aws:iam::111122223333:role/loupe-groundtruth',
      LabelCategoryConfigS3Uri: 's3://loupe/labeling/gt-job/verification/categories.json',
      StoppingConditions: { MaxPercentageOfInputDatasetLabeled: 100 },
      HumanTaskConfig: {
        WorkteamArn: 'arn:aws:sagemaker:us-east-1:111122223333:workteam/private-crowd/inspectors',
        UiConfig: { UiTemplateS3Uri: 's3://loupe/labeling/gt-job/verification/template.liquid.html' },
        PreHumanTaskLambdaArn: 'arn:aws:lambda:us-east-1:432418664414:function:PRE-VerificationBoundingBox',
        TaskKeywords: ['Image', 'Label verification', 'Quality inspection'],
        TaskTitle: 'Check the defect boxes',
        TaskDescription: 'Approve the boxes when every defect is boxed tightly; otherwise say what is wrong.',
        NumberOfHumanWorkersPerDataObject: 1,
        TaskTimeLimitInSeconds: 600,
        TaskAvailabilityLifetimeInSeconds: 864000,
        MaxConcurrentTaskCount: 1000,
        AnnotationConsolidationConfig: {
          AnnotationConsolidationLambdaArn: 'arn:aws:lambda:us-east-1:432418664414:function:ACS-VerificationBoundingBox',
        },
      },
      Tags: [{ Key: 'loupe:component', Value: 'labeling' }],
    });
    expect(JSON.parse(await get('labeling/gt-job/verification/categories.json'))).toEqual({
      'document-version': '2018-11-28',
      labels: VERIFICATION_CATEGORIES.map((label) => ({ label })),
      auditLabelAttributeName: 'bounding-box',
    });

    // Verification output: the documentation's sample (category "1" = rejected, with worker
    // feedback) for a.jpg; the same line answered "0" for c.jpg.
    const vsample = JSON.parse(fixture('verification.manifest'));
    const vKey = 'labeling/gt-job/verification/output/gt-job-verify/manifests/output/output.manifest';
    const approvedLine = {
      ...vsample,
      'source-ref': C,
      'verify-bounding-box': '0',
      'verify-bounding-box-metadata': {
        ...vsample['verify-bounding-box-metadata'],
        'class-name': VERIFICATION_CATEGORIES[0],
        'worker-feedback': undefined,
      },
    };
    await s3.send(
      new PutObjectCommand({
        Bucket: 'loupe',
        Key: vKey,
        Body: [JSON.stringify({ ...vsample, 'source-ref': A }), JSON.stringify(approvedLine)].join('\n'),
      }),
    );
    sm.on(DescribeLabelingJobCommand, { LabelingJobName: 'gt-job-verify' }).resolves({
      LabelingJobStatus: 'Completed',
      LabelingJobOutput: { OutputDatasetS3Uri: `s3://loupe/${vKey}` },
    });
    expect(await gt.importVerification(lab, 'gt-job')).toEqual({ approved: 1, rejected: 1, unverified: 0 });
    const latest = await store.latest({ sourceRefs: [A, C] });
    expect(latest.map((r) => r.status)).toEqual(['REJECTED', 'APPROVED']);
    expect(latest[0]!.meta.reason).toBe(
      'bad: The bounding box on the bird is too wide on the right side. | The bird on the upper right is not labeled.',
    );
    expect(latest[0]!.meta.verifier).toBe('groundtruth:verify-bounding-boxes');
    expect(lab.getJob('gt-job').status).toBe('done');
    expect(sm.commandCalls(DescribeLabelingJobCommand).map((c) => c.args[0].input)).toContainEqual({ LabelingJobName: 'gt-job-verify' });
  });
});
