/** The evaluator's public surface (the gate and `loupe eval` use it). */
export { evaluate, evalSummary } from './evaluate.js';
export type { EvaluateOptions, EvalResult, EvalSummary, PerClassResult, ClassDetail, PrCurves, ConfusionMatrixData } from './evaluate.js';
export { writeEvalArtifacts } from './artifacts.js';
