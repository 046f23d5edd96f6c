/**
 * The message contracts between loupe's edge components. Local IPC topics carry paths and
 * metadata, never pixels; IoT Core topics are per thing. Every message is a JSON object.
 *
 * Local (PublishToTopic / SubscribeToTopic):
 *   loupe/frames          Camera → Inference      FrameMessage
 *   loupe/results         Inference → Uploader …  ResultMessage
 *   loupe/trigger         anyone → Camera         TriggerMessage
 *   loupe/model           Model → Inference       ModelAnnouncement (on start and on loupe/model/query)
 *   loupe/model/query     Inference → Model       {}
 *   loupe/inference/ready Inference → Camera      {model} once subscribed (camera re-announces unanswered frames)
 *   loupe/uploader/handled Uploader → Camera     UploaderHandledBatch (or one UploaderHandled), once results are durably dealt with (spooled or not selected)
 *   loupe/uploader/ready  Uploader → Camera       {} once subscribed (camera re-announces frames the uploader has not handled)
 *   loupe/telemetry/<c>   each component          telemetry object (camera, inference, uploader)
 *   loupe/health/camera   Camera                  CameraHealth[]  (as {cameras: [...]})
 * IoT Core (PublishToIoTCore, QoS 1):
 *   loupe/<thing>/results       ResultMessage
 *   loupe/<thing>/telemetry     {component, ...telemetry}
 *   loupe/<thing>/health        {component: 'camera', cameras: CameraHealth[]}
 *   loupe/<thing>/trigger       (subscribed by Camera) TriggerMessage or a bare serial as text
 */
export const TOPICS = {
  frames: 'loupe/frames',
  results: 'loupe/results',
  trigger: 'loupe/trigger',
  model: 'loupe/model',
  modelQuery: 'loupe/model/query',
  inferenceReady: 'loupe/inference/ready',
  uploaderHandled: 'loupe/uploader/handled',
  uploaderReady: 'loupe/uploader/ready',
  telemetry: (component: string) => `loupe/telemetry/${component}`,
  cameraHealth: 'loupe/health/camera',
} as const;

export const IOT_TOPICS = {
  results: (thing: string) => `loupe/${thing}/results`,
  telemetry: (thing: string) => `loupe/${thing}/telemetry`,
  health: (thing: string) => `loupe/${thing}/health`,
  trigger: (thing: string) => `loupe/${thing}/trigger`,
} as const;

export type TriggerKind = 'interval' | 'continuous' | 'ipc' | 'mqtt';

/**
 * The uploader's word that a frame's result is dealt with for good: its image is in the durable
 * spool, or the policies, limits or de-duplication decided not to send it. A camera with
 * `delivery.ackBy: 'uploader'` keeps announcing the frame until this arrives, so a result the
 * uploader missed (it was restarting) or could not spool (disk full) comes round again.
 */
export interface UploaderHandled {
  frameId: string;
  camera: string;
  outcome: 'spooled' | 'not-selected' | 'duplicate' | 'rate-limited' | 'refused';
}

/**
 * The uploader's answers, coalesced: one message per ~200 ms instead of one per frame (each IPC
 * message costs the publisher, the nucleus and the camera). A camera accepts this and the
 * single-answer form.
 */
export interface UploaderHandledBatch {
  handled: UploaderHandled[];
}

/** The frame ids a `loupe/uploader/handled` message answers for (either form; anything else: none). */
export function handledFrameIds(m: Record<string, unknown>): string[] {
  if (Array.isArray(m.handled))
    return m.handled.flatMap((h) => (h && typeof (h as UploaderHandled).frameId === 'string' ? [(h as UploaderHandled).frameId] : []));
  return typeof m.frameId === 'string' ? [m.frameId] : [];
}

export interface FrameMessage {
  /** unique and stable: `<camera>-<run>-<seq>`; upload keys derive from it */
  frameId: string;
  camera: string;
  seq: number;
  /** capture time, ISO-8601 */
  time: string;
  trigger: TriggerKind;
  /** part serial carried by an external trigger */
  serial?: string;
  /** absolute path of the JPEG in the camera's frame store */
  path: string;
  bytes: number;
}

export interface Detection {
  xyxy: [number, number, number, number];
  conf: number;
  cls: number;
  name: string;
}

export interface ModelRef {
  name: string;
  version: string;
  sha256: string;
  /** The arithmetic the detector runs the model in (set by Inference from the graph: fp32, fp16 or int8). */
  precision?: 'fp32' | 'fp16' | 'int8';
}

/**
 * ResultMessage versions: `loupe.result/2` adds `schema` and `hashes` (perceptual hashes of the
 * frame's decoded pixels, so the uploader de-duplicates without reading the frame again). A
 * message without `schema` is version 1; consumers accept both.
 */
export const RESULT_SCHEMA = 'loupe.result/2';

export interface ResultMessage extends FrameMessage {
  schema?: typeof RESULT_SCHEMA;
  width: number;
  height: number;
  /** pass | fail; `error` when the frame could not be inferred (corrupt JPEG, missing file) */
  verdict: 'pass' | 'fail' | 'error';
  /** names of the verdict rules that fired */
  reasons: string[];
  /** detections kept after thresholds, class filter and ROI, in original-image pixels */
  detections: Detection[];
  model: ModelRef;
  /** ms from frame capture to result */
  latencyMs: number;
  /** ms spent in the detector (decode included) */
  inferMs: number;
  /** dHash and pHash (16 hex digits each) of the decoded frame, as common/image-hash.ts computes them */
  hashes?: { dhash: string; phash: string };
  error?: string;
}

export interface TriggerMessage {
  /** camera name; absent = every camera with an ipc/mqtt trigger */
  camera?: string;
  serial?: string;
}

export interface ModelAnnouncement extends ModelRef {
  /** absolute path of model.onnx (digest already checked by loupe.Model) */
  path: string;
  card?: Record<string, unknown>;
}

export interface CameraHealth {
  camera: string;
  state: 'starting' | 'ok' | 'reconnecting' | 'ended' | 'stopped';
  frames: number;
  errors: number;
  restarts: number;
  lastFrameAt?: string;
  lastError?: string;
}
