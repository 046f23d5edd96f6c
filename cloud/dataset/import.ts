import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { importCoco } from './coco.js';
import { importFeatureStore } from './featurestore.js';
import { importGroundTruth } from './groundtruth-manifest.js';
import type { ImportedDataset } from './types.js';
import { importVoc } from './voc.js';

export const IMPORT_FORMATS = ['voc', 'featurestore', 'groundtruth', 'coco'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

export interface ImportOptions {
  /** Where the images are, when not beside the labels. */
  imagesDir?: string;
  /** Class names in index order (required to refuse unknown classes; defaults per format). */
  names?: string[];
  /** VOC: keep difficult objects. */
  includeDifficult?: boolean;
  /** Ground Truth: the label attribute. */
  attribute?: string;
  log?: Logger;
}

/** Import labels of any supported format into labelled images (one entry point for the CLI and the loop). */
export function importDataset(format: string, from: string, opts: ImportOptions = {}): Promise<ImportedDataset> {
  switch (format as ImportFormat) {
    case 'voc':
      return importVoc(from, { imagesDir: opts.imagesDir, names: opts.names, includeDifficult: opts.includeDifficult, log: opts.log });
    case 'featurestore':
      return importFeatureStore(from, { imagesDir: opts.imagesDir, names: opts.names, log: opts.log });
    case 'groundtruth':
      return importGroundTruth(from, { imagesDir: opts.imagesDir, names: opts.names, attribute: opts.attribute, log: opts.log });
    case 'coco':
      return importCoco(from, { imagesDir: opts.imagesDir, names: opts.names, log: opts.log });
    default:
      throw new LoupeError('BAD_FORMAT', `unknown format ${JSON.stringify(format)} (one of ${IMPORT_FORMATS.join(', ')})`, { input: '--format' });
  }
}
