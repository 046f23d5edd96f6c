import { z } from 'zod';
import { CommandSource, commandSchema } from './command.js';
import { StreamSource, V4l2Source, streamSchema, v4l2Schema } from './ffmpeg.js';
import { FolderSource, folderSchema } from './folder.js';
import { SnapshotSource, snapshotSchema } from './snapshot.js';
import type { FrameSource } from './source.js';

/** The camera source blocks, chosen by `source.type`. Add a kind here with its schema. */
export const sourceSchema = z.discriminatedUnion('type', [folderSchema, v4l2Schema, streamSchema, snapshotSchema, commandSchema]);
export type SourceConfig = z.infer<typeof sourceSchema>;

export function createSource(cfg: SourceConfig): FrameSource {
  switch (cfg.type) {
    case 'folder':
      return new FolderSource(cfg);
    case 'v4l2':
      return new V4l2Source(cfg);
    case 'stream':
      return new StreamSource(cfg);
    case 'snapshot':
      return new SnapshotSource(cfg);
    case 'command':
      return new CommandSource(cfg);
  }
}

export type { Frame, FrameSource } from './source.js';
