import type { greengrasscoreipc } from 'aws-iot-device-sdk-v2';

/**
 * The GreengrassCoreIPC operations, typed from aws-iot-device-sdk-v2's public model (the same
 * types the components' client uses), so a handler's request fields, its response and its
 * streamed events are checked against the SDK at compile time.
 *
 * Every operation the client knows is listed (keyed by the client's method name: the compiler
 * fails here when an SDK upgrade adds one), with the event shape of the streaming ones. Response
 * shapes are `aws.greengrass#<Operation>Response` throughout. Operations the model knows but
 * loupe does not implement answer as the real nucleus does ("not supported by Greengrass").
 */
/** What a model type looks like on the wire: dates as epoch seconds, blobs as base64, maps as objects, enums as their strings. */
export type Wire<T> = T extends Date
  ? number
  : T extends ArrayBuffer | ArrayBufferView
    ? string
    : T extends Map<string, infer V>
      ? Record<string, Wire<V>>
      : T extends string
        ? `${T}`
        : T extends number | boolean | null | undefined
          ? T
          : T extends readonly (infer E)[]
            ? Wire<E>[]
            : T extends object
              ? { [K in keyof T]: Wire<T[K]> }
              : T;

/** A request as it arrives: the model's field names, values not yet checked (a client may send anything). */
export type Unchecked<T> = { [K in keyof Wire<T>]?: unknown };

/** The operations loupe implements: request, response and (streaming) event types from the SDK. */
export interface Operations {
  PublishToTopic: { request: greengrasscoreipc.model.PublishToTopicRequest; response: greengrasscoreipc.model.PublishToTopicResponse };
  SubscribeToTopic: {
    request: greengrasscoreipc.model.SubscribeToTopicRequest;
    response: greengrasscoreipc.model.SubscribeToTopicResponse;
    event: greengrasscoreipc.model.SubscriptionResponseMessage;
  };
  PublishToIoTCore: {
    request: greengrasscoreipc.model.PublishToIoTCoreRequest;
    response: greengrasscoreipc.model.PublishToIoTCoreResponse;
  };
  SubscribeToIoTCore: {
    request: greengrasscoreipc.model.SubscribeToIoTCoreRequest;
    response: greengrasscoreipc.model.SubscribeToIoTCoreResponse;
    event: greengrasscoreipc.model.IoTCoreMessage;
  };
  GetConfiguration: {
    request: greengrasscoreipc.model.GetConfigurationRequest;
    response: greengrasscoreipc.model.GetConfigurationResponse;
  };
  UpdateConfiguration: {
    request: greengrasscoreipc.model.UpdateConfigurationRequest;
    response: greengrasscoreipc.model.UpdateConfigurationResponse;
  };
  SubscribeToConfigurationUpdate: {
    request: greengrasscoreipc.model.SubscribeToConfigurationUpdateRequest;
    response: greengrasscoreipc.model.SubscribeToConfigurationUpdateResponse;
    event: greengrasscoreipc.model.ConfigurationUpdateEvents;
  };
  SubscribeToValidateConfigurationUpdates: {
    request: greengrasscoreipc.model.SubscribeToValidateConfigurationUpdatesRequest;
    response: greengrasscoreipc.model.SubscribeToValidateConfigurationUpdatesResponse;
    event: greengrasscoreipc.model.ValidateConfigurationUpdateEvents;
  };
  SendConfigurationValidityReport: {
    request: greengrasscoreipc.model.SendConfigurationValidityReportRequest;
    response: greengrasscoreipc.model.SendConfigurationValidityReportResponse;
  };
  UpdateState: { request: greengrasscoreipc.model.UpdateStateRequest; response: greengrasscoreipc.model.UpdateStateResponse };
  SubscribeToComponentUpdates: {
    request: greengrasscoreipc.model.SubscribeToComponentUpdatesRequest;
    response: greengrasscoreipc.model.SubscribeToComponentUpdatesResponse;
    event: greengrasscoreipc.model.ComponentUpdatePolicyEvents;
  };
  DeferComponentUpdate: {
    request: greengrasscoreipc.model.DeferComponentUpdateRequest;
    response: greengrasscoreipc.model.DeferComponentUpdateResponse;
  };
  PauseComponent: { request: greengrasscoreipc.model.PauseComponentRequest; response: greengrasscoreipc.model.PauseComponentResponse };
  ResumeComponent: { request: greengrasscoreipc.model.ResumeComponentRequest; response: greengrasscoreipc.model.ResumeComponentResponse };
  GetComponentDetails: {
    request: greengrasscoreipc.model.GetComponentDetailsRequest;
    response: greengrasscoreipc.model.GetComponentDetailsResponse;
  };
  ListComponents: { request: greengrasscoreipc.model.ListComponentsRequest; response: greengrasscoreipc.model.ListComponentsResponse };
  RestartComponent: {
    request: greengrasscoreipc.model.RestartComponentRequest;
    response: greengrasscoreipc.model.RestartComponentResponse;
  };
  StopComponent: { request: greengrasscoreipc.model.StopComponentRequest; response: greengrasscoreipc.model.StopComponentResponse };
  CreateLocalDeployment: {
    request: greengrasscoreipc.model.CreateLocalDeploymentRequest;
    response: greengrasscoreipc.model.CreateLocalDeploymentResponse;
  };
  GetLocalDeploymentStatus: {
    request: greengrasscoreipc.model.GetLocalDeploymentStatusRequest;
    response: greengrasscoreipc.model.GetLocalDeploymentStatusResponse;
  };
  ListLocalDeployments: {
    request: greengrasscoreipc.model.ListLocalDeploymentsRequest;
    response: greengrasscoreipc.model.ListLocalDeploymentsResponse;
  };
  PutComponentMetric: {
    request: greengrasscoreipc.model.PutComponentMetricRequest;
    response: greengrasscoreipc.model.PutComponentMetricResponse;
  };
  ValidateAuthorizationToken: {
    request: greengrasscoreipc.model.ValidateAuthorizationTokenRequest;
    response: greengrasscoreipc.model.ValidateAuthorizationTokenResponse;
  };
}

export type OperationName = keyof Operations;
export type RequestOf<K extends OperationName> = Unchecked<Operations[K]['request']>;
export type ResponseOf<K extends OperationName> = Wire<Operations[K]['response']>;
export type EventOf<K extends OperationName> = Operations[K] extends { event: infer E } ? Wire<E> : never;

type ClientOperation = Exclude<keyof greengrasscoreipc.Client, 'connect' | 'close' | 'on' | keyof NodeJS.EventEmitter>;

/**
 * Every operation of the model, by the client's method name, with the event shape of the
 * streaming ones (`satisfies` makes a new SDK operation a compile error until it is listed).
 */
const CLIENT_OPERATIONS = {
  authorizeClientDeviceAction: {},
  cancelLocalDeployment: {},
  createDebugPassword: {},
  createLocalDeployment: {},
  deferComponentUpdate: {},
  deleteThingShadow: {},
  getClientDeviceAuthToken: {},
  getComponentDetails: {},
  getConfiguration: {},
  getLocalDeploymentStatus: {},
  getSecretValue: {},
  getThingShadow: {},
  listComponents: {},
  listLocalDeployments: {},
  listNamedShadowsForThing: {},
  pauseComponent: {},
  publishToIoTCore: {},
  publishToTopic: {},
  putComponentMetric: {},
  restartComponent: {},
  resumeComponent: {},
  sendConfigurationValidityReport: {},
  stopComponent: {},
  subscribeToCertificateUpdates: { event: 'CertificateUpdateEvent' },
  subscribeToComponentUpdates: { event: 'ComponentUpdatePolicyEvents' },
  subscribeToConfigurationUpdate: { event: 'ConfigurationUpdateEvents' },
  subscribeToIoTCore: { event: 'IoTCoreMessage' },
  subscribeToTopic: { event: 'SubscriptionResponseMessage' },
  subscribeToValidateConfigurationUpdates: { event: 'ValidateConfigurationUpdateEvents' },
  updateConfiguration: {},
  updateState: {},
  updateThingShadow: {},
  validateAuthorizationToken: {},
  verifyClientDeviceIdentity: {},
} satisfies Record<ClientOperation, { event?: string }>;

export interface OperationModel {
  /** aws.greengrass#<Operation>Response */
  responseShape: string;
  /** aws.greengrass#<Event> for streaming operations. */
  eventShape?: string;
}

/** Full operation name (aws.greengrass#PublishToTopic) -> its shapes, for every operation of the model. */
export const SERVICE_MODEL: ReadonlyMap<string, OperationModel> = new Map(
  Object.entries(CLIENT_OPERATIONS).map(([method, o]) => {
    const op = method[0]!.toUpperCase() + method.slice(1);
    const event = (o as { event?: string }).event;
    return [
      `aws.greengrass#${op}`,
      { responseShape: `aws.greengrass#${op}Response`, ...(event ? { eventShape: `aws.greengrass#${event}` } : {}) },
    ];
  }),
);
