import { trainingJobRequest } from '../training/sagemaker-trainer.js';
import { PIPELINE_REPORT, PROCESSING_ROOT } from '../serverless/processing.js';
import type { InfraConfig } from './config.js';
import { ML_PREFIX } from './layout.js';

/**
 * The model-build SageMaker Pipeline, as its JSON definition (schema version 2020-12-01):
 *
 *   Snapshot (Processing: the loop's snapshot step; data set channel, champion .pt, report)
 *   └ HasNewLabels (Condition: report.newLabels == true; else the execution ends, as the loop halts)
 *       Train (Training: loupe's training image, the request loupeʼs SageMaker trainer sends,
 *              warm start from the champion's .pt)
 *       Evaluate (Processing: the loop's evaluate and gate steps; loupe's evaluator on the test split)
 *       Gate (Condition: the gate's decision, report.gate.passed == true)
 *         ├ RegisterModel    (Lambda: the loop's register step → model package, PendingManualApproval
 *         │                   or Approved by the ModelApprovalStatus parameter)
 *         └ RegisterRejected (Lambda: the same step; the package is registered Rejected, with its gate report)
 *
 * Why Lambda steps and not SageMaker's RegisterModel step type: the model package loupe makes
 * carries what the fleet and `loupe models` read back (the ONNX, .pt and card artefacts by
 * digest, the data set version, the parent, the gate summary: cloud/registry/sagemaker-registry.ts)
 * and the loop's registry records it; those values exist only once the evaluation ran, and a
 * RegisterModel step can only pass through property references, not run loupe's code.
 *
 * Expressions: `{"Get": "Parameters.X"}`, `{"Get": "Steps.S.<property path>"}`, `{"Get":
 * "Execution.X"}`, `{"Std:Join": {"On", "Values"}}`, `{"Std:JsonGet": {"PropertyFile", "Path"}}`
 * (pipeline-check.ts checks every one of them).
 */
export type Expr =
  { Get: string } | { 'Std:Join': { On: string; Values: unknown[] } } | { 'Std:JsonGet': { PropertyFile: { Get: string }; Path: string } };

export interface PipelineStep {
  Name: string;
  Type: 'Processing' | 'Training' | 'Condition' | 'Lambda' | 'Fail';
  Arguments?: Record<string, unknown>;
  DependsOn?: string[];
  PropertyFiles?: { PropertyFileName: string; OutputName: string; FilePath: string }[];
  FunctionArn?: string;
  OutputParameters?: { OutputName: string; OutputType: 'String' | 'Integer' | 'Float' | 'Boolean' }[];
  Description?: string;
}

export interface PipelineParameter {
  Name: string;
  Type: 'String' | 'Integer' | 'Float' | 'Boolean';
  DefaultValue?: string | number | boolean;
}

export interface PipelineDefinition {
  Version: '2020-12-01';
  Metadata: Record<string, unknown>;
  Parameters: PipelineParameter[];
  PipelineExperimentConfig?: Record<string, unknown>;
  Steps: PipelineStep[];
}

export interface PipelineRefs {
  mlBucket: string;
  /** The role the processing and training jobs run as. */
  jobRoleArn: string;
  cloudImage: string;
  trainingImage: string;
  registerFunctionArn: string;
  /** The processing containers' environment (LOUPE_LOOP_CONFIG, LOUPE_HOME_URI). */
  environment: Record<string, string>;
}

export const get = (path: string): Expr => ({ Get: path });
export const param = (name: string): Expr => get(`Parameters.${name}`);
export const join = (on: string, values: unknown[]): Expr => ({ 'Std:Join': { On: on, Values: values } });
/** A number parameter as the string SageMaker wants in hyperparameters and container arguments. */
export const str = (e: Expr): Expr => join('', [e]);
export const jsonGet = (step: string, file: string, path: string): Expr => ({
  'Std:JsonGet': { PropertyFile: { Get: `Steps.${step}.PropertyFiles.${file}` }, Path: path },
});
const output = (step: string, name: string) => get(`Steps.${step}.ProcessingOutputConfig.Outputs['${name}'].S3Output.S3Uri`);

/** s3://<ml bucket>/loupe/pipeline/<execution id>/<part> */
const executionUri = (bucket: string, part: string) =>
  join('/', [`s3://${bucket}`, ML_PREFIX.pipeline.replace(/\/$/, ''), get('Execution.PipelineExecutionId'), part]);

const PROCESSING_SCRIPT = '/var/task/dist/cloud/serverless/processing.js';

function processingOutput(name: string, uri: Expr) {
  return {
    OutputName: name,
    AppManaged: false,
    S3Output: { S3Uri: uri, LocalPath: `${PROCESSING_ROOT}/${name}`, S3UploadMode: 'EndOfJob' },
  };
}

function processingInput(name: string, uri: Expr) {
  return {
    InputName: name,
    AppManaged: false,
    S3Input: {
      S3Uri: uri,
      LocalPath: `${PROCESSING_ROOT}/${name}`,
      S3DataType: 'S3Prefix',
      S3InputMode: 'File',
      S3DataDistributionType: 'FullyReplicated',
    },
  };
}

export function pipelineDefinition(c: InfraConfig, r: PipelineRefs): PipelineDefinition {
  const mb = c.modelBuild;
  const resources = { ClusterConfig: { InstanceType: param('ProcessingInstanceType'), InstanceCount: 1, VolumeSizeInGB: 30 } };
  const snapshot: PipelineStep = {
    Name: 'Snapshot',
    Type: 'Processing',
    Description:
      "The loop's snapshot step: approved labels as of the run's verification (or the execution's start), split, YOLO layout; the champion's .pt for warm start",
    Arguments: {
      ProcessingResources: resources,
      AppSpecification: {
        ImageUri: r.cloudImage,
        ContainerEntrypoint: ['node', PROCESSING_SCRIPT, 'snapshot'],
        ContainerArguments: [
          '--run-id',
          param('LoopRun'),
          '--execution',
          get('Execution.PipelineExecutionId'),
          '--as-of',
          get('Execution.StartDateTime'),
        ],
      },
      RoleArn: r.jobRoleArn,
      Environment: r.environment,
      ProcessingOutputConfig: {
        Outputs: [
          processingOutput('dataset', executionUri(r.mlBucket, 'dataset')),
          processingOutput('base', executionUri(r.mlBucket, 'base')),
          processingOutput('report', executionUri(r.mlBucket, 'snapshot')),
        ],
      },
      StoppingCondition: { MaxRuntimeInSeconds: 3600 },
    },
    PropertyFiles: [{ PropertyFileName: 'SnapshotReport', OutputName: 'report', FilePath: PIPELINE_REPORT }],
  };

  // The request loupe's SageMaker trainer sends (one implementation of its shape), with the
  // job name left to the pipeline and the inputs and numbers taken from the pipeline.
  const req = trainingJobRequest(
    { data: 'data.yaml', base: 'base.pt', epochs: mb.epochs, imgsz: mb.imgsz, batch: mb.batch, patience: 50, seed: 0 },
    {
      bucket: r.mlBucket,
      roleArn: r.jobRoleArn,
      image: r.trainingImage,
      instanceType: mb.trainingInstanceType,
      maxRuntimeSeconds: mb.maxRuntimeSeconds,
    },
    'pipeline',
    { dataset: 'DATASET', base: 'BASE' },
  );
  const { TrainingJobName: _name, ...trainArgs } = req;
  const channels = (trainArgs.InputDataConfig ?? []).map((ch) => ({
    ...ch,
    DataSource: {
      S3DataSource: { ...ch.DataSource!.S3DataSource!, S3Uri: output('Snapshot', ch.ChannelName === 'dataset' ? 'dataset' : 'base') },
    },
  }));
  const train: PipelineStep = {
    Name: 'Train',
    Type: 'Training',
    Description: "train.py in loupe's training image (cloud/training/Dockerfile), warm start from the champion",
    Arguments: {
      ...trainArgs,
      HyperParameters: {
        ...trainArgs.HyperParameters,
        epochs: str(param('Epochs')),
        imgsz: str(param('ImageSize')),
        batch: str(param('Batch')),
      },
      InputDataConfig: channels,
      OutputDataConfig: { S3OutputPath: executionUri(r.mlBucket, 'training') },
      ResourceConfig: { ...trainArgs.ResourceConfig, InstanceType: param('TrainingInstanceType') },
    },
  };

  const evaluate: PipelineStep = {
    Name: 'Evaluate',
    Type: 'Processing',
    Description: "The loop's evaluate and gate steps: loupe's evaluator on the snapshot's test split, challenger and champion",
    Arguments: {
      ProcessingResources: resources,
      AppSpecification: {
        ImageUri: r.cloudImage,
        ContainerEntrypoint: ['node', PROCESSING_SCRIPT, 'evaluate'],
        ContainerArguments: [
          '--run-id',
          param('LoopRun'),
          '--training-job',
          get('Steps.Train.TrainingJobName'),
          '--model-artifacts',
          get('Steps.Train.ModelArtifacts.S3ModelArtifacts'),
          '--gate-metric',
          param('GateMetric'),
          '--gate-threshold',
          str(param('GateThreshold')),
          '--gate-tolerance',
          str(param('GateTolerance')),
        ],
      },
      RoleArn: r.jobRoleArn,
      Environment: r.environment,
      ProcessingInputs: [
        processingInput('model', get('Steps.Train.ModelArtifacts.S3ModelArtifacts')),
        processingInput('dataset', output('Snapshot', 'dataset')),
        processingInput('report', output('Snapshot', 'report')),
      ],
      ProcessingOutputConfig: { Outputs: [processingOutput('evaluation', executionUri(r.mlBucket, 'evaluation'))] },
      StoppingCondition: { MaxRuntimeInSeconds: 3600 },
    },
    PropertyFiles: [{ PropertyFileName: 'EvaluationReport', OutputName: 'evaluation', FilePath: PIPELINE_REPORT }],
  };

  const register = (name: string, expect: 'passed' | 'rejected'): PipelineStep => ({
    Name: name,
    Type: 'Lambda',
    Description:
      expect === 'passed'
        ? "The loop's register step: a model package, approval by ModelApprovalStatus"
        : "The loop's register step: the rejected challenger, kept with its gate report",
    FunctionArn: r.registerFunctionArn,
    Arguments: {
      runId: param('LoopRun'),
      evaluationUri: output('Evaluate', 'evaluation'),
      expect,
      approval: expect === 'passed' ? param('ModelApprovalStatus') : 'Rejected',
    },
    OutputParameters: [
      { OutputName: 'LocalRef', OutputType: 'String' },
      { OutputName: 'Status', OutputType: 'String' },
      { OutputName: 'ModelPackageArn', OutputType: 'String' },
    ],
  });

  const gate: PipelineStep = {
    Name: 'Gate',
    Type: 'Condition',
    Description: "The gate's decision (cloud/gate/decide.ts: at least the threshold, and at least the champion minus the tolerance)",
    Arguments: {
      Conditions: [{ Type: 'Equals', LeftValue: jsonGet('Evaluate', 'EvaluationReport', 'gate.passed'), RightValue: true }],
      IfSteps: [register('RegisterModel', 'passed')],
      ElseSteps: [register('RegisterRejected', 'rejected')],
    },
  };

  const hasNewLabels: PipelineStep = {
    Name: 'HasNewLabels',
    Type: 'Condition',
    Description: 'Train only when the snapshot holds approved labels the champion was not trained on (the loop halts otherwise)',
    Arguments: {
      Conditions: [{ Type: 'Equals', LeftValue: jsonGet('Snapshot', 'SnapshotReport', 'newLabels'), RightValue: true }],
      IfSteps: [train, evaluate, gate],
      ElseSteps: [],
    },
  };

  return {
    Version: '2020-12-01',
    Metadata: { generator: 'loupe cloud/infra/pipeline.ts' },
    Parameters: [
      { Name: 'LoopRun', Type: 'String', DefaultValue: '0' },
      { Name: 'Epochs', Type: 'Integer', DefaultValue: mb.epochs },
      { Name: 'ImageSize', Type: 'Integer', DefaultValue: mb.imgsz },
      { Name: 'Batch', Type: 'Integer', DefaultValue: mb.batch },
      { Name: 'TrainingInstanceType', Type: 'String', DefaultValue: mb.trainingInstanceType },
      { Name: 'ProcessingInstanceType', Type: 'String', DefaultValue: mb.processingInstanceType },
      { Name: 'GateMetric', Type: 'String', DefaultValue: mb.gate.metric },
      { Name: 'GateThreshold', Type: 'Float', DefaultValue: mb.gate.threshold },
      { Name: 'GateTolerance', Type: 'Float', DefaultValue: mb.gate.tolerance },
      { Name: 'ModelApprovalStatus', Type: 'String', DefaultValue: mb.approval === 'auto' ? 'Approved' : 'PendingManualApproval' },
    ],
    Steps: [snapshot, hasNewLabels],
  };
}
