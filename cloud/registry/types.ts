import { LoupeError } from '../../lib/errors.js';
import type { ArtefactRef } from './artefact-store.js';
import type { RegistryKeyLookup } from './lookup.js';

export type { FindByKeyOptions, RegistryKeyLookup } from './lookup.js';

/**
 * The model registry's vocabulary, shared by the SQLite registry (default) and the SageMaker
 * Model Registry adapter. A model *group* (SageMaker: model package group) holds numbered
 * *versions*; a version is written once (artefacts, metrics, data set, parent, gate result)
 * and afterwards only its status moves: pending → approved | rejected, approved → rejected
 * (revoked), rejected → approved only when forced. Approving needs a passing gate result;
 * without one it must be forced, with a reason, and the history records the override. The champion of a group is the approved
 * version approved most recently: the one a new challenger is gated against and the one the
 * fleet should run.
 */
export type ModelStatus = 'pending' | 'approved' | 'rejected';

/** Which file of a version the fleet runs: the fp32 export, or its int8 quantization (`loupe quantize`). */
export type DeployPrecision = 'fp32' | 'int8';
export type ArtefactKind = 'onnx' | 'onnxInt8' | 'pt' | 'card';

export interface GateSummary {
  passed: boolean;
  metric: string;
  challenger: number;
  champion: number | null;
  championRef: string | null;
  threshold: number;
  tolerance: number;
  reasons: string[];
  /** Which file the fleet runs (fp32, or int8 within the tolerance of fp32), when the loop quantized. */
  fleetPrecision?: 'fp32' | 'int8';
  /** The gate's JSON report, when kept on disk. */
  reportPath?: string;
}

export interface ModelVersion {
  /** `<group>:<version>`, how people and the CLI name a version. */
  ref: string;
  group: string;
  version: number;
  status: ModelStatus;
  statusReason: string | null;
  statusBy: string | null;
  statusAt: string;
  /** `onnx` is the fp32 export; `onnxInt8` its int8 quantization, when the version has one. */
  artefacts: { onnx: ArtefactRef; onnxInt8?: ArtefactRef; pt?: ArtefactRef; card?: ArtefactRef };
  /** The file the fleet runs: `onnx` (fp32) or `onnxInt8` (int8), as the gate chose. */
  fleetPrecision: DeployPrecision;
  /** Test-split scores; those of the int8 file carry an `int8_` prefix (int8_map50, ...). */
  metrics: Record<string, number>;
  datasetVersion: string | null;
  parentRef: string | null;
  gate: GateSummary | null;
  /** Free facts from the model card (classes, imgsz, trainer), for listings. */
  meta: Record<string, unknown>;
  /** Who or what registered it ("seed", "loop run 7", "cli"). */
  source: string;
  /** Registering again with the same key returns this version instead of adding one. */
  idempotencyKey: string;
  createdAt: string;
}

export interface RegisterInput {
  group: string;
  onnx: string;
  /** The int8 quantization of `onnx`. */
  onnxInt8?: string;
  /** Which file the fleet runs (default fp32); int8 needs `onnxInt8`. */
  fleetPrecision?: DeployPrecision;
  pt?: string;
  card?: string;
  metrics?: Record<string, number>;
  datasetVersion?: string | null;
  parentRef?: string | null;
  gate?: GateSummary | null;
  meta?: Record<string, unknown>;
  source: string;
  /** Defaults to sha256(group, onnx digest, data set version, parent). */
  idempotencyKey?: string;
  /** The status to register with; defaults to what the approval policy decides from `gate`. */
  status?: { status: ModelStatus; reason: string; by: string };
}

export interface StatusChange {
  by: string;
  reason?: string;
  /** Approve without a passing gate result (none, failed, or rejected before); needs a reason, recorded. */
  force?: boolean;
}

export interface ModelEvent {
  ref: string;
  at: string;
  from: ModelStatus | null;
  to: ModelStatus;
  by: string;
  reason: string | null;
  /** The move overrode the gate (approved with force). */
  forced: boolean;
}

/** The artefact the fleet runs for a version (its kind and reference). */
export function deployedArtefact(v: Pick<ModelVersion, 'artefacts' | 'fleetPrecision' | 'ref'>): {
  kind: 'onnx' | 'onnxInt8';
  ref: ArtefactRef;
  precision: DeployPrecision;
} {
  if (v.fleetPrecision === 'int8') {
    if (!v.artefacts.onnxInt8)
      throw new LoupeError('REGISTRY_BAD_PRECISION', 'version says the fleet runs int8 but has no int8 artefact', { input: v.ref });
    return { kind: 'onnxInt8', ref: v.artefacts.onnxInt8, precision: 'int8' };
  }
  return { kind: 'onnx', ref: v.artefacts.onnx, precision: 'fp32' };
}

/** What a model registry offers (the SQLite registry; the loop's registry port). */
export interface ModelRegistry extends RegistryKeyLookup {
  register(input: RegisterInput): Promise<ModelVersion>;
  get(ref: string): Promise<ModelVersion | undefined>;
  list(filter?: { group?: string; status?: ModelStatus }): Promise<ModelVersion[]>;
  setStatus(ref: string, status: Exclude<ModelStatus, 'pending'>, change: StatusChange): Promise<ModelVersion>;
  /** The approved version approved most recently. */
  champion(group: string): Promise<ModelVersion | undefined>;
  close(): void;
}

/**
 * What a registry that *mirrors* a loupe registry offers (SageMaker Model Registry): versions
 * are written, read back and have their status moved, but it cannot stand in for a
 * ModelRegistry: it cannot name the champion (approved most recently; SageMaker sorts by
 * creation time only, hence `newestApproved`) and lists one group at a time. The compiler keeps
 * one from being passed where a ModelRegistry is wanted (test/types/mirror-types.ts).
 */
export interface ModelRegistryMirrorTarget extends RegistryKeyLookup {
  register(input: RegisterInput): Promise<ModelVersion>;
  get(ref: string): Promise<ModelVersion | undefined>;
  list(filter: { group: string; status?: ModelStatus }): Promise<ModelVersion[]>;
  setStatus(ref: string, status: Exclude<ModelStatus, 'pending'>, change: StatusChange): Promise<ModelVersion>;
  /** The newest approved version by creation time: not the champion (see above). */
  newestApproved(group: string): Promise<ModelVersion | undefined>;
  close(): void;
}
