import { existsSync, statSync } from 'node:fs';
import sharp from 'sharp';
import { labelError, type LabelSource } from './label-check.js';

export interface ImageInfo {
  width: number;
  height: number;
}

/**
 * Size of an image as ultralytics sees it (EXIF orientation applied, as its loader does) after
 * decoding it fully: a file that exists but does not decode (truncated, not an image) is refused
 * here rather than failing a training run later. Errors name the file and the label record.
 */
export async function readImageInfo(path: string, src: LabelSource): Promise<ImageInfo> {
  if (!existsSync(path) || !statSync(path).isFile()) throw labelError('IMAGE_MISSING', src, `image ${path} does not exist`);
  try {
    // failOn 'warning' (the default) also refuses truncated JPEGs; raw() decodes without re-encoding.
    const { info } = await sharp(path, { failOn: 'warning' }).autoOrient().raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height };
  } catch (e) {
    throw labelError('IMAGE_UNREADABLE', src, `image ${path} cannot be decoded (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Run `fn` over `items` with at most `limit` in flight, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T, i);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
  return out;
}
