import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  CreateLabelingJobCommand,
  DescribeLabelingJobCommand,
  type CreateLabelingJobCommandInput,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { parseGroundTruthManifest } from '../dataset/groundtruth-manifest.js';
import type { GtBox } from '../../contracts/box.js';
import { parseS3Uri } from './images.js';
import type { Job, Labeling } from './jobs.js';

/**
 * The SageMaker Ground Truth backend for a loupe labelling job (the reference solution's
 * labelling): a bounding-box labelling job, then a verification job chained on its output
 * manifest, and both output manifests read back into the label store through `Labeling`
 * (consolidated labels → PENDING with the job's name; verdicts → APPROVED / REJECTED).
 *
 *   const gt = new GroundTruthBackend({ sagemaker, s3, region, bucket, prefix, roleArn, workteamArn })
 *   await gt.startLabelingJob(lab, jobName)        // input manifest + categories + template to S3, CreateLabelingJob
 *   await gt.status(name)                          // DescribeLabelingJob → { status, outputManifest }
 *   await gt.importLabels(lab, jobName)            // output manifest → lab.recordConsolidated / lab.release
 *   await gt.startVerificationJob(lab, jobName)    // input = the first job's output manifest
 *   await gt.importVerification(lab, jobName)      // verification manifest → lab.verify
 *
 * Built-in task Lambdas: PRE-/ACS-BoundingBox and PRE-/ACS-VerificationBoundingBox in the
 * Ground Truth account of the region (table below, from the HumanTaskConfig API reference).
 * Verification categories: the first one passes, every other is a rejection whose name and the
 * workers' comments become the reason.
 */
export const GROUND_TRUTH_LAMBDA_ACCOUNTS: Readonly<Record<string, string>> = {
  'us-east-1': '432418664414',
  'us-east-2': '266458841044',
  'us-west-2': '081040173940',
  'ca-central-1': '918755190332',
  'eu-west-1': '568282634449',
  'eu-west-2': '487402164563',
  'eu-central-1': '203001061592',
  'ap-northeast-1': '477331159723',
  'ap-northeast-2': '845288260483',
  'ap-south-1': '565803892007',
  'ap-southeast-1': '377565633583',
  'ap-southeast-2': '454466003867',
};

export function builtinLambdaArns(region: string, task: 'BoundingBox' | 'VerificationBoundingBox'): { pre: string; acs: string } {
  const account = GROUND_TRUTH_LAMBDA_ACCOUNTS[region];
  if (!account) {
    throw new LoupeError(
      'GT_REGION',
      `Ground Truth built-in task Lambdas are not available in ${region} (known: ${Object.keys(GROUND_TRUTH_LAMBDA_ACCOUNTS).join(', ')})`,
      { input: 'region' },
    );
  }
  return {
    pre: `arn:aws:lambda:${region}:${account}:function:PRE-${task}`,
    acs: `arn:aws:lambda:${region}:${account}:function:ACS-${task}`,
  };
}

export const VERIFICATION_CATEGORIES = [
  'Labels are correct',
  'A defect is not boxed',
  'A box is on no defect',
  'Boxes are not tight or have the wrong class',
];

export interface GroundTruthOptions {
  sagemaker: SageMakerClient;
  s3: S3Client;
  region: string;
  /** Bucket and key prefix for manifests, categories, templates and output. */
  bucket: string;
  prefix?: string;
  roleArn: string;
  workteamArn: string;
  labelAttribute?: string;
  verificationAttribute?: string;
  taskTimeLimitSeconds?: number;
  taskAvailabilitySeconds?: number;
  maxConcurrentTaskCount?: number;
  tags?: Record<string, string>;
  log?: Logger;
}

/** The worker UI templates (Liquid, crowd HTML elements). */
export function labelingTemplate(): string {
  return `<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box name="annotatedResult" src="{{ task.input.taskObject | grant_read_access }}"
    header="{{ task.input.header }}" labels="{{ task.input.labels | to_json | escape }}">
    <full-instructions header="Instructions">{{ task.input.fullInstruction }}</full-instructions>
    <short-instructions>{{ task.input.shortInstruction }}</short-instructions>
  </crowd-bounding-box>
</crowd-form>
`;
}

export function verificationTemplate(attribute: string): string {
  return `<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier name="crowd-classifier" categories="{{ task.input.labels | to_json | escape }}" header="Are these labels right?">
    <classification-target>
      <crowd-bounding-box name="boxes" src="{{ task.input.taskObject | grant_read_access }}"
        labels="{{ task.input.manifestLine['${attribute}-metadata']['class-map'] | to_json | escape }}"
        initial-value="{{ task.input.manifestLine['${attribute}'].annotations | to_json | escape }}"></crowd-bounding-box>
    </classification-target>
    <full-instructions header="Verification">Approve only when every defect is boxed tightly with the right class.</full-instructions>
    <short-instructions>Choose the first option only if the labels are right; otherwise say what is wrong.</short-instructions>
  </crowd-classifier>
</crowd-form>
`;
}

const shortHash = (s: string) => {
  let h = 0;
  for (const c of s) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  return h.toString(36);
};

export class GroundTruthBackend {
  readonly prefix: string;
  readonly labelAttribute: string;
  readonly verificationAttribute: string;
  private readonly log: Logger;

  constructor(private readonly opts: GroundTruthOptions) {
    this.prefix = (opts.prefix ?? 'labeling/').replace(/^\/+/, '').replace(/\/?$/, '/');
    this.labelAttribute = opts.labelAttribute ?? 'bounding-box';
    this.verificationAttribute = opts.verificationAttribute ?? 'verify-bounding-box';
    this.log = opts.log ?? silentLogger;
  }

  private uri(key: string): string {
    return `s3://${this.opts.bucket}/${key}`;
  }

  private async put(key: string, body: string, contentType: string): Promise<string> {
    await this.opts.s3.send(new PutObjectCommand({ Bucket: this.opts.bucket, Key: key, Body: body, ContentType: contentType }));
    return this.uri(key);
  }

  static verificationJobName(job: string): string {
    const n = `${job}-verify`;
    return n.length <= 63 ? n : `${job.slice(0, 63 - 8 - 7)}-${shortHash(job).slice(0, 6)}-verify`;
  }

  private humanTaskConfig(
    job: Job,
    kind: 'BoundingBox' | 'VerificationBoundingBox',
    templateUri: string,
    title: string,
    description: string,
  ) {
    const arns = builtinLambdaArns(this.opts.region, kind);
    return {
      WorkteamArn: this.opts.workteamArn,
      UiConfig: { UiTemplateS3Uri: templateUri },
      PreHumanTaskLambdaArn: arns.pre,
      TaskKeywords:
        kind === 'BoundingBox' ? ['Image', 'Bounding Box', 'Quality inspection'] : ['Image', 'Label verification', 'Quality inspection'],
      TaskTitle: title,
      TaskDescription: description,
      NumberOfHumanWorkersPerDataObject: kind === 'BoundingBox' ? job.workersPerImage : 1,
      TaskTimeLimitInSeconds: this.opts.taskTimeLimitSeconds ?? 600,
      TaskAvailabilityLifetimeInSeconds: this.opts.taskAvailabilitySeconds ?? 864000,
      MaxConcurrentTaskCount: this.opts.maxConcurrentTaskCount ?? 1000,
      AnnotationConsolidationConfig: { AnnotationConsolidationLambdaArn: arns.acs },
    };
  }

  private tags() {
    return Object.entries({ 'loupe:component': 'labeling', ...(this.opts.tags ?? {}) }).map(([Key, Value]) => ({ Key, Value }));
  }

  /** Upload the job's input manifest, categories and template, and create the labelling job. Returns the request sent. */
  async startLabelingJob(lab: Labeling, jobName: string): Promise<CreateLabelingJobCommandInput> {
    const job = lab.getJob(jobName);
    const items = lab.items(jobName);
    if (items.length === 0) throw new LoupeError('GT_EMPTY_JOB', 'the job has no images', { input: jobName });
    const base = `${this.prefix}${jobName}/`;
    // Input manifest: one line per image; the device's detections travel along for reference.
    const manifest =
      items.map((i) => JSON.stringify({ 'source-ref': i.sourceRef, 'loupe-pre-annotations': i.record.annotations })).join('\n') + '\n';
    const manifestUri = await this.put(`${base}input.manifest`, manifest, 'application/x-ndjson');
    const categoriesUri = await this.put(
      `${base}categories.json`,
      JSON.stringify({
        'document-version': '2018-11-28',
        labels: job.classes.map((label) => ({ label })),
        instructions: { shortInstruction: job.instructions, fullInstruction: job.instructions },
      }),
      'application/json',
    );
    const templateUri = await this.put(`${base}template.liquid.html`, labelingTemplate(), 'text/html');
    const req: CreateLabelingJobCommandInput = {
      LabelingJobName: jobName,
      LabelAttributeName: this.labelAttribute,
      InputConfig: {
        DataSource: { S3DataSource: { ManifestS3Uri: manifestUri } },
        DataAttributes: { ContentClassifiers: ['FreeOfPersonallyIdentifiableInformation', 'FreeOfAdultContent'] },
      },
      OutputConfig: { S3OutputPath: this.uri(`${base}output/`) },
      RoleArn: this.opts.roleArn,
      LabelCategoryConfigS3Uri: categoriesUri,
      StoppingConditions: { MaxPercentageOfInputDatasetLabeled: 100 },
      HumanTaskConfig: this.humanTaskConfig(
        job,
        'BoundingBox',
        templateUri,
        `Box the defects (${job.classes.join(', ')})`,
        job.instructions || 'Draw a tight box around every defect.',
      ),
      Tags: this.tags(),
    };
    await this.opts.sagemaker.send(new CreateLabelingJobCommand(req));
    this.log.info({ job: jobName, items: items.length }, 'Ground Truth labelling job created');
    return req;
  }

  async status(
    name: string,
  ): Promise<{ status: string; outputManifest?: string; failure?: string; counters?: Record<string, number | undefined> }> {
    const d = await this.opts.sagemaker.send(new DescribeLabelingJobCommand({ LabelingJobName: name }));
    return {
      status: d.LabelingJobStatus ?? 'Unknown',
      outputManifest: d.LabelingJobOutput?.OutputDatasetS3Uri,
      failure: d.FailureReason,
      counters: d.LabelCounters ? { ...d.LabelCounters } : undefined,
    };
  }

  private async readManifest(uri: string): Promise<string> {
    const { bucket, key } = parseS3Uri(uri);
    const res = await this.opts.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return res.Body!.transformToString('utf8');
  }

  private async completedOutput(name: string): Promise<string> {
    const st = await this.status(name);
    if (st.status !== 'Completed' && st.status !== 'Stopped') {
      throw new LoupeError(
        'GT_NOT_DONE',
        `labelling job is ${st.status}${st.failure ? ` (${st.failure})` : ''}; its output can be read once it is Completed`,
        { input: name },
      );
    }
    if (!st.outputManifest) throw new LoupeError('GT_NO_OUTPUT', 'the job reports no output manifest', { input: name });
    return st.outputManifest;
  }

  /**
   * Read the labelling job's output manifest into the store. Class ids are mapped by name
   * through the manifest's class-map (so a reordered category file cannot swap classes).
   * Images Ground Truth could not label (expired, failed) are released back to the pool.
   */
  async importLabels(lab: Labeling, jobName: string): Promise<{ recorded: number; failed: number }> {
    const job = lab.getJob(jobName);
    const uri = await this.completedOutput(jobName);
    const parsed = parseGroundTruthManifest(await this.readManifest(uri), { file: uri, attribute: this.labelAttribute });
    let recorded = 0;
    for (const r of parsed.records) {
      const boxes: GtBox[] = r.annotations.map((a, i) => {
        const name = r.classMap[a.class_id];
        const cls = name === undefined ? a.class_id : job.classes.indexOf(name);
        if (cls < 0)
          throw new LoupeError('GT_UNKNOWN_CLASS', `annotation ${i + 1} has class "${name}", not one of ${job.classes.join(', ')}`, {
            input: `${uri}: line ${r.line} (${r.sourceRef})`,
          });
        return {
          class_id: cls,
          left: a.left,
          top: a.top,
          width: a.width,
          height: a.height,
          ...(a.confidence === undefined ? {} : { confidence: a.confidence }),
        };
      });
      if (
        await lab.recordConsolidated(jobName, r.sourceRef, boxes, {
          groundTruth: { job: r.jobName, creationDate: r.creationDate, humanAnnotated: r.humanAnnotated },
        })
      )
        recorded++;
    }
    for (const f of parsed.failures) {
      this.log.warn({ job: jobName, sourceRef: f.sourceRef, reason: f.reason }, 'Ground Truth did not label this image; released');
      const item = lab.items(jobName).find((i) => i.sourceRef === f.sourceRef);
      if (item && item.consolidated === null) lab.release(jobName, f.sourceRef);
    }
    return { recorded, failed: parsed.failures.length };
  }

  /** Chain the verification job on the labelling job's output manifest. Returns the request sent. */
  async startVerificationJob(lab: Labeling, jobName: string): Promise<CreateLabelingJobCommandInput> {
    const job = lab.getJob(jobName);
    const input = await this.completedOutput(jobName);
    const name = GroundTruthBackend.verificationJobName(jobName);
    const base = `${this.prefix}${jobName}/verification/`;
    const categoriesUri = await this.put(
      `${base}categories.json`,
      JSON.stringify({
        'document-version': '2018-11-28',
        labels: VERIFICATION_CATEGORIES.map((label) => ({ label })),
        auditLabelAttributeName: this.labelAttribute,
      }),
      'application/json',
    );
    const templateUri = await this.put(`${base}template.liquid.html`, verificationTemplate(this.labelAttribute), 'text/html');
    const req: CreateLabelingJobCommandInput = {
      LabelingJobName: name,
      LabelAttributeName: this.verificationAttribute,
      InputConfig: {
        DataSource: { S3DataSource: { ManifestS3Uri: input } },
        DataAttributes: { ContentClassifiers: ['FreeOfPersonallyIdentifiableInformation', 'FreeOfAdultContent'] },
      },
      OutputConfig: { S3OutputPath: this.uri(`${base}output/`) },
      RoleArn: this.opts.roleArn,
      LabelCategoryConfigS3Uri: categoriesUri,
      StoppingConditions: { MaxPercentageOfInputDatasetLabeled: 100 },
      HumanTaskConfig: this.humanTaskConfig(
        job,
        'VerificationBoundingBox',
        templateUri,
        'Check the defect boxes',
        'Approve the boxes when every defect is boxed tightly; otherwise say what is wrong.',
      ),
      Tags: this.tags(),
    };
    await this.opts.sagemaker.send(new CreateLabelingJobCommand(req));
    this.log.info({ job: jobName, verification: name }, 'Ground Truth verification job created');
    return req;
  }

  /** Read the verification job's output: category 0 approves, any other rejects with its name and the workers' comments as the reason. */
  async importVerification(lab: Labeling, jobName: string): Promise<{ approved: number; rejected: number; unverified: number }> {
    const name = GroundTruthBackend.verificationJobName(jobName);
    const uri = await this.completedOutput(name);
    const parsed = parseGroundTruthManifest(await this.readManifest(uri), { file: uri, attribute: this.labelAttribute });
    const out = { approved: 0, rejected: 0, unverified: 0 };
    const pending = new Map(lab.items(jobName).map((i) => [i.sourceRef, i]));
    for (const r of parsed.records) {
      const v = r.verifications?.find((x) => x.attribute === this.verificationAttribute);
      const item = pending.get(r.sourceRef);
      if (!item || item.verdict !== null) continue;
      if (!v || v.value === undefined || v.value === null || v.value === '') {
        out.unverified++;
        continue;
      }
      const idx = Number(v.value);
      const verifier = `groundtruth:${v.jobName ?? name}`;
      if (idx === 0) {
        await lab.verify(jobName, r.sourceRef, { verdict: 'approve', verifier });
        out.approved++;
      } else {
        const feedback = v.workerFeedback.filter(Boolean);
        const reason = `${v.className ?? VERIFICATION_CATEGORIES[idx] ?? `category ${idx}`}${feedback.length ? `: ${feedback.join(' | ')}` : ''}`;
        await lab.verify(jobName, r.sourceRef, { verdict: 'reject', reason, verifier });
        out.rejected++;
      }
    }
    out.unverified += parsed.failures.length;
    return out;
  }
}
