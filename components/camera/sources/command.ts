import { z } from 'zod';
import { ProcessJpegSource } from './process.js';

/** Any program that writes JPEG frames to stdout (GigE Vision / GenICam capture tools, scripts). */
export const commandSchema = z.object({
  type: z.literal('command'),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  frameTimeoutMs: z.number().int().min(100).default(10_000),
});
export type CommandConfig = z.infer<typeof commandSchema>;

export class CommandSource extends ProcessJpegSource {
  readonly kind = 'command';
  constructor(private readonly cfg: CommandConfig) {
    super(cfg.frameTimeoutMs);
  }
  protected describe(): string {
    return `command ${this.cfg.command}`;
  }
  protected command() {
    return { cmd: this.cfg.command, args: this.cfg.args, env: this.cfg.env };
  }
}
