import { join } from 'node:path';

/**
 * The reference solution keeps images under `s3://bucket/.../<folder>/<name>.jpg`; the last two
 * path parts name the file's place in a local copy (`bad/x.jpg`) and serve as the image id.
 */
export function idFromSourceRef(sourceRef: string, parts = 2): string {
  const path = sourceRef.replace(/^[a-z0-9]+:\/\/[^/]*/i, '').replace(/\\/g, '/');
  const segs = path.split('/').filter(Boolean);
  return segs.slice(-parts).join('/');
}

export function localPathFor(imagesDir: string, id: string): string {
  return join(imagesDir, ...id.split('/'));
}
