/**
 * A camera source: one small block per kind of camera, each with its own config schema
 * (sources/index.ts lists them). `next()` resolves with the next frame's encoded bytes, or
 * null when the source has ended for good (a folder read once); it rejects when the camera is
 * lost, and the supervisor then closes it and opens it again with backoff.
 */
export interface Frame {
  data: Buffer;
  /** file extension for the frame store: jpg, png, ... */
  ext: string;
  /** where the frame came from (file path, URL), for logs and sidecars */
  origin?: string;
}

export interface FrameSource {
  readonly kind: string;
  open(): Promise<void>;
  next(): Promise<Frame | null>;
  close(): Promise<void>;
}
