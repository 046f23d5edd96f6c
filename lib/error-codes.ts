/**
 * Every code a LoupeError carries, with what it means. The code is the stable, testable part of
 * an error: the CLI's JSON output, tests and users match on it, so a code is never renamed once
 * shipped. `test/architecture/error-codes.test.ts` fails on a thrown code missing here and on an
 * entry nothing throws any more.
 *
 * Naming: new codes are UPPER_SNAKE, starting with their area's word (CLI_, MODEL_, LABEL_,
 * REGISTRY_, ...), e.g. `MODEL_NOT_ONNX`. The dotted lower-case codes below (`ipc.call`,
 * `objectstore.keys`) are older names, kept as they are because renaming them would break the
 * error contracts callers match on; LEGACY_DOTTED_CODES lists them and no new one may join.
 *
 * Codes thrown by the Python side (train.py, quantize.py: `LOUPE_ERROR {"code": ...}` lines) are
 * here too: the TypeScript drivers re-raise them as LoupeErrors with the same code.
 * `area` is the folder that mostly throws the code; several areas share some (DATA_MISSING).
 */
export interface ErrorCodeInfo {
  /** The folder that throws it (most often, where several do). */
  area: string;
  /** What went wrong, in a few words: when the code is raised. */
  meaning: string;
}

export const ERROR_CODES = {
  // cli
  BAD_FORMAT: { area: 'cli', meaning: 'a data set import or export format that loupe does not know' },
  BAD_OPTION: { area: 'cli', meaning: 'a command-line or trainer option outside its allowed values' },
  CARD_BAD_METRICS: { area: 'cli', meaning: "the training run's metrics file is not valid JSON" },
  CARD_NO_METRICS: { area: 'cli', meaning: 'the training run folder holds no train.py metrics file' },
  CARD_NO_MODEL: { area: 'cli', meaning: 'the training run folder holds no model.onnx to describe' },
  CLI_BAD_NUMBER: { area: 'cli', meaning: 'a numeric option is not a number in its allowed range' },
  CLI_BAD_OPTION: { area: 'cli', meaning: 'options that contradict each other or miss a companion (detect --save, nucleus log size)' },
  CLI_BAD_STATUS: { area: 'cli', meaning: 'a model status filter that is not pending, approved or rejected' },
  CLI_DIR: { area: 'cli', meaning: 'a folder given on the command line does not exist' },
  CLI_EMPTY_DEPLOYMENT: { area: 'cli', meaning: 'a local deployment with nothing to merge, remove or reconfigure' },
  CLI_FILTER: { area: 'cli', meaning: 'a nucleus log filter that is neither key=value nor a valid regular expression' },
  CLI_FORMAT: { area: 'cli', meaning: 'a nucleus log format that is not human or raw' },
  CLI_MERGE: { area: 'cli', meaning: 'a --merge value that is not NAME=VERSION' },
  CLI_MODULE_BROKEN: { area: 'cli', meaning: 'a CLI command module failed to load (a broken build or missing dependency)' },
  CLI_NAME: { area: 'cli', meaning: 'a component name that is not valid' },
  CLI_NO_FILE: { area: 'cli', meaning: 'a file named on the command line (a gate report) does not exist' },
  CLI_POLICY: { area: 'cli', meaning: 'a deployment failure-handling policy other than ROLLBACK or DO_NOTHING' },
  CLI_REASON: { area: 'cli', meaning: 'rejecting a model version without giving a reason' },
  CLI_ROOT: { area: 'cli', meaning: 'a nucleus command without a root folder' },
  CLI_TAIL: { area: 'cli', meaning: 'a log --tail that is not a whole number' },
  CLI_TIMEOUT: { area: 'cli', meaning: 'a timeout that is not a positive number of seconds' },
  CLI_UPDATE_CONFIG: { area: 'cli', meaning: 'a --update-config value that is not the expected MERGE/RESET JSON' },
  'cli.component': { area: 'cli', meaning: 'loupe build was given an unknown component name' },
  'cli.number': { area: 'cli', meaning: 'a numeric option of loupe edge is not a positive number' },
  'cli.platform': { area: 'cli', meaning: 'loupe build was given a platform other than linux-x64 or linux-arm64' },
  'cli.timeout': { area: 'cli', meaning: 'loupe publish was given a timeout that is not a positive number of seconds' },
  CONSOLE_NO_TOKEN: { area: 'cli', meaning: 'the operator console has no credential (LOUPE_CONSOLE_TOKEN or its 0600 file)' },
  CONSOLE_TOKEN_ARG: { area: 'cli', meaning: 'a console credential given on the command line, where ps and shell history show it' },
  CONSOLE_TOKEN_FILE_OPEN: { area: 'cli', meaning: 'the console credential file is readable by others (not mode 0600)' },
  DEMO_INTERRUPTED: { area: 'cli', meaning: 'the demo was stopped by a signal' },
  DEMO_NO_CHAMPION: { area: 'cli', meaning: "the demo's starting champion model is missing from the checkout" },
  DEMO_NO_DATA: { area: 'cli', meaning: 'the shipped metal-tags data set is missing from the checkout' },
  DEMO_NO_UPLOADS: { area: 'cli', meaning: "the demo's edge uploaded no image within its wait limit" },
  EVAL_BAD_SPLIT: { area: 'cli', meaning: 'loupe eval was given a split other than train, val or test' },
  FLEET_NOT_APPROVED: { area: 'cli', meaning: 'deploying a model version that is not approved' },
  IMAGE_NONE: { area: 'cli', meaning: 'a folder given to detect holds no images or videos' },
  INFRA_CDK_FAILED: { area: 'cli', meaning: 'the AWS CDK CLI exited with a failure status' },
  LABEL_NO_WORKERS: { area: 'cli', meaning: 'the labelling server has no worker credential to accept' },
  LABEL_SHARED_TOKEN: { area: 'cli', meaning: 'a shared labelling token was asked for; each worker needs their own credential' },
  LABEL_UNKNOWN: { area: 'cli', meaning: 'the label store holds no records for the image asked about' },
  LOOP_NO_FLEET: { area: 'cli', meaning: 'a fleet command or step but the loop configuration has no fleet section' },
  LOOP_NO_RUN: { area: 'cli', meaning: 'a loop run id that does not exist (locally or in the S3 loop home)' },
  LOOP_NO_STATE: { area: 'cli', meaning: 'no loop has run in this loop home yet' },
  NO_LOG: { area: 'cli', meaning: 'the component has no log file under the nucleus root' },
  REGISTRY_GATE_MISMATCH: { area: 'cli', meaning: 'the gate report scored a different model than the ONNX being registered' },
  SETUP_COMMAND_FAILED: { area: 'cli', meaning: 'a command run by loupe setup failed or could not start' },
  SETUP_GDK_WHEEL: { area: 'cli', meaning: 'the GDK CLI wheel expected in ../shared/tools is not there' },
  SETUP_INCOMPLETE: { area: 'cli', meaning: 'system setup finished but packages or users are still missing' },
  SETUP_NEEDS_ROOT: { area: 'cli', meaning: 'system setup needs root and neither root nor password-less sudo is available' },
  SETUP_NOT_DEBIAN: { area: 'cli', meaning: 'system setup can install packages only on Debian (dpkg/apt)' },

  // cloud/console
  CONSOLE_MQTT: { area: 'cloud/console', meaning: 'the operator console cannot reach the MQTT broker in time' },
  CONSOLE_WEAK_TOKEN: { area: 'cloud/console', meaning: 'a console credential shorter than 16 characters' },

  // cloud/dataset
  DATA_BAD_ID: { area: 'cloud/dataset', meaning: 'an image id in a data set that is not a relative path' },
  DATA_BAD_NAMES: { area: 'cloud/dataset', meaning: 'a data.yaml `names` entry that is missing or not 0..n-1' },
  DATA_BAD_YAML: { area: 'cloud/dataset', meaning: 'a data.yaml that is not valid YAML' },
  DATA_DUPLICATE_ID: { area: 'cloud/dataset', meaning: 'two images in a data set with the same id' },
  DATA_MISSING: {
    area: 'cloud/dataset',
    meaning: 'a data set file or folder (data.yaml, COCO JSON, VOC folder, manifest, CSV) does not exist',
  },
  IDS_BAD: { area: 'cloud/dataset', meaning: 'an image id list that is not valid JSON or holds entries that are not image ids' },
  IDS_MISSING: { area: 'cloud/dataset', meaning: 'an image id list file that does not exist' },
  IMAGE_MISSING: { area: 'cloud/dataset', meaning: 'an image file (or the file or folder given to detect) does not exist' },
  LABEL_AMBIGUOUS_ATTRIBUTE: {
    area: 'cloud/dataset',
    meaning: 'a Ground Truth manifest with several bounding-box label attributes and none chosen',
  },
  LABEL_BAD_BOX: {
    area: 'cloud/dataset',
    meaning: 'a label box that is malformed: not numbers, unknown class, outside the image or without area',
  },
  LABEL_BAD_COCO: { area: 'cloud/dataset', meaning: 'a COCO annotation file with a malformed record' },
  LABEL_BAD_FIELD: { area: 'cloud/dataset', meaning: 'a Ground Truth manifest line with a missing or malformed field' },
  LABEL_BAD_JSON: { area: 'cloud/dataset', meaning: 'a Ground Truth manifest line that is not a JSON object' },
  LABEL_BAD_LABELSTUDIO: { area: 'cloud/dataset', meaning: 'a Label Studio export with a malformed task or annotation' },
  LABEL_BAD_LINE: { area: 'cloud/dataset', meaning: 'a YOLO label line that is not `cls cx cy w h`' },
  LABEL_BAD_OBJECT: { area: 'cloud/dataset', meaning: 'a Pascal VOC <object> without <name> or <bndbox>' },
  LABEL_BAD_XML: { area: 'cloud/dataset', meaning: 'a Pascal VOC file that is not valid XML or has no <annotation>' },
  LABEL_CLASS_CONFLICT: { area: 'cloud/dataset', meaning: 'two Ground Truth manifest lines map one class id to different names' },
  LABEL_NO_ATTRIBUTE: { area: 'cloud/dataset', meaning: 'a Ground Truth manifest with no bounding-box label attribute on any line' },
  LABEL_OUTSIDE_IMAGE: { area: 'cloud/dataset', meaning: 'a YOLO label whose normalised coordinates fall outside 0..1' },
  LABEL_ROTATED: { area: 'cloud/dataset', meaning: 'a rotated Label Studio box or image; loupe boxes are axis-aligned' },
  LABEL_SIZE_MISMATCH: { area: 'cloud/dataset', meaning: "an annotation's recorded image size differs from the image file's real size" },
  LABEL_UNKNOWN_CLASS: { area: 'cloud/dataset', meaning: "a label's class id is not one of the data set's classes" },
  LABEL_UNSUPPORTED: { area: 'cloud/dataset', meaning: 'a Label Studio region that is not a labelled rectangle' },
  LABEL_ZERO_AREA: { area: 'cloud/dataset', meaning: 'a label box with zero or negative area (before or after clipping to the image)' },
  OUT_EXISTS: { area: 'cloud/dataset', meaning: 'the output folder already holds something loupe would overwrite' },

  // cloud/evaluation
  DATA_EMPTY_SPLIT: { area: 'cloud/evaluation', meaning: 'the data set split to evaluate has no images' },
  DATA_NO_SPLIT: { area: 'cloud/evaluation', meaning: 'the data set has no split of the requested name' },
  EVAL_CLASS_MISMATCH: { area: 'cloud/evaluation', meaning: 'the data set and the model name different classes' },
  LABEL_BAD_CLASS: { area: 'cloud/evaluation', meaning: "a YOLO label's class id is outside the data set's classes (evaluation)" },
  LABEL_OUT_OF_RANGE: { area: 'cloud/evaluation', meaning: 'a YOLO label coordinate that is not normalised to 0..1 (evaluation)' },

  // cloud/gate
  GATE_BAD_CONFIG: { area: 'cloud/gate', meaning: 'a gate setting (metric, threshold, tolerance, split) outside its allowed values' },

  // cloud/infra
  INFRA_BAD_CONFIG: { area: 'cloud/infra', meaning: 'the AWS infrastructure configuration is not valid JSON or fails its schema' },
  INFRA_BAD_ENV: { area: 'cloud/infra', meaning: 'a CDK environment that is not aws://<account>/<region>' },
  INFRA_BAD_IMAGE: { area: 'cloud/infra', meaning: 'a container image reference that is not an ECR URI with a tag or digest' },
  INFRA_NAG: { area: 'cloud/infra', meaning: 'cdk-nag found unacknowledged AwsSolutions findings in the synthesised app' },
  INFRA_NO_CDK: { area: 'cloud/infra', meaning: 'the CDK CLI or CDK libraries (development dependencies) are not installed' },
  INFRA_NO_CONFIG: { area: 'cloud/infra', meaning: 'the AWS infrastructure configuration file does not exist' },

  // cloud/ingest
  INGEST_BAD_STATE: { area: 'cloud/ingest', meaning: 'the ingest state file (what was already scanned) cannot be read' },

  // cloud/labeling
  GT_EMPTY_JOB: { area: 'cloud/labeling', meaning: 'a Ground Truth labelling job with no images' },
  GT_NO_OUTPUT: { area: 'cloud/labeling', meaning: 'a finished Ground Truth job that reports no output manifest' },
  GT_NOT_DONE: { area: 'cloud/labeling', meaning: "reading a Ground Truth job's output before it has completed" },
  GT_REGION: { area: 'cloud/labeling', meaning: "Ground Truth's built-in task Lambdas are not known for this region" },
  GT_UNKNOWN_CLASS: { area: 'cloud/labeling', meaning: 'a Ground Truth annotation names a class that is not in the job' },
  IMAGE_BAD_REF: { area: 'cloud/labeling', meaning: 'an image reference that is not a valid s3:// URI or maps outside its folder' },
  IMAGE_FETCH: { area: 'cloud/labeling', meaning: 'fetching an image from S3 failed' },
  IMAGE_NO_SOURCE: { area: 'cloud/labeling', meaning: 'an s3:// image to fetch but no S3 client configured' },
  LABEL_BAD_WORKER: { area: 'cloud/labeling', meaning: 'a labelling submission without a worker id' },
  LABEL_CONSOLIDATE: { area: 'cloud/labeling', meaning: "consolidating workers' labels failed in the consolidation thread" },
  LABEL_DONE: { area: 'cloud/labeling', meaning: 'submitting labels for an image that already has all its labels' },
  LABEL_DUPLICATE: { area: 'cloud/labeling', meaning: 'a worker submitting a second label for the same image' },
  LABEL_NOT_AVAILABLE: {
    area: 'cloud/labeling',
    meaning: 'an image that cannot be handed out or changed: fully labelled or held by other workers',
  },
  LABEL_TOO_MANY_BOXES: { area: 'cloud/labeling', meaning: 'a submission with more boxes than the job allows per image' },
  LABELING_BAD_JOB: { area: 'cloud/labeling', meaning: 'a labelling job specification outside its allowed values' },
  LABELING_NO_DB: { area: 'cloud/labeling', meaning: 'the label store is not SQLite and no labelling database path was given' },
  LABELING_NO_ITEM: { area: 'cloud/labeling', meaning: 'an image that is not part of the labelling job' },
  LABELING_NO_JOB: { area: 'cloud/labeling', meaning: 'a labelling job id that does not exist' },
  LABELING_NO_WORKER: { area: 'cloud/labeling', meaning: 'the consolidation worker script is not built' },
  LABELING_RELEASE: { area: 'cloud/labeling', meaning: 'releasing an image back to the queue after it already has labels' },
  UNAUTHENTICATED: { area: 'cloud/labeling', meaning: 'an unknown or revoked labelling worker credential' },
  VERIFY_BAD: { area: 'cloud/labeling', meaning: 'a verification verdict that is malformed (verdict, verifier id, reason length)' },
  VERIFY_DONE: { area: 'cloud/labeling', meaning: 'verifying an image that was already verified' },
  VERIFY_NO_REASON: { area: 'cloud/labeling', meaning: 'rejecting labels without a reason' },
  VERIFY_NOT_READY: { area: 'cloud/labeling', meaning: 'verifying an image that has not been labelled yet' },
  VERIFY_OWN_LABEL: { area: 'cloud/labeling', meaning: 'a verifier verifying labels they made themselves' },
  WORKER_BAD_ID: { area: 'cloud/labeling', meaning: 'a labelling worker id with characters or length outside the allowed form' },
  WORKER_BAD_ROLE: { area: 'cloud/labeling', meaning: 'a labelling worker with no role or an unknown role' },
  WORKER_EXISTS: { area: 'cloud/labeling', meaning: 'adding a labelling worker who already has a credential' },
  WORKER_FORBIDDEN: { area: 'cloud/labeling', meaning: 'a labelling worker acting outside their roles' },
  WORKER_UNKNOWN: { area: 'cloud/labeling', meaning: 'a labelling worker id that does not exist' },

  // cloud/labelstore
  FEATURESTORE_CONFIG: { area: 'cloud/labelstore', meaning: 'creating a feature group without offlineStoreS3Uri and roleArn' },
  FEATURESTORE_MISSING: { area: 'cloud/labelstore', meaning: 'the SageMaker feature group does not exist' },
  FEATURESTORE_NO_OFFLINE: { area: 'cloud/labelstore', meaning: 'the feature group has no offline store (Glue table) to query' },
  FEATURESTORE_QUERY: { area: 'cloud/labelstore', meaning: 'the Athena query over the offline store failed or was cancelled' },
  FEATURESTORE_STATUS: {
    area: 'cloud/labelstore',
    meaning: 'the feature group is in a state that cannot take records (e.g. CreateFailed, Deleting)',
  },
  FEATURESTORE_TIMEOUT: { area: 'cloud/labelstore', meaning: 'the feature group or its Athena query did not finish within the wait limit' },

  // cloud/loop
  BENCHMARK_EMPTY: { area: 'cloud/loop', meaning: 'the held-out benchmark set names no images' },
  BENCHMARK_MISSING: { area: 'cloud/loop', meaning: 'a benchmark image has no approved label with an image on disk' },
  BENCHMARK_SPLIT: { area: 'cloud/loop', meaning: "a benchmark image that loupe's split rule puts outside the test split" },
  FLEET_NOT_CONFIRMED: { area: 'cloud/loop', meaning: 'devices did not report running the deployed model within the wait limit' },
  GT_FAILED: { area: 'cloud/loop', meaning: 'a Ground Truth labelling or verification job failed' },
  LOOP_BAD_CONFIG: { area: 'cloud/loop', meaning: 'the loop configuration is not valid JSON or fails its schema' },
  LOOP_BAD_STEPS: { area: 'cloud/loop', meaning: 'a loop defined with repeated step names' },
  LOOP_BUSY: { area: 'cloud/loop', meaning: "another loop run holds the loop home's lock" },
  LOOP_CONFIG: { area: 'cloud/loop', meaning: "a loop configuration that picks a backend without that backend's section" },
  LOOP_NO_CHAMPION: { area: 'cloud/loop', meaning: 'the registry has no approved model for the loop to start from' },
  LOOP_NO_CONFIG: { area: 'cloud/loop', meaning: 'the loop configuration file does not exist' },
  LOOP_NOT_UNFINISHED: { area: 'cloud/loop', meaning: 'abandoning a loop run that is not unfinished' },
  LOOP_OUTPUT_INVALID: { area: 'cloud/loop', meaning: "a loop step's output (returned or stored) that does not match its schema" },
  LOOP_STEP_INPUT: { area: 'cloud/loop', meaning: 'a loop step run before a step whose output it needs is done' },
  LOOP_STORAGE_KEYS: { area: 'cloud/loop', meaning: 'the loop uses the embedded object store but has no key pair for it' },
  LOOP_UNFINISHED: { area: 'cloud/loop', meaning: 'starting a loop run while an earlier one is unfinished' },
  REGISTRY_NOT_APPROVED: { area: 'cloud/loop', meaning: 'a model version or package that is not approved where approval is required' },
  REGISTRY_UNKNOWN_PACKAGE: { area: 'cloud/loop', meaning: 'a SageMaker model package that no local registry version mirrors' },
  SAGEMAKER_TOO_MANY_JOBS: { area: 'cloud/loop', meaning: "this loop run's SageMaker training jobs failed or stopped as often as allowed" },

  // cloud/publish
  FLEET_BAD_TARGET: { area: 'cloud/publish', meaning: 'a Greengrass deployment target that is not a thing group ARN' },
  FLEET_NO_COMPONENT: { area: 'cloud/publish', meaning: "the fleet's deployment or account lacks the component to update" },
  FLEET_NO_DEPLOYMENT: { area: 'cloud/publish', meaning: 'the fleet has no deployment yet to update (deploy the suite first)' },
  FLEET_NOTHING_TO_DEPLOY: { area: 'cloud/publish', meaning: 'the fleet already runs the versions asked for' },
  FLEET_NOTHING_TO_ROLL_BACK: { area: 'cloud/publish', meaning: 'no earlier model version to roll the fleet back to' },
  FLEET_UNKNOWN_VERSION: { area: 'cloud/publish', meaning: 'a model component version the fleet does not have' },
  FLEET_WAIT_ABORTED: { area: 'cloud/publish', meaning: 'waiting for devices to confirm a model was interrupted' },
  GREENGRASS_NO_DEPLOYMENT: { area: 'cloud/publish', meaning: 'Greengrass CreateDeployment returned no deployment id' },
  PUBLISH_DIGEST: { area: 'cloud/publish', meaning: 'the ONNX file given does not match the registry version being published' },
  RECIPE_BAD: { area: 'cloud/publish', meaning: 'the loupe.Model recipe cannot be read or is not the loupe.Model recipe' },
  RECIPE_MISSING: { area: 'cloud/publish', meaning: 'the loupe.Model recipe file does not exist' },
  TELEMETRY_CONNECT: { area: 'cloud/publish', meaning: 'the MQTT broker for device telemetry cannot be reached in time' },

  // cloud/quantize
  QUANTIZE_ALREADY_INT8: { area: 'cloud/quantize', meaning: 'quantizing a model that is already quantized' },
  QUANTIZE_BAD_CALIB: { area: 'cloud/quantize', meaning: 'a calibration source that is missing or neither data.yaml nor an image folder' },
  QUANTIZE_BAD_MODEL: { area: 'cloud/quantize', meaning: 'a model export quantize cannot take (float16 or nms=True)' },
  QUANTIZE_BAD_OPTION: { area: 'cloud/quantize', meaning: 'a quantize option outside its allowed values' },
  QUANTIZE_BAD_OUT: { area: 'cloud/quantize', meaning: 'a quantize output path that would overwrite the input model' },
  QUANTIZE_FAILED: { area: 'cloud/quantize', meaning: 'quantize.py failed, or wrote a model that is not quantized or does not load' },
  QUANTIZE_NO_IMAGES: { area: 'cloud/quantize', meaning: 'no calibration images to quantize with' },
  QUANTIZE_UNKNOWN_GRAPH: {
    area: 'cloud/quantize',
    meaning: 'quantize.py cannot find ultralytics module names (the detection head) in the graph',
  },

  // cloud/registry
  ARTEFACT_CORRUPT: { area: 'cloud/registry', meaning: 'a stored registry artefact whose bytes no longer match its digest' },
  ARTEFACT_MISSING: { area: 'cloud/registry', meaning: "a model artefact file (or a registry version's artefact) does not exist" },
  REGISTRY_BAD_CARD: { area: 'cloud/registry', meaning: 'a model card in the registry that is not valid JSON' },
  REGISTRY_BAD_CHECKPOINT: { area: 'cloud/registry', meaning: 'a checkpoint given to the registry that is not a PyTorch checkpoint' },
  REGISTRY_BAD_GROUP: { area: 'cloud/registry', meaning: 'a model group name outside 1-63 letters, digits and hyphens' },
  REGISTRY_BAD_KEY: { area: 'cloud/registry', meaning: 'a registry lookup by an empty idempotency key or an invalid createdAfter time' },
  REGISTRY_BAD_METRIC: { area: 'cloud/registry', meaning: 'a registered metric that is not a finite number' },
  REGISTRY_BAD_MODEL: {
    area: 'cloud/registry',
    meaning: 'a model given to the registry that loupe cannot run, or an int8 model that does not match its fp32 model',
  },
  REGISTRY_BAD_PRECISION: {
    area: 'cloud/registry',
    meaning: 'a fleet precision other than fp32 or int8, or int8 without an int8 artefact',
  },
  REGISTRY_BAD_REF: { area: 'cloud/registry', meaning: 'a model version reference that is not <group>:<version>' },
  REGISTRY_BAD_STATUS: { area: 'cloud/registry', meaning: 'a status change the approval policy does not allow' },
  REGISTRY_CARD_MISMATCH: { area: 'cloud/registry', meaning: 'a model card that describes another model (digest, classes or task)' },
  REGISTRY_FORCE_REASON: { area: 'cloud/registry', meaning: 'a forced approval without a reason' },
  REGISTRY_NO_GATE: { area: 'cloud/registry', meaning: 'approving a version that has no passing gate result' },
  REGISTRY_NO_PARENT: { area: 'cloud/registry', meaning: 'a model version whose parent is not in the registry' },
  REGISTRY_NOT_FOUND: { area: 'cloud/registry', meaning: 'a model version that is not in the registry' },
  SAGEMAKER_GROUP_REQUIRED: { area: 'cloud/registry', meaning: 'listing SageMaker model packages without naming a group' },
  SAGEMAKER_NO_ARN: { area: 'cloud/registry', meaning: 'SageMaker returned no ARN for a created model package or group' },
  SAGEMAKER_NOT_LOUPE: { area: 'cloud/registry', meaning: 'a SageMaker model package that loupe did not register' },
  SEED_MISSING: { area: 'cloud/registry', meaning: 'the shipped seed model has no model.onnx' },

  // cloud/serverless
  CLOUD_BAD_CONFIG: { area: 'cloud/serverless', meaning: 'the loop configuration given to a cloud handler is not valid JSON' },
  CLOUD_NO_CONFIG: { area: 'cloud/serverless', meaning: 'a cloud handler runs without the loop configuration set' },
  CLOUD_NO_HOME: { area: 'cloud/serverless', meaning: 'a cloud handler runs without the S3 loop home set' },
  DEPLOY_BAD_EVENT: { area: 'cloud/serverless', meaning: 'a deploy event without a model package or deployment id' },
  DEPLOY_NO_REGISTRY: { area: 'cloud/serverless', meaning: 'the deploy flow runs without the SageMaker registry backend' },
  PIPELINE_BAD_ARG: { area: 'cloud/serverless', meaning: 'a SageMaker Pipelines step argument outside its allowed values' },
  PIPELINE_BAD_TIME: { area: 'cloud/serverless', meaning: 'a pipeline time argument that is not ISO 8601' },
  PIPELINE_GATE_MISMATCH: { area: 'cloud/serverless', meaning: "the pipeline took a gate branch that the gate's own report contradicts" },
  PIPELINE_NO_EVALUATION: { area: 'cloud/serverless', meaning: "the evaluation step's output holds no steps.json" },
  PIPELINE_NO_MODEL: { area: 'cloud/serverless', meaning: 'the training step left no model.tar.gz' },
  S3_BAD_KEY: { area: 'cloud/serverless', meaning: 'an S3 key under a prefix that is not a plain relative path' },
  S3_BAD_URI: { area: 'cloud/serverless', meaning: 'an S3 location that is not s3://bucket/prefix' },
  STATE_BAD_URI: { area: 'cloud/serverless', meaning: 'the S3 loop home is not s3://bucket/prefix/' },
  STATE_CONFLICT: { area: 'cloud/serverless', meaning: 'another invocation changed the S3 loop home since this one read it' },
  STATE_NO_ARTEFACT: { area: 'cloud/serverless', meaning: 'the registry names an artefact the S3 loop home does not hold' },
  TRIGGER_CONFIG: { area: 'cloud/serverless', meaning: "the upload trigger's environment settings are missing or invalid" },

  // cloud/snapshot
  SNAPSHOT_BAD_BOX: { area: 'cloud/snapshot', meaning: 'a snapshot label box with no area inside its image' },
  SNAPSHOT_BAD_CLASS: { area: 'cloud/snapshot', meaning: "a snapshot label box whose class is not one of the snapshot's classes" },
  SNAPSHOT_BAD_TIME: { area: 'cloud/snapshot', meaning: 'a snapshot time that is not epoch seconds' },
  SNAPSHOT_DUPLICATE_ID: { area: 'cloud/snapshot', meaning: 'two images that map to one snapshot image id' },
  SNAPSHOT_EMPTY: { area: 'cloud/snapshot', meaning: 'no approved labels as of the snapshot time' },
  SNAPSHOT_MISSING: { area: 'cloud/snapshot', meaning: 'the folder holds no snapshot.json' },
  SNAPSHOT_NO_CLASSES: { area: 'cloud/snapshot', meaning: 'a snapshot without class names' },

  // cloud/training
  BAD_HYPERPARAMETER: { area: 'cloud/training', meaning: 'a trainer hyperparameter that would have no effect (train.py)' },
  BASE_UNKNOWN: { area: 'cloud/training', meaning: 'a base model that is not a known YAML or an existing local checkpoint' },
  BASE_UNREADABLE: { area: 'cloud/training', meaning: 'a base checkpoint train.py cannot load as a YOLO model' },
  BASE_WRONG_TASK: { area: 'cloud/training', meaning: 'a base checkpoint for a task other than detection' },
  CLASS_MISMATCH: { area: 'cloud/training', meaning: "a base checkpoint whose classes differ from the data set's (train.py)" },
  DATA_DUPLICATE_FILE: { area: 'cloud/training', meaning: 'two images of one split with the same file name (SageMaker channel)' },
  DATA_EMPTY: { area: 'cloud/training', meaning: 'a data set or split with no images to use' },
  DATA_NO_LABELS: { area: 'cloud/training', meaning: 'a train split with images but no labelled boxes' },
  DATA_NO_NAMES: { area: 'cloud/training', meaning: 'a data set without class names' },
  PYTHON_MISSING: { area: 'cloud/training', meaning: "the trainer venv's python (or a system python) cannot be run" },
  SAGEMAKER_BAD_ARTIFACT: {
    area: 'cloud/training',
    meaning: "a SageMaker training job's model artefact is missing, not an s3:// URI or incomplete",
  },
  SAGEMAKER_FAILED: { area: 'cloud/training', meaning: 'a SageMaker training job failed for a reason that is not a train.py refusal' },
  TRAIN_FAILED: { area: 'cloud/training', meaning: 'train.py exited with a failure status or was killed' },
  TRAIN_INTERRUPTED: { area: 'cloud/training', meaning: 'training was interrupted or the training job was stopped' },
  VENV_BROKEN: { area: 'cloud/training', meaning: 'the venv named by an environment variable is not a ready loupe venv' },
  VENV_FAILED: { area: 'cloud/training', meaning: 'creating or filling the Python venv failed' },

  // cloud/visualize
  VIDEO_NO_FFMPEG: { area: 'cloud/visualize', meaning: 'ffprobe/ffmpeg cannot be run' },
  VIDEO_UNREADABLE: { area: 'cloud/visualize', meaning: 'a video with no readable video stream, or ffmpeg failed decoding it' },

  // components/build
  'build.deps': { area: 'components/build', meaning: 'a package the component bundle needs is not installed' },
  'build.fetch': { area: 'components/build', meaning: 'a package could not be fetched from the npm registry for a component bundle' },
  'build.model': { area: 'components/build', meaning: 'the model folder given to loupe build lacks model.onnx or card.json' },
  'build.recipe': { area: 'components/build', meaning: 'a recipe names an artefact that was not built' },
  'build.trace': { area: 'components/build', meaning: 'compiled files the component bundle traces are missing (run the TypeScript build)' },
  GREENGRASS_COMPONENT_FAILED: { area: 'components/build', meaning: 'Greengrass reports a published component version as failed' },
  GREENGRASS_COMPONENT_TIMEOUT: { area: 'components/build', meaning: 'a published component version did not become DEPLOYABLE in time' },
  'publish.bucket': { area: 'components/build', meaning: 'an S3 bucket name that is not valid' },
  'publish.build': { area: 'components/build', meaning: 'publishing a build folder that has no recipes/' },
  'publish.create': { area: 'components/build', meaning: 'Greengrass CreateComponentVersion failed or returned no ARN' },
  'publish.none': { area: 'components/build', meaning: 'no component recipes to publish' },
  'publish.upload': { area: 'components/build', meaning: 'uploading a component artefact to S3 failed' },
  'recipe.invalid': { area: 'components/build', meaning: 'a built recipe that is not a valid Greengrass v2 recipe' },
  'recipe.model': { area: 'components/build', meaning: 'a loupe.Model recipe without the model name and SHA-256' },
  'recipe.read': { area: 'components/build', meaning: 'a source recipe that cannot be read' },

  // components/camera
  'camera.closed': { area: 'components/camera', meaning: 'reading a frame from a camera source that was closed' },
  'camera.folder': { area: 'components/camera', meaning: 'a folder camera source that is unreadable or holds no images' },
  'camera.process': {
    area: 'components/camera',
    meaning: 'a process camera source (ffmpeg, command) that cannot start, exited, or is not open',
  },
  'camera.snapshot': { area: 'components/camera', meaning: 'an HTTP snapshot camera request that failed or returned no JPEG' },
  'camera.timeout': { area: 'components/camera', meaning: 'a camera source that produced no frame within its timeout' },

  // components/detector
  DETECT_BAD_OPTION: { area: 'components/detector', meaning: 'a detector option outside its allowed values' },
  DETECTOR_DISPOSED: { area: 'components/detector', meaning: 'using a detector after it was disposed' },
  IMAGE_UNREADABLE: { area: 'components/detector', meaning: 'an image file that cannot be read or decoded' },
  INFERENCE_FAILED: { area: 'components/detector', meaning: 'onnxruntime failed running the model' },
  MODEL_BAD_IMGSZ: { area: 'components/detector', meaning: 'an image size that is not a positive integer or [h, w]' },
  MODEL_BAD_INPUT: { area: 'components/detector', meaning: 'a model input that is not float32/float16 [batch, 3, height, width]' },
  MODEL_BAD_METADATA: { area: 'components/detector', meaning: 'model metadata with a malformed value (stride)' },
  MODEL_BAD_NAMES: { area: 'components/detector', meaning: "class names that are empty or do not match the model's classes" },
  MODEL_BAD_OUTPUT: { area: 'components/detector', meaning: 'a model whose graph inputs/outputs do not match what its metadata declares' },
  MODEL_CLASS_MISMATCH: { area: 'components/detector', meaning: 'a model output with a different number of class rows than class names' },
  MODEL_IMGSZ_MISMATCH: { area: 'components/detector', meaning: "an --imgsz that does not fit the model's fixed input size" },
  MODEL_LOAD_FAILED: { area: 'components/detector', meaning: 'onnxruntime could not load the model' },
  MODEL_MISSING: { area: 'components/detector', meaning: 'the model file does not exist' },
  MODEL_NO_METADATA: {
    area: 'components/detector',
    meaning: 'a model without the imgsz or names metadata loupe needs, and no override given',
  },
  MODEL_NOT_DETECT: { area: 'components/detector', meaning: 'a model for a task other than detection' },
  MODEL_NOT_ONNX: { area: 'components/detector', meaning: 'a file that is not an ONNX model' },
  MODEL_UNREADABLE: { area: 'components/detector', meaning: 'the model file exists but cannot be read' },

  // components/inference
  'model.digest': { area: 'components/inference', meaning: "a model file whose SHA-256 does not match its deployment's" },
  'model.none': { area: 'components/inference', meaning: 'inference asked for before any model was loaded' },
  'model.read': { area: 'components/inference', meaning: 'the deployed model file cannot be read' },

  // components/ipc
  'config.invalid': { area: 'components/ipc', meaning: "a component's configuration from the nucleus fails validation" },
  'ipc.call': { area: 'components/ipc', meaning: 'a Greengrass IPC request failed' },
  'ipc.connect': { area: 'components/ipc', meaning: 'the component cannot connect to the nucleus IPC socket' },
  'ipc.disconnected': { area: 'components/ipc', meaning: 'an IPC request while the connection to the nucleus is down' },
  'ipc.env': { area: 'components/ipc', meaning: 'a component started outside a Greengrass nucleus (no IPC socket or SVCUID)' },
  'ipc.subscribe': { area: 'components/ipc', meaning: 'a Greengrass IPC subscription failed' },
  'ipc.timeout': { area: 'components/ipc', meaning: 'a Greengrass IPC request got no answer in time' },

  // contracts
  CARD_BAD: { area: 'contracts', meaning: 'a model card that is not readable JSON or fails its schema' },
  CARD_SCHEMA: { area: 'contracts', meaning: 'a model card schema version this loupe does not read' },
  LABEL_BAD_RECORD: { area: 'contracts', meaning: 'a label record that fails its schema or has a box outside its image' },
  LABELS_CSV_BAD: { area: 'contracts', meaning: 'a labels CSV with a malformed header or row' },
  LABELS_CSV_MISSING: { area: 'contracts', meaning: 'a labels CSV file that does not exist' },
  'objectstore.keys': { area: 'contracts', meaning: "the object store's key pair is missing, unreadable or malformed" },
  SIDECAR_BAD: { area: 'contracts', meaning: 'an upload sidecar that is not JSON or fails its schema' },
  SIDECAR_SCHEMA: { area: 'contracts', meaning: 'an upload sidecar schema version this loupe does not read' },

  // embedded/broker
  BROKER_LISTEN: { area: 'embedded/broker', meaning: 'the embedded MQTT broker cannot listen on its address' },
  BROKER_PORT: { area: 'embedded/broker', meaning: 'an MQTT broker port outside 0..65535' },

  // embedded/nucleus
  ARTIFACT_DIGEST: { area: 'embedded/nucleus', meaning: "a component artifact whose SHA-256 differs from its recipe's" },
  ARTIFACT_DIR: { area: 'embedded/nucleus', meaning: 'an artifact directory given to a local deployment that is not a folder' },
  ARTIFACT_MISSING: { area: 'embedded/nucleus', meaning: 'a component artifact found in no artifact directory or the component store' },
  ARTIFACT_PATH: { area: 'embedded/nucleus', meaning: 'a component artifact that would be written outside the component store' },
  ARTIFACT_URI: { area: 'embedded/nucleus', meaning: 'a component artifact URI with a bad encoding or no file name' },
  ARTIFACT_ZIP: {
    area: 'embedded/nucleus',
    meaning: 'a component artifact that cannot be unpacked as ZIP or would unpack outside its folder',
  },
  COMPONENT_NOT_FOUND: { area: 'embedded/nucleus', meaning: 'a component version with no recipe, or a component that is not deployed' },
  CONFIG_REJECTED: { area: 'embedded/nucleus', meaning: 'a component vetoed a configuration update' },
  CONFIG_TOO_LARGE: { area: 'embedded/nucleus', meaning: "a component configuration above the nucleus's size limit" },
  DEPENDENCY_CYCLE: { area: 'embedded/nucleus', meaning: 'component dependencies that form a cycle' },
  DEPENDENCY_UNSATISFIED: { area: 'embedded/nucleus', meaning: 'no component version satisfies the dependency ranges' },
  DEPLOYMENT_FAILED: { area: 'embedded/nucleus', meaning: 'the local nucleus did not accept the deployment' },
  DEPLOYMENT_INVALID: {
    area: 'embedded/nucleus',
    meaning: 'a deployment document that names components wrongly (bad version, built-in, config for a component not deployed)',
  },
  DEPLOYMENT_TIMEOUT: { area: 'embedded/nucleus', meaning: 'a local deployment did not finish within the wait limit' },
  INIT_CONFIG_INVALID: {
    area: 'embedded/nucleus',
    meaning: 'a nucleus initial configuration that is not valid JSON/YAML or fails its checks',
  },
  INIT_CONFIG_READ: { area: 'embedded/nucleus', meaning: 'a nucleus initial configuration file that cannot be read' },
  NUCLEUS_ERROR: { area: 'embedded/nucleus', meaning: 'the nucleus answered a CLI request with an error' },
  NUCLEUS_NOT_RUNNING: { area: 'embedded/nucleus', meaning: 'no nucleus is running on the root' },
  NUCLEUS_NOT_STARTED: { area: 'embedded/nucleus', meaning: 'using a nucleus before start()' },
  NUCLEUS_ROOT: { area: 'embedded/nucleus', meaning: 'a nucleus root that is missing or not given' },
  NUCLEUS_ROOT_ACCESS: { area: 'embedded/nucleus', meaning: "the components' run-as user cannot reach the nucleus root" },
  NUCLEUS_RUNNING: { area: 'embedded/nucleus', meaning: 'another nucleus already runs on this root' },
  NUCLEUS_STOPPING: { area: 'embedded/nucleus', meaning: 'a request to a nucleus that is stopping' },
  NUCLEUS_THING: { area: 'embedded/nucleus', meaning: "a thing name outside Greengrass's allowed form" },
  NUCLEUS_UNREACHABLE: { area: 'embedded/nucleus', meaning: 'the nucleus IPC socket cannot be connected to' },
  RECIPE_DIR: { area: 'embedded/nucleus', meaning: 'a recipe directory that cannot be read' },
  RECIPE_DUPLICATE: { area: 'embedded/nucleus', meaning: 'the same component version defined by two recipe files' },
  RECIPE_INVALID: { area: 'embedded/nucleus', meaning: 'a recipe that is not valid JSON/YAML or fails the recipe checks' },
  RECIPE_NO_PLATFORM: { area: 'embedded/nucleus', meaning: "a recipe with no manifest for this device's platform" },
  RUN_WITH_USER: { area: 'embedded/nucleus', meaning: 'a runWith user or group that is malformed or does not exist' },

  // embedded/objectstore
  'objectstore.dir': { area: 'embedded/objectstore', meaning: 'the embedded object store started without a data folder' },
  'objectstore.listen': { area: 'embedded/objectstore', meaning: 'the embedded object store cannot listen on its address' },
  'objectstore.locked': { area: 'embedded/objectstore', meaning: "the object store's data folder is locked by another store" },
  'objectstore.start': { area: 'embedded/objectstore', meaning: 'the object store process exited or did not start listening in time' },

  // embedded/stack
  'edge.deploy': { area: 'embedded/stack', meaning: 'deploying the loupe suite to the local edge failed' },
  'edge.model': { area: 'embedded/stack', meaning: 'the model for the local edge cannot be read' },
  'edge.source': { area: 'embedded/stack', meaning: 'a camera source that is not KIND:VALUE of a known kind' },
  EDGE_KEEP_RESULTS: { area: 'embedded/stack', meaning: 'a keepResults option for the local edge stack that is not a positive integer' },

  // lib
  CLI_BAD_LOG_FORMAT: { area: 'lib', meaning: 'a log format option outside the known formats' },
  DATASET_MISSING: { area: 'lib', meaning: 'a named shared data set that is not at its expected path' },
  PYLITERAL_NAMES: { area: 'lib', meaning: 'class names in a Python literal that are not a list or index map of strings' },
  PYLITERAL_SYNTAX: { area: 'lib', meaning: 'text that is not a Python literal loupe can read' },
  STORE_MIGRATION: { area: 'lib', meaning: "a SQLite store's schema migration failed" },
  STORE_OPEN: { area: 'lib', meaning: 'a SQLite store that cannot be opened' },
  STORE_TOO_NEW: { area: 'lib', meaning: 'a SQLite store written by a newer loupe' },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The dotted lower-case codes from before the naming rule: accepted, never added to. */
export const LEGACY_DOTTED_CODES: readonly ErrorCode[] = [
  'build.deps',
  'build.fetch',
  'build.model',
  'build.recipe',
  'build.trace',
  'camera.closed',
  'camera.folder',
  'camera.process',
  'camera.snapshot',
  'camera.timeout',
  'cli.component',
  'cli.number',
  'cli.platform',
  'cli.timeout',
  'config.invalid',
  'edge.deploy',
  'edge.model',
  'edge.source',
  'ipc.call',
  'ipc.connect',
  'ipc.disconnected',
  'ipc.env',
  'ipc.subscribe',
  'ipc.timeout',
  'model.digest',
  'model.none',
  'model.read',
  'objectstore.dir',
  'objectstore.keys',
  'objectstore.listen',
  'objectstore.locked',
  'objectstore.start',
  'publish.bucket',
  'publish.build',
  'publish.create',
  'publish.none',
  'publish.upload',
  'recipe.invalid',
  'recipe.model',
  'recipe.read',
];

export function isErrorCode(s: string): s is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, s);
}

/**
 * A code that arrives as text from another process (train.py's and quantize.py's LOUPE_ERROR
 * lines): kept when catalogued; otherwise `fallback`, with the foreign code kept in the message
 * so nothing is lost. The catalogue test checks the Python scripts' codes, so the fallback is for
 * a script newer than this catalogue.
 */
export function codeFromText(code: string, message: string, fallback: ErrorCode): { code: ErrorCode; message: string } {
  return isErrorCode(code) ? { code, message } : { code: fallback, message: `${code}: ${message}` };
}
