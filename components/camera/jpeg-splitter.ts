/**
 * Splits a byte stream of concatenated JPEG images (ffmpeg `image2pipe`/mjpeg, GigE and GenICam
 * tools writing frames to stdout) into whole images. It walks the marker structure rather than
 * searching for FFD9: segment lengths are skipped (an EXIF thumbnail holds its own FFD9), and in
 * entropy-coded data only a marker that is not FF00 stuffing or RSTn ends the scan. Hand-written:
 * the npm splitters search for FFD9 naively. Bytes between images (garbage, a torn frame after a
 * reconnect) are skipped up to the next SOI and counted.
 */
export class JpegSplitter {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0; // parse position inside buf (from the SOI at 0)
  private inScan = false;
  skippedBytes = 0;

  constructor(private readonly maxFrameBytes = 64 * 1024 * 1024) {}

  /** Feed bytes; returns the complete images they finish. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      if (!this.syncToSoi()) break;
      const end = this.scan();
      if (end < 0) {
        if (this.buf.length > this.maxFrameBytes) this.resync();
        break;
      }
      out.push(Buffer.from(this.buf.subarray(0, end)));
      this.buf = this.buf.subarray(end);
      this.pos = 0;
      this.inScan = false;
    }
    return out;
  }

  /** Drop bytes before the next SOI (FFD8FF). Returns false when more input is needed. */
  private syncToSoi(): boolean {
    if (this.pos > 0) return true;
    const i = this.buf.indexOf(Buffer.from([0xff, 0xd8, 0xff]));
    if (i < 0) {
      const keep = Math.min(2, this.buf.length);
      this.skippedBytes += this.buf.length - keep;
      this.buf = this.buf.subarray(this.buf.length - keep);
      return false;
    }
    this.skippedBytes += i;
    this.buf = this.buf.subarray(i);
    this.pos = 2;
    return true;
  }

  private resync(): void {
    this.skippedBytes += 2;
    this.buf = this.buf.subarray(2);
    this.pos = 0;
    this.inScan = false;
  }

  /** Advance through markers; the end offset of the image, or -1 if incomplete. */
  private scan(): number {
    const b = this.buf;
    while (this.pos + 1 < b.length) {
      if (this.inScan) {
        const ff = b.indexOf(0xff, this.pos);
        if (ff < 0 || ff + 1 >= b.length) {
          this.pos = ff < 0 ? b.length : ff;
          return -1;
        }
        const m = b[ff + 1]!;
        if (m === 0x00 || (m >= 0xd0 && m <= 0xd7) || m === 0xff) {
          this.pos = m === 0xff ? ff + 1 : ff + 2;
          continue;
        }
        this.inScan = false;
        this.pos = ff;
        continue;
      }
      if (b[this.pos] !== 0xff) {
        // Not at a marker: the stream is corrupt; resynchronise on the next SOI.
        this.resync();
        return this.syncToSoi() ? this.scan() : -1;
      }
      const m = b[this.pos + 1]!;
      if (m === 0xff) {
        this.pos++; // fill byte
        continue;
      }
      if (m === 0xd9) return this.pos + 2; // EOI
      if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7) || m === 0x01) {
        this.pos += 2; // markers without a length
        continue;
      }
      if (this.pos + 3 >= b.length) return -1;
      const len = b.readUInt16BE(this.pos + 2);
      if (this.pos + 2 + len > b.length) return -1;
      this.pos += 2 + len;
      if (m === 0xda) this.inScan = true; // SOS: entropy-coded data follows
    }
    return -1;
  }
}

export function looksLikeJpeg(b: Buffer): boolean {
  return b.length > 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}
