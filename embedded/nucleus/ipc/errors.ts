/**
 * Modelled GreengrassCoreIPC errors. Thrown by operation handlers; the server turns them into an
 * ApplicationError + TerminateStream with `service-model-type` aws.greengrass#<name> and the JSON
 * body the Java server produces (the shape's own fields plus `_service`, `_message`,
 * `_errorCode`). The JS client only surfaces one as `serviceError` if the shape is in that
 * operation's error list; otherwise the caller sees an InternalError naming the shape — exactly
 * what happens against a real nucleus.
 */
export type IpcErrorName =
  | 'UnauthorizedError'
  | 'ResourceNotFoundError'
  | 'InvalidArgumentsError'
  | 'ServiceError'
  | 'ConflictError'
  | 'FailedUpdateConditionCheckError'
  | 'ComponentNotFoundError'
  | 'InvalidRecipeDirectoryPathError'
  | 'InvalidArtifactsDirectoryPathError'
  | 'InvalidTokenError';

export class IpcError extends Error {
  constructor(
    readonly shape: IpcErrorName,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = shape;
  }

  get modelType(): string {
    return `aws.greengrass#${this.shape}`;
  }

  body(): Record<string, unknown> {
    return {
      message: this.message,
      ...this.extra,
      _service: 'aws.greengrass#GreengrassCoreIPC',
      _message: this.message,
      _errorCode: this.shape,
    };
  }
}

export const unauthorized = (m: string): IpcError => new IpcError('UnauthorizedError', m);
export const invalidArguments = (m: string): IpcError => new IpcError('InvalidArgumentsError', m);
export const notFound = (m: string, resourceType?: string, resourceName?: string): IpcError =>
  new IpcError('ResourceNotFoundError', m, {
    ...(resourceType ? { resourceType } : {}),
    ...(resourceName ? { resourceName } : {}),
  });
export const serviceError = (m: string): IpcError => new IpcError('ServiceError', m);
