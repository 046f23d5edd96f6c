/**
 * An S3 error as the wire shows it: an HTTP status plus the S3 error code the SDK maps to an
 * exception name (`NoSuchKey`, `BadDigest`, ...). Codes and statuses follow the S3 API reference.
 */
export class S3Error extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly resource?: string,
  ) {
    super(message);
    this.name = 'S3Error';
  }
}

export const noSuchBucket = (b: string): S3Error => new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', b);
export const noSuchKey = (k: string): S3Error => new S3Error('NoSuchKey', 404, 'The specified key does not exist.', k);
export const noSuchUpload = (id: string): S3Error =>
  new S3Error(
    'NoSuchUpload',
    404,
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    id,
  );
export const invalidArgument = (msg: string, what?: string): S3Error => new S3Error('InvalidArgument', 400, msg, what);
export const badDigest = (msg: string): S3Error => new S3Error('BadDigest', 400, msg);
