import { CreateComponentVersionCommand, DescribeComponentCommand, GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import type { Recipe } from './recipes.js';
import { validateRecipe } from './recipe-schema.js';

/**
 * `loupe publish`: what `gdk component publish` does for the built components. For each recipe in
 * greengrass-build/recipes: upload its artefacts to s3://<bucket>/<component>/<version>/<file>
 * (multipart for large ZIPs), put the bucket into the artefact URIs, create the component
 * version on AWS IoT Greengrass (CreateComponentVersion with the recipe inline), and wait until
 * Greengrass has checked it (DEPLOYABLE), so that a deployment made next can use it. The
 * artefacts' digests were filled in by the build; Greengrass checks them when a device
 * downloads them.
 *
 * Devices need, in their token exchange role: s3:GetObject on arn:aws:s3:::<bucket>/* (the
 * artefacts; Greengrass downloads them with the device's credentials) and, for loupe.Uploader,
 * s3:PutObject on arn:aws:s3:::<upload bucket>/<prefix>/* (recipes/README.md).
 */
export interface PublishOptions {
  buildDir?: string;
  bucket: string;
  region?: string;
  /** only these components (default: every recipe in the build) */
  components?: string[];
  s3?: S3Client;
  greengrass?: GreengrassV2Client;
  /** how long to wait for each version to become DEPLOYABLE (default 5 min) */
  deployableTimeoutMs?: number;
  /** first pause between DescribeComponent polls (default 2 s, growing to 10 s) */
  pollMs?: number;
  log?: Logger;
}

export interface PublishedComponent {
  component: string;
  version: string;
  arn?: string;
  status?: string;
  artifacts: string[];
}

export async function publishComponents(opts: PublishOptions): Promise<PublishedComponent[]> {
  const log = opts.log ?? silentLogger;
  const buildDir = resolve(opts.buildDir ?? join(projectRoot, 'greengrass-build'));
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(opts.bucket))
    throw new LoupeError('publish.bucket', 'is not a valid S3 bucket name', { input: `--bucket ${opts.bucket}` });
  const region = opts.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const s3 = opts.s3 ?? new S3Client({ region });
  const gg = opts.greengrass ?? new GreengrassV2Client({ region });
  const files = (
    await readdir(join(buildDir, 'recipes')).catch(() => {
      throw new LoupeError('publish.build', 'has no recipes/: run `loupe build` first', { input: buildDir });
    })
  )
    .filter((f) => f.endsWith('.json'))
    .sort();
  const out: PublishedComponent[] = [];
  for (const f of files) {
    const recipe = JSON.parse(await readFile(join(buildDir, 'recipes', f), 'utf8')) as Recipe;
    const name = recipe.ComponentName;
    const version = recipe.ComponentVersion;
    if (opts.components && !opts.components.includes(name)) continue;
    const uploaded: string[] = [];
    const seen = new Set<string>();
    for (const m of recipe.Manifests) {
      for (const a of m.Artifacts ?? []) {
        const file = a.Uri.split('/').pop()!;
        const key = `${name}/${version}/${file}`;
        a.Uri = `s3://${opts.bucket}/${key}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const path = join(buildDir, 'artifacts', name, version, file);
        try {
          await new Upload({
            client: s3,
            params: { Bucket: opts.bucket, Key: key, Body: createReadStream(path) },
            partSize: 8 * 1024 * 1024,
            queueSize: 2,
          }).done();
        } catch (e) {
          throw new LoupeError('publish.upload', `upload to s3://${opts.bucket}/${key} failed: ${errorMessage(e)}`, {
            input: path,
            cause: e,
          });
        }
        uploaded.push(a.Uri);
        log.info({ component: name, version, uri: a.Uri }, 'artefact uploaded');
      }
    }
    validateRecipe(recipe, `${name}-${version}`);
    let r;
    try {
      r = await gg.send(
        new CreateComponentVersionCommand({
          inlineRecipe: Buffer.from(JSON.stringify(recipe)),
          clientToken: `${name}-${version}`.slice(0, 64),
        }),
      );
    } catch (e) {
      throw new LoupeError('publish.create', `CreateComponentVersion failed: ${errorMessage(e)}`, {
        input: `${name}@${version}`,
        cause: e,
      });
    }
    log.info({ component: name, version, arn: r.arn, state: r.status?.componentState }, 'component version created');
    if (!r.arn) throw new LoupeError('publish.create', 'CreateComponentVersion returned no arn', { input: `${name}@${version}` });
    const state = await waitUntilDeployable(gg, r.arn, { first: r.status, timeoutMs: opts.deployableTimeoutMs, pollMs: opts.pollMs, log });
    out.push({ component: name, version, arn: r.arn, status: state, artifacts: uploaded });
  }
  if (out.length === 0) throw new LoupeError('publish.none', 'no component recipes to publish', { input: join(buildDir, 'recipes') });
  return out;
}

type ComponentStatus = { componentState?: string; message?: string; errors?: Record<string, string> };

/**
 * Poll DescribeComponent until a new component version is DEPLOYABLE: Greengrass checks a
 * version after CreateComponentVersion (REQUESTED, INITIATED) and refuses it (FAILED) when, for
 * example, it cannot read an artefact; a deployment naming a version that is not DEPLOYABLE
 * fails. `first` is the status CreateComponentVersion answered, which may already say so.
 */
export async function waitUntilDeployable(
  gg: GreengrassV2Client,
  arn: string,
  o: { first?: ComponentStatus; timeoutMs?: number; pollMs?: number; log?: Logger } = {},
): Promise<'DEPLOYABLE'> {
  const timeoutMs = o.timeoutMs ?? 300_000;
  const deadline = Date.now() + timeoutMs;
  let delay = o.pollMs ?? 2000;
  let status = o.first;
  for (let asked = o.first !== undefined; ; asked = true) {
    if (asked) {
      const state = status?.componentState;
      if (state === 'DEPLOYABLE') return state;
      if (state === 'FAILED' || state === 'DEPRECATED') {
        const why = [status?.message, ...Object.entries(status?.errors ?? {}).map(([k, v]) => `${k}: ${v}`)].filter(Boolean).join('; ');
        throw new LoupeError('GREENGRASS_COMPONENT_FAILED', `Greengrass says the component version is ${state}${why ? `: ${why}` : ''}`, {
          input: arn,
        });
      }
      if (Date.now() >= deadline) {
        throw new LoupeError(
          'GREENGRASS_COMPONENT_TIMEOUT',
          `still ${state ?? 'without a state'} after ${(timeoutMs / 1000).toFixed(timeoutMs < 10_000 ? 1 : 0)} s, not DEPLOYABLE (DescribeComponent); no deployment was made`,
          { input: arn },
        );
      }
      o.log?.info({ arn, state, retryInMs: delay }, 'waiting for the component version to become DEPLOYABLE');
      await new Promise((res) => setTimeout(res, Math.max(0, Math.min(delay, deadline - Date.now()))));
      delay = Math.min(Math.round(delay * 1.5), 10_000);
    }
    status = (await gg.send(new DescribeComponentCommand({ arn })))?.status;
  }
}
