import { z } from 'zod';
import { ProcessJpegSource } from './process.js';

/**
 * Cameras read through ffmpeg on the device: a V4L2 device (`/dev/videoN`) or a network stream
 * (RTSP, HTTP MJPEG/HLS, anything ffmpeg opens). ffmpeg re-encodes to MJPEG on a pipe; the
 * stream's own frame rate drives it, optionally capped with `fps`.
 */
const common = {
  ffmpegPath: z.string().default('ffmpeg'),
  fps: z.number().positive().optional(),
  /** JPEG quality for ffmpeg's mjpeg encoder, 2 (best) to 31 */
  quality: z.number().int().min(2).max(31).default(3),
  frameTimeoutMs: z.number().int().min(100).default(10_000),
};

export const v4l2Schema = z.object({
  type: z.literal('v4l2'),
  device: z.string().min(1).default('/dev/video0'),
  inputFormat: z.string().optional(),
  size: z
    .string()
    .regex(/^\d+x\d+$/)
    .optional(),
  ...common,
});

export const streamSchema = z.object({
  type: z.literal('stream'),
  url: z
    .string()
    .regex(/^(rtsp|rtsps|http|https|rtmp|udp|tcp|srt):\/\//, 'must be an rtsp://, http(s)://, rtmp://, udp://, tcp:// or srt:// URL'),
  rtspTransport: z.enum(['tcp', 'udp']).default('tcp'),
  ...common,
});

export type V4l2Config = z.infer<typeof v4l2Schema>;
export type StreamConfig = z.infer<typeof streamSchema>;

function outputArgs(c: { fps?: number; quality: number }): string[] {
  return [...(c.fps ? ['-vf', `fps=${c.fps}`] : []), '-f', 'image2pipe', '-vcodec', 'mjpeg', '-q:v', String(c.quality), 'pipe:1'];
}

export class V4l2Source extends ProcessJpegSource {
  readonly kind = 'v4l2';
  constructor(private readonly cfg: V4l2Config) {
    super(cfg.frameTimeoutMs);
  }
  protected describe(): string {
    return `v4l2 ${this.cfg.device}`;
  }
  protected command() {
    const c = this.cfg;
    const input = [
      '-f',
      'v4l2',
      ...(c.inputFormat ? ['-input_format', c.inputFormat] : []),
      ...(c.size ? ['-video_size', c.size] : []),
      '-i',
      c.device,
    ];
    return { cmd: c.ffmpegPath, args: ['-hide_banner', '-loglevel', 'error', '-nostdin', ...input, ...outputArgs(c)] };
  }
}

export class StreamSource extends ProcessJpegSource {
  readonly kind = 'stream';
  constructor(private readonly cfg: StreamConfig) {
    super(cfg.frameTimeoutMs);
  }
  protected describe(): string {
    return `stream ${this.cfg.url.replace(/\/\/[^@/]*@/, '//***@')}`;
  }
  protected command() {
    const c = this.cfg;
    const rtsp = c.url.startsWith('rtsp') ? ['-rtsp_transport', c.rtspTransport] : [];
    // -rw_timeout makes ffmpeg give up (and exit) when the server goes silent, in microseconds.
    const timeout = ['-rw_timeout', String(c.frameTimeoutMs * 1000)];
    return {
      cmd: c.ffmpegPath,
      args: ['-hide_banner', '-loglevel', 'error', '-nostdin', ...rtsp, ...timeout, '-i', c.url, ...outputArgs(c)],
    };
  }
}
