import {
  CreateModelPackageCommand,
  CreateModelPackageGroupCommand,
  DescribeModelPackageCommand,
  DescribeModelPackageGroupCommand,
  ListModelPackagesCommand,
  UpdateModelPackageCommand,
  type DescribeModelPackageCommandOutput,
  type ModelApprovalStatus,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { PutObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { create as createTar } from 'tar';
import { LoupeError } from '../../lib/errors.js';
import { sha256, sha256File } from '../../lib/fsutil.js';
import type { ArtefactRef } from './artefact-store.js';
import { checkTransition, decideApproval, DEFAULT_POLICY, type ApprovalPolicy } from './policy.js';
import { validateModelArtefacts } from './validate.js';
import { checkLookup, type FindByKeyOptions } from './lookup.js';
import { parseRef } from './sqlite-registry.js';
import type {
  ArtefactKind,
  GateSummary,
  ModelRegistryMirrorTarget,
  ModelStatus,
  ModelVersion,
  RegisterInput,
  StatusChange,
} from './types.js';

/**
 * The model registry on AWS: SageMaker Model Registry. A loupe model group is a model package
 * group; a version is a model package (SageMaker numbers it). What SageMaker cannot hold
 * itself lives in S3 next to it, content-addressed like the local store:
 *   s3://<bucket>/<prefix>/<group>/sha256/<digest><ext>   the ONNX, .pt and card artefacts
 *   s3://<bucket>/<prefix>/<group>/<key>/model.tar.gz     the same files as one archive
 *                                                         (InferenceSpecification's ModelDataUrl)
 *   s3://<bucket>/<prefix>/<group>/<key>/metrics.json     ModelMetrics.ModelQuality.Statistics
 * and the facts loupe needs back (digests, sizes, data set version, parent, gate result, metrics)
 * travel in CustomerMetadataProperties, so `get` needs one DescribeModelPackage call.
 * Status maps pending/approved/rejected ↔ PendingManualApproval/Approved/Rejected; approval is
 * UpdateModelPackage. Idempotency: CreateModelPackage's ClientToken is derived from the
 * registration's idempotency key, so a retried registration returns the same package.
 * `newestApproved` is the newest *Approved* package by creation time (SageMaker cannot sort by
 * approval time; the local registry can and does).
 */
export interface SageMakerRegistryOptions {
  sagemaker: SageMakerClient;
  s3: S3Client;
  bucket: string;
  prefix?: string;
  /** Inference container for InferenceSpecification (the edge runs ONNX; this documents how the cloud could host it). */
  inferenceImage?: string;
  policy?: ApprovalPolicy;
  tags?: Record<string, string>;
}

const toSm: Record<ModelStatus, ModelApprovalStatus> = { pending: 'PendingManualApproval', approved: 'Approved', rejected: 'Rejected' };
const fromSm: Record<string, ModelStatus> = { PendingManualApproval: 'pending', Approved: 'approved', Rejected: 'rejected' };

/**
 * How an idempotency key is kept in CustomerMetadataProperties: as it is when SageMaker allows
 * it there (sha256 hex, `loop:<run>:<sha>`), else as `sha256:<digest of the key>`, so a lookup
 * matches exactly the key registered (metaValue would fold different keys into one).
 */
export function storedKey(key: string): string {
  return metaValue(key) === key ? key : `sha256:${sha256(key)}`;
}

/** CustomerMetadataProperties values allow letters, digits, spaces and `_.:/=+-@` only (≤256). */
export function metaValue(v: unknown): string {
  const s = String(v)
    .replace(/[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 256);
  return s || '-';
}

export class SageMakerModelRegistry implements ModelRegistryMirrorTarget {
  private readonly prefix: string;
  private readonly policy: ApprovalPolicy;
  private readonly groupArns = new Map<string, string>();

  constructor(private readonly o: SageMakerRegistryOptions) {
    this.prefix = (o.prefix ?? 'loupe/models').replace(/\/+$/, '');
    this.policy = o.policy ?? DEFAULT_POLICY;
  }

  private key(group: string, rest: string): string {
    return `${this.prefix}/${group}/${rest}`;
  }

  /** DescribeModelPackageGroup, creating the group when SageMaker says it does not exist. */
  async ensureGroup(group: string): Promise<string> {
    const known = this.groupArns.get(group);
    if (known) return known;
    let arn: string | undefined;
    try {
      arn = (await this.o.sagemaker.send(new DescribeModelPackageGroupCommand({ ModelPackageGroupName: group }))).ModelPackageGroupArn;
    } catch (e) {
      if (!/does not exist|not found/i.test((e as Error).message ?? '')) throw e;
      const out = await this.o.sagemaker.send(
        new CreateModelPackageGroupCommand({
          ModelPackageGroupName: group,
          ModelPackageGroupDescription: `loupe model group ${group} (YOLOv8 ONNX models for edge inspection)`,
          Tags: Object.entries({ 'loupe:group': group, ...this.o.tags }).map(([Key, Value]) => ({ Key, Value })),
        }),
      );
      arn = out.ModelPackageGroupArn;
    }
    if (!arn) throw new LoupeError('SAGEMAKER_NO_ARN', 'SageMaker returned no model package group ARN', { input: group });
    this.groupArns.set(group, arn);
    return arn;
  }

  private async putFile(key: string, path: string, contentType: string): Promise<string> {
    // Content-addressed keys: skip the upload when the object is already there.
    const exists = await this.o.s3
      .send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: key }))
      .then(() => true)
      .catch(() => false);
    if (!exists)
      await this.o.s3.send(new PutObjectCommand({ Bucket: this.o.bucket, Key: key, Body: await readFile(path), ContentType: contentType }));
    return `s3://${this.o.bucket}/${key}`;
  }

  private async putArtefact(group: string, path: string): Promise<{ ref: ArtefactRef; uri: string }> {
    const ref: ArtefactRef = { sha256: await sha256File(path), size: (await stat(path)).size, ext: extname(path).toLowerCase() };
    const uri = await this.putFile(this.key(group, `sha256/${ref.sha256}${ref.ext}`), path, 'application/octet-stream');
    return { ref, uri };
  }

  artefactUri(v: ModelVersion, kind: ArtefactKind): string {
    const a = v.artefacts[kind];
    if (!a) throw new LoupeError('ARTEFACT_MISSING', `version has no ${kind} artefact`, { input: v.ref });
    return `s3://${this.o.bucket}/${this.key(v.group, `sha256/${a.sha256}${a.ext}`)}`;
  }

  async register(input: RegisterInput): Promise<ModelVersion> {
    await validateModelArtefacts(input);
    const groupArn = await this.ensureGroup(input.group);
    const onnx = await this.putArtefact(input.group, input.onnx);
    const onnxInt8 = input.onnxInt8 ? await this.putArtefact(input.group, input.onnxInt8) : undefined;
    const pt = input.pt ? await this.putArtefact(input.group, input.pt) : undefined;
    const card = input.card ? await this.putArtefact(input.group, input.card) : undefined;
    const idem =
      input.idempotencyKey ?? sha256(JSON.stringify([input.group, onnx.ref.sha256, input.datasetVersion ?? null, input.parentRef ?? null]));
    const runKey = sha256(idem).slice(0, 16);
    // One archive with the files under their usual names, for SageMaker's ModelDataUrl.
    const work = await mkdtemp(join(tmpdir(), 'loupe-smreg-'));
    let modelDataUrl: string;
    let metricsUri: string;
    try {
      const names: string[] = [];
      for (const [p, name] of [
        [input.onnx, 'model.onnx'],
        [input.onnxInt8, 'model.int8.onnx'],
        [input.pt, 'model.pt'],
        [input.card, 'card.json'],
      ] as const) {
        if (!p) continue;
        await copyFile(p, join(work, name));
        names.push(name);
      }
      await createTar({ gzip: true, cwd: work, file: join(work, 'model.tar.gz'), portable: true }, names);
      modelDataUrl = await this.putFile(this.key(input.group, `${runKey}/model.tar.gz`), join(work, 'model.tar.gz'), 'application/gzip');
      const metricsPath = join(work, 'metrics.json');
      await writeFile(
        metricsPath,
        JSON.stringify({ metrics: input.metrics ?? {}, gate: input.gate ?? null, datasetVersion: input.datasetVersion ?? null }, null, 2),
      );
      metricsUri = await this.putFile(this.key(input.group, `${runKey}/metrics.json`), metricsPath, 'application/json');
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    const decided = input.status ?? decideApproval(input.gate, this.policy);
    const props: Record<string, string> = {
      'loupe:source': metaValue(input.source),
      'loupe:idempotency-key': storedKey(idem),
      'loupe:onnx': `${onnx.ref.sha256}:${onnx.ref.size}`,
      'loupe:status-by': metaValue(decided.by),
    };
    if (onnxInt8) {
      props['loupe:onnx-int8'] = `${onnxInt8.ref.sha256}:${onnxInt8.ref.size}`;
      props['loupe:fleet-precision'] = input.fleetPrecision ?? 'fp32';
    }
    if (pt) props['loupe:pt'] = `${pt.ref.sha256}:${pt.ref.size}`;
    if (card) props['loupe:card'] = `${card.ref.sha256}:${card.ref.size}`;
    if (input.datasetVersion) props['loupe:dataset-version'] = metaValue(input.datasetVersion);
    if (input.parentRef) props['loupe:parent'] = metaValue(input.parentRef);
    for (const [k, v] of Object.entries(input.metrics ?? {})) props[`loupe:metric:${k}`] = String(v);
    if (input.gate) {
      props['loupe:gate'] =
        `${input.gate.passed ? 'passed' : 'failed'} ${input.gate.metric}=${input.gate.challenger} champion=${input.gate.champion ?? 'none'} threshold=${input.gate.threshold} tolerance=${input.gate.tolerance}`;
    }
    const out = await this.o.sagemaker.send(
      new CreateModelPackageCommand({
        ModelPackageGroupName: input.group,
        ModelPackageDescription: metaValue(`loupe ${input.group} from ${input.source}`).slice(0, 1024),
        ClientToken: runKey,
        ModelApprovalStatus: toSm[decided.status],
        ...(this.o.inferenceImage
          ? {
              InferenceSpecification: {
                Containers: [{ Image: this.o.inferenceImage, ModelDataUrl: modelDataUrl, Framework: 'ONNX' }],
                SupportedContentTypes: ['image/jpeg', 'image/png'],
                SupportedResponseMIMETypes: ['application/json'],
              },
            }
          : {}),
        ModelMetrics: { ModelQuality: { Statistics: { ContentType: 'application/json', S3Uri: metricsUri } } },
        CustomerMetadataProperties: props,
        Domain: 'COMPUTER_VISION',
        Task: 'OBJECT_DETECTION',
        SourceUri: modelDataUrl,
      }),
    );
    if (!out.ModelPackageArn) throw new LoupeError('SAGEMAKER_NO_ARN', 'CreateModelPackage returned no ARN', { input: groupArn });
    const v = await this.describe(out.ModelPackageArn);
    return { ...v, gate: input.gate ?? v.gate, meta: { ...input.meta, ...v.meta } };
  }

  private packageArn(groupArn: string, version: number): string {
    // arn:aws:sagemaker:<region>:<account>:model-package-group/<name> → …:model-package/<name>/<version>
    return groupArn.replace(':model-package-group/', ':model-package/') + `/${version}`;
  }

  private async describe(arn: string): Promise<ModelVersion> {
    const d = await this.o.sagemaker.send(new DescribeModelPackageCommand({ ModelPackageName: arn }));
    return this.toVersion(d);
  }

  private toVersion(d: DescribeModelPackageCommandOutput): ModelVersion {
    const p = d.CustomerMetadataProperties ?? {};
    const art = (s: string | undefined, ext: string): ArtefactRef | undefined => {
      if (!s) return undefined;
      const [sha, size] = s.split(':');
      return { sha256: sha!, size: Number(size), ext };
    };
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(p)) if (k.startsWith('loupe:metric:')) metrics[k.slice('loupe:metric:'.length)] = Number(v);
    const group = d.ModelPackageGroupName ?? '';
    const version = d.ModelPackageVersion ?? 0;
    const onnx = art(p['loupe:onnx'], '.onnx');
    if (!onnx)
      throw new LoupeError('SAGEMAKER_NOT_LOUPE', 'model package was not registered by loupe (no loupe:onnx property)', {
        input: d.ModelPackageArn,
      });
    const pt = art(p['loupe:pt'], '.pt');
    const onnxInt8 = art(p['loupe:onnx-int8'], '.onnx');
    const card = art(p['loupe:card'], '.json');
    const gateText = p['loupe:gate'];
    let gate: GateSummary | null = null;
    if (gateText) {
      const m = /^(passed|failed) (\S+)=(\S+) champion=(\S+) threshold=(\S+) tolerance=(\S+)$/.exec(gateText);
      if (m) {
        gate = {
          passed: m[1] === 'passed',
          metric: m[2]!,
          challenger: Number(m[3]),
          champion: m[4] === 'none' ? null : Number(m[4]),
          championRef: null,
          threshold: Number(m[5]),
          tolerance: Number(m[6]),
          reasons: [],
        };
      }
    }
    const created = (d.CreationTime ?? new Date(0)).toISOString();
    return {
      ref: `${group}:${version}`,
      group,
      version,
      status: fromSm[d.ModelApprovalStatus ?? 'PendingManualApproval'] ?? 'pending',
      statusReason: d.ApprovalDescription ?? null,
      statusBy: p['loupe:status-by'] ?? null,
      statusAt: (d.LastModifiedTime ?? d.CreationTime ?? new Date(0)).toISOString(),
      artefacts: { onnx, ...(onnxInt8 ? { onnxInt8 } : {}), ...(pt ? { pt } : {}), ...(card ? { card } : {}) },
      fleetPrecision: p['loupe:fleet-precision'] === 'int8' && onnxInt8 ? 'int8' : 'fp32',
      metrics,
      datasetVersion: p['loupe:dataset-version'] ?? null,
      parentRef: p['loupe:parent'] ?? null,
      gate,
      meta: { arn: d.ModelPackageArn },
      source: p['loupe:source'] ?? 'unknown',
      idempotencyKey: p['loupe:idempotency-key'] ?? '',
      createdAt: created,
    };
  }

  async get(ref: string): Promise<ModelVersion | undefined> {
    const { group, version } = parseRef(ref);
    // A read creates nothing: no group, no version (as findByKey, and as the SQLite registry).
    const groupArn = await this.existingGroup(group);
    if (!groupArn) return undefined;
    try {
      return await this.describe(this.packageArn(groupArn, version));
    } catch (e) {
      if (/does not exist|not found/i.test((e as Error).message ?? '')) return undefined;
      throw e;
    }
  }

  private async listArns(group: string, status?: ModelStatus, newestFirst = false, max?: number): Promise<string[]> {
    const arns: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.o.sagemaker.send(
        new ListModelPackagesCommand({
          ModelPackageGroupName: group,
          ModelPackageType: 'Versioned',
          ...(status ? { ModelApprovalStatus: toSm[status] } : {}),
          SortBy: 'CreationTime',
          SortOrder: newestFirst ? 'Descending' : 'Ascending',
          MaxResults: max ?? 100,
          ...(token ? { NextToken: token } : {}),
        }),
      );
      for (const s of page.ModelPackageSummaryList ?? []) if (s.ModelPackageArn) arns.push(s.ModelPackageArn);
      token = max && arns.length >= max ? undefined : page.NextToken;
    } while (token);
    return arns;
  }

  async list(filter: { group: string; status?: ModelStatus }): Promise<ModelVersion[]> {
    if (!filter.group)
      throw new LoupeError('SAGEMAKER_GROUP_REQUIRED', 'listing SageMaker model packages needs a group', { input: 'group' });
    const out: ModelVersion[] = [];
    for (const arn of await this.listArns(filter.group, filter.status)) out.push(await this.describe(arn));
    return out;
  }

  async setStatus(ref: string, status: Exclude<ModelStatus, 'pending'>, change: StatusChange): Promise<ModelVersion> {
    const v = await this.get(ref);
    if (!v) throw new LoupeError('REGISTRY_NOT_FOUND', 'no such model version', { input: ref });
    const { forced } = checkTransition(ref, v.status, status, { force: change.force, reason: change.reason, gate: v.gate });
    if (v.status === status) return v;
    const arn = String(v.meta.arn);
    await this.o.sagemaker.send(
      new UpdateModelPackageCommand({
        ModelPackageArn: arn,
        ModelApprovalStatus: toSm[status],
        ApprovalDescription: `${forced ? 'FORCED without a passing gate; ' : ''}${change.by}: ${change.reason ?? status}`.slice(0, 1024),
        CustomerMetadataProperties: { 'loupe:status-by': metaValue(change.by) },
      }),
    );
    return this.describe(arn);
  }

  /** The group's ARN when the group exists; undefined otherwise (nothing is created). */
  private async existingGroup(group: string): Promise<string | undefined> {
    const known = this.groupArns.get(group);
    if (known) return known;
    try {
      const arn = (await this.o.sagemaker.send(new DescribeModelPackageGroupCommand({ ModelPackageGroupName: group })))
        .ModelPackageGroupArn;
      if (arn) this.groupArns.set(group, arn);
      return arn;
    } catch (e) {
      if (/does not exist|not found/i.test((e as Error).message ?? '')) return undefined;
      throw e;
    }
  }

  /**
   * See RegistryKeyLookup (lookup.ts): the same answers as the SQLite registry's. Looks only at
   * packages created after `createdAfter` (newest first), so a caller that crashed after
   * CreateModelPackage finds what it made without describing the whole group.
   */
  async findByKey(group: string, idempotencyKey: string, opts: FindByKeyOptions = {}): Promise<ModelVersion | undefined> {
    checkLookup(group, idempotencyKey, opts);
    if (!(await this.existingGroup(group))) return undefined;
    const want = storedKey(idempotencyKey);
    let token: string | undefined;
    do {
      const page = await this.o.sagemaker.send(
        new ListModelPackagesCommand({
          ModelPackageGroupName: group,
          ModelPackageType: 'Versioned',
          ...(opts.createdAfter ? { CreationTimeAfter: opts.createdAfter } : {}),
          SortBy: 'CreationTime',
          SortOrder: 'Descending',
          MaxResults: 100,
          ...(token ? { NextToken: token } : {}),
        }),
      );
      for (const s of page.ModelPackageSummaryList ?? []) {
        if (!s.ModelPackageArn) continue;
        const d = await this.o.sagemaker.send(new DescribeModelPackageCommand({ ModelPackageName: s.ModelPackageArn }));
        // The caller's key, not its stored form (they differ for keys SageMaker cannot hold as they are).
        if (d.CustomerMetadataProperties?.['loupe:idempotency-key'] === want) return { ...this.toVersion(d), idempotencyKey };
      }
      token = page.NextToken;
    } while (token);
    return undefined;
  }

  /**
   * The newest *Approved* package by creation time. Not the loupe champion (approved most
   * recently): SageMaker cannot sort by approval time, which is why this registry is a mirror.
   */
  async newestApproved(group: string): Promise<ModelVersion | undefined> {
    const [arn] = await this.listArns(group, 'approved', true, 1);
    return arn ? this.describe(arn) : undefined;
  }

  close(): void {}
}
