import { spawn, spawnSync } from 'node:child_process';
import { extname } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import type { RgbImage } from '../../components/detector/decode.js';

/**
 * Frames of a video file or a stream URL for `loupe detect`, decoded by ffmpeg to raw RGB (no
 * JPEG round trip, so the detector sees the decoder's pixels as ultralytics' cv2.VideoCapture
 * does). The size comes from ffprobe; frames are read whole from ffmpeg's stdout.
 */
export const VIDEO_EXTENSIONS = new Set(['.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv', '.ts', '.gif', '.asf']);
const STREAM_URL = /^(rtsp|rtsps|rtmp|http|https|udp|tcp|srt):\/\//;

export function isStreamUrl(p: string): boolean {
  return STREAM_URL.test(p);
}

export function isVideoFile(p: string): boolean {
  return VIDEO_EXTENSIONS.has(extname(p).toLowerCase());
}

function probeSize(input: string, ffprobe: string): { width: number; height: number } {
  const r = spawnSync(
    ffprobe,
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=width,height',
      '-of',
      'csv=p=0:s=x',
      ...(input.startsWith('rtsp') ? ['-rtsp_transport', 'tcp'] : []),
      input,
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (r.error)
    throw new LoupeError('VIDEO_NO_FFMPEG', `cannot run ${ffprobe} (${r.error.message}); install ffmpeg (Debian: loupe setup system)`, {
      input,
    });
  const m = /^(\d+)x(\d+)/.exec(r.stdout.trim());
  if (r.status !== 0 || !m)
    throw new LoupeError(
      'VIDEO_UNREADABLE',
      `ffprobe found no video stream (${(r.stderr || r.stdout).trim().split('\n').pop() ?? 'no output'})`,
      { input },
    );
  return { width: Number(m[1]), height: Number(m[2]) };
}

export interface VideoFrame {
  /** 0-based index of the frame in the source (before any stride). */
  index: number;
  image: RgbImage;
}

/** Every `stride`-th frame, at most `maxFrames` of them; stops ffmpeg when the caller stops reading. */
export async function* videoFrames(
  input: string,
  opts: { stride?: number; maxFrames?: number; ffmpeg?: string; ffprobe?: string } = {},
): AsyncGenerator<VideoFrame> {
  const { width, height } = probeSize(input, opts.ffprobe ?? 'ffprobe');
  const stride = opts.stride ?? 1;
  const frameBytes = width * height * 3;
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostdin',
    ...(input.startsWith('rtsp') ? ['-rtsp_transport', 'tcp'] : []),
    '-i',
    input,
    '-map',
    '0:v:0',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ];
  const child = spawn(opts.ffmpeg ?? 'ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  const exited = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  let pending: Buffer = Buffer.alloc(0);
  let index = 0;
  let yielded = 0;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= frameBytes) {
        const frame = pending.subarray(0, frameBytes);
        pending = pending.subarray(frameBytes);
        if (index % stride === 0) {
          yield { index, image: { data: new Uint8Array(frame), width, height } };
          yielded++;
          if (opts.maxFrames && yielded >= opts.maxFrames) return;
        }
        index++;
      }
    }
    const code = await exited;
    if (code !== 0 && yielded === 0)
      throw new LoupeError('VIDEO_UNREADABLE', `ffmpeg failed (exit ${code}): ${stderr.trim().split('\n').pop() ?? ''}`, { input });
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
