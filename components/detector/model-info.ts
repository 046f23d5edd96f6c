import type { ErrorCode } from '../../lib/error-codes.js';
import { LoupeError } from '../../lib/errors.js';
import { parsePyLiteral, parsePyNames, type PyValue } from '../../lib/pyliteral.js';
import { ONNX_ELEM_TYPE, ProtoError, readOnnxModel, type OnnxModelSummary, type OnnxValueInfo } from './onnx-proto.js';

/** What the detector knows about a loaded model (from its metadata and graph signature). */
export interface ModelInfo {
  path: string;
  /** Class names indexed by class id. */
  names: string[];
  /** Inference size [h, w]: the fixed input size, or the letterbox target of a dynamic model. */
  imgsz: [number, number];
  stride: number;
  task: string;
  /** Input height/width are symbolic (exported with dynamic=True). */
  dynamic: boolean;
  /** Exported with nms=True: output [1, maxDet, 6] = x1, y1, x2, y2, score, class. */
  nmsExport: boolean;
  /** Input tensor is float16 (exported with half=True). */
  fp16: boolean;
  /** Output tensor is float16. */
  outputFp16: boolean;
  /**
   * The arithmetic the model runs in: 'int8' for a quantized graph (QDQ or QOperator nodes, e.g.
   * from `loupe quantize`; its input and output stay float32), 'fp16' for a half export, else 'fp32'.
   */
  precision: ModelPrecision;
  inputName: string;
  outputName: string;
  /** Graph input/output dims, -1 where symbolic. */
  inputShape: number[];
  outputShape: number[];
  /** ultralytics version that exported it, when recorded. */
  exporterVersion?: string;
  /** The raw metadata_props. */
  metadata: Record<string, string>;
}

export type ModelPrecision = 'fp32' | 'fp16' | 'int8';

/** Operators only a quantized (int8/uint8) graph holds: QDQ pairs, or onnxruntime's QOperator forms. */
const QUANTIZED_OPS = [
  'QuantizeLinear',
  'DequantizeLinear',
  'QLinearConv',
  'ConvInteger',
  'MatMulInteger',
  'QLinearMatMul',
  'DynamicQuantizeLinear',
];

/** A graph's precision from its operators and input type (see ModelInfo.precision). */
export function graphPrecision(opTypes: Record<string, number>, inputFp16: boolean): ModelPrecision {
  if (QUANTIZED_OPS.some((op) => (opTypes[op] ?? 0) > 0)) return 'int8';
  return inputFp16 ? 'fp16' : 'fp32';
}

export interface ModelOverrides {
  /** Inference size (square N or [h, w]); required when the model has no imgsz metadata and a dynamic input. */
  imgsz?: number | [number, number];
  /** Class names; required when the model has no `names` metadata. */
  names?: string[];
}

function fail(code: ErrorCode, path: string, msg: string): never {
  throw new LoupeError(code, msg, { input: path });
}

function dimsOf(v: OnnxValueInfo): number[] {
  return (v.dims ?? []).map((d) => (d.value !== undefined && d.value > 0 && !d.param ? d.value : -1));
}

/** utils/checks.py check_imgsz: round each side up to a multiple of the stride. */
function strideMultiple(x: number, stride: number): number {
  return Math.max(Math.ceil(x / stride) * stride, stride);
}

function parseImgsz(raw: PyValue | number | [number, number], path: string, what: string): [number, number] {
  const v = typeof raw === 'number' ? [raw, raw] : raw;
  if (!Array.isArray(v) || v.length < 1 || v.length > 2 || !v.every((n) => typeof n === 'number' && Number.isInteger(n) && n > 0)) {
    fail('MODEL_BAD_IMGSZ', path, `${what} must be a positive integer or [h, w], got ${JSON.stringify(raw)}`);
  }
  const a = v as number[];
  return [a[0], a[a.length - 1]];
}

/**
 * Interpret an ONNX file's bytes as an ultralytics detection export (nn/autobackend.py: metadata
 * literals via ast.literal_eval, `dynamic` from the input shape or args, `end2end` from args.nms,
 * fp16 from the input type), refusing anything the detector could not run correctly.
 */
export function modelInfoFromBytes(bytes: Uint8Array, path: string, overrides: ModelOverrides = {}): ModelInfo {
  let m: OnnxModelSummary;
  try {
    m = readOnnxModel(bytes);
  } catch (e) {
    if (e instanceof ProtoError) fail('MODEL_NOT_ONNX', path, `not an ONNX model (${e.message})`);
    throw e;
  }
  const meta = m.metadata;
  const task = meta.task ?? 'detect';
  if (task !== 'detect') fail('MODEL_NOT_DETECT', path, `model task is '${task}'; loupe runs detection models only (task 'detect')`);

  if (m.inputs.length !== 1)
    fail('MODEL_BAD_INPUT', path, `expected one image input, found ${m.inputs.length} (${m.inputs.map((i) => i.name).join(', ')})`);
  if (m.outputs.length < 1) fail('MODEL_BAD_OUTPUT', path, 'the graph has no outputs');
  const input = m.inputs[0];
  const output = m.outputs[0];
  const inType = ONNX_ELEM_TYPE[input.elemType] ?? `type ${input.elemType}`;
  const outType = ONNX_ELEM_TYPE[output.elemType] ?? `type ${output.elemType}`;
  if (inType !== 'float32' && inType !== 'float16')
    fail('MODEL_BAD_INPUT', path, `input '${input.name}' is ${inType}; expected float32 or float16`);
  if (outType !== 'float32' && outType !== 'float16')
    fail('MODEL_BAD_OUTPUT', path, `output '${output.name}' is ${outType}; expected float32 or float16`);
  const inShape = dimsOf(input);
  const outShape = dimsOf(output);
  if (inShape.length !== 4)
    fail(
      'MODEL_BAD_INPUT',
      path,
      `input '${input.name}' has rank ${inShape.length} ([${inShape.join(', ')}]); expected [batch, 3, height, width]`,
    );
  if (inShape[1] !== 3 && inShape[1] !== -1)
    fail('MODEL_BAD_INPUT', path, `input '${input.name}' has ${inShape[1]} channels; expected 3 (RGB)`);
  if (inShape[0] > 1)
    fail('MODEL_BAD_INPUT', path, `input '${input.name}' has a fixed batch of ${inShape[0]}; export with batch=1 or dynamic=True`);
  if (outShape.length !== 3)
    fail(
      'MODEL_BAD_OUTPUT',
      path,
      `output '${output.name}' has rank ${outShape.length} ([${outShape.join(', ')}]); expected [1, 4+classes, anchors] or [1, N, 6]`,
    );

  let args: Record<string, PyValue> = {};
  if (meta.args) {
    const a = parsePyLiteral(meta.args, { input: `${path} metadata 'args'` });
    if (a && typeof a === 'object' && !Array.isArray(a)) args = a;
  }
  const stride = meta.stride !== undefined ? Number(meta.stride) : 32;
  if (!Number.isInteger(stride) || stride <= 0)
    fail('MODEL_BAD_METADATA', path, `metadata 'stride' is not a positive integer: ${meta.stride}`);

  const dynamic = inShape[2] === -1 || inShape[3] === -1;
  let imgsz: [number, number];
  if (overrides.imgsz !== undefined) {
    imgsz = parseImgsz(overrides.imgsz, path, '--imgsz');
    if (dynamic) imgsz = [strideMultiple(imgsz[0], stride), strideMultiple(imgsz[1], stride)];
    else if (imgsz[0] !== inShape[2] || imgsz[1] !== inShape[3]) {
      fail(
        'MODEL_IMGSZ_MISMATCH',
        path,
        `--imgsz ${imgsz.join('x')} does not fit the model's fixed input ${inShape[2]}x${inShape[3]} (only dynamic exports take other sizes)`,
      );
    }
  } else if (!dynamic) {
    imgsz = [inShape[2], inShape[3]];
  } else if (meta.imgsz !== undefined) {
    imgsz = parseImgsz(parsePyLiteral(meta.imgsz, { input: `${path} metadata 'imgsz'` }), path, "metadata 'imgsz'");
  } else {
    fail('MODEL_NO_METADATA', path, 'dynamic input size and no imgsz metadata: pass --imgsz');
  }

  let names: string[];
  if (overrides.names !== undefined) {
    names = overrides.names;
    if (names.length === 0 || names.some((n) => typeof n !== 'string' || n === ''))
      fail('MODEL_BAD_NAMES', path, '--names must list one non-empty name per class');
  } else if (meta.names !== undefined) {
    names = parsePyNames(meta.names, { input: `${path} metadata 'names'` });
  } else {
    fail('MODEL_NO_METADATA', path, "no class names in the model metadata ('names'): pass --names a,b,...");
  }
  if (names.length === 0) fail('MODEL_BAD_NAMES', path, 'the model lists no classes');

  const nmsExport = args.nms === true || (outShape[2] === 6 && outShape[1] !== 4 + names.length);
  if (nmsExport) {
    if (outShape[2] !== 6)
      fail('MODEL_BAD_OUTPUT', path, `nms=True export must output [1, N, 6]; '${output.name}' is [${outShape.join(', ')}]`);
  } else if (outShape[1] !== -1 && outShape[1] !== 4 + names.length) {
    const nc = outShape[1] - 4;
    fail(
      'MODEL_CLASS_MISMATCH',
      path,
      `output '${output.name}' is [${outShape.join(', ')}]: ${nc} class score rows, but ${names.length} class name(s) ${overrides.names ? 'given with --names' : 'in the metadata'} (${names.join(', ')})`,
    );
  }
  if (!dynamic && !nmsExport && outShape[2] !== -1 && stride === 32) {
    // Anchors of a P3-P5 YOLOv8 head: one per cell at strides 8, 16, 32.
    const [h, w] = imgsz;
    const anchors = [8, 16, 32].reduce((s, st) => s + Math.ceil(h / st) * Math.ceil(w / st), 0);
    if (anchors !== outShape[2]) {
      fail(
        'MODEL_BAD_OUTPUT',
        path,
        `output '${output.name}' has ${outShape[2]} anchors; a ${h}x${w} YOLOv8 detection head has ${anchors}`,
      );
    }
  }

  return {
    path,
    names,
    imgsz,
    stride,
    task,
    dynamic,
    nmsExport,
    fp16: inType === 'float16',
    outputFp16: outType === 'float16',
    precision: graphPrecision(m.opTypes, inType === 'float16'),
    inputName: input.name,
    outputName: output.name,
    inputShape: inShape,
    outputShape: outShape,
    exporterVersion: meta.version,
    metadata: meta,
  };
}
