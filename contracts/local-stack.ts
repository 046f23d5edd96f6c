/**
 * The key pair of the embedded stack on one machine: the local nucleus's TES vends it to
 * components, the embedded object store accepts it, and cloud-side S3 clients of an embedded
 * store sign with it unless configured otherwise. Not a secret: it only opens local stand-ins.
 */
export const LOCAL_STACK_CREDENTIALS: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken: string } = {
  accessKeyId: 'LOUPELOCALACCESSKEY',
  secretAccessKey: 'loupe-local-secret-access-key',
  sessionToken: 'loupe-local-session-token',
};
