import { CreateComponentVersionCommand, GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
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
 * (multipart for large ZIPs), put the bucket into the artefact URIs, and create the component
 * version on AWS IoT Greengrass (CreateComponentVersion with the recipe inline). The artefacts'
 * digests were filled in by the build; Greengrass checks them when a device downloads them.
 */
export interface PublishOptions {
  buildDir?: string;
  bucket: string;
  region?: string;
  /** only these components (default: every recipe in the build) */
  components?: string[];
  s3?: S3Client;
  greengrass?: GreengrassV2Client;
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
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(opts.bucket)) throw new LoupeError('publish.bucket', 'is not a valid S3 bucket name', { input: `--bucket ${opts.bucket}` });
  const region = opts.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const s3 = opts.s3 ?? new S3Client({ region });
  const gg = opts.greengrass ?? new GreengrassV2Client({ region });
  const files = (await readdir(join(buildDir, 'recipes')).catch(() => {
    throw new LoupeError('publish.build', 'has no recipes/: run `loupe build` first', { input: buildDir });
  })).filter((f) => f.endsWith('.json')).sort();
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
          await new Upload({ client: s3, params: { Bucket: opts.bucket, Key: key, Body: createReadStream(path) }, partSize: 8 * 1024 * 1024, queueSize: 2 }).done();
        } catch (e) {
          throw new LoupeError('publish.upload', `upload to s3://${opts.bucket}/${key} failed: ${errorMessage(e)}`, { input: path, cause: e });
        }
        uploaded.push(a.Uri);
        log.info({ component: name, version, uri: a.Uri }, 'artefact uploaded');
      }
    }
    validateRecipe(recipe, `${name}-${version}`);
    try {
      const r = await gg.send(new CreateComponentVersionCommand({ inlineRecipe: Buffer.from(JSON.stringify(recipe)), clientToken: `${name}-${version}`.slice(0, 64) }));
      out.push({ component: name, version, arn: r.arn, status: r.status?.componentState, artifacts: uploaded });
      log.info({ component: name, version, arn: r.arn, state: r.status?.componentState }, 'component version created');
    } catch (e) {
      throw new LoupeError('publish.create', `CreateComponentVersion failed: ${errorMessage(e)}`, { input: `${name}@${version}`, cause: e });
    }
  }
  if (out.length === 0) throw new LoupeError('publish.none', 'no component recipes to publish', { input: join(buildDir, 'recipes') });
  return out;
}
