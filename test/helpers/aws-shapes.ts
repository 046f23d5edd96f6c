/**
 * Request fields several AWS request-shape tests expect, written out literally (not imported
 * from the code under test, so a change there fails the tests).
 */

/** CreateFeatureGroup FeatureDefinitions: the reference's feature-store layout + loupe's columns. */
export const EXPECTED_FEATURE_DEFINITIONS = [
  { FeatureName: 'source_ref', FeatureType: 'String' },
  { FeatureName: 'image_width', FeatureType: 'Integral' },
  { FeatureName: 'image_height', FeatureType: 'Integral' },
  { FeatureName: 'image_depth', FeatureType: 'Integral' },
  { FeatureName: 'annotations', FeatureType: 'String' },
  { FeatureName: 'event_time', FeatureType: 'Fractional' },
  { FeatureName: 'labeling_job', FeatureType: 'String' },
  { FeatureName: 'status', FeatureType: 'String' },
  { FeatureName: 'device', FeatureType: 'String' },
  { FeatureName: 'capture_time', FeatureType: 'Fractional' },
  { FeatureName: 'model_version', FeatureType: 'String' },
  { FeatureName: 'meta', FeatureType: 'String' },
];

/** CreateTrainingJob AlgorithmSpecification.MetricDefinitions over train.py's loupe-metric lines. */
export const EXPECTED_METRIC_DEFINITIONS = [
  { Name: 'epoch', Regex: 'loupe-metric.* epoch=([-+0-9.eE]+)' },
  { Name: 'train:seconds', Regex: 'loupe-metric.* seconds=([-+0-9.eE]+)' },
  { Name: 'train:box_loss', Regex: 'loupe-metric.* box_loss=([-+0-9.eE]+)' },
  { Name: 'train:cls_loss', Regex: 'loupe-metric.* cls_loss=([-+0-9.eE]+)' },
  { Name: 'train:dfl_loss', Regex: 'loupe-metric.* dfl_loss=([-+0-9.eE]+)' },
  { Name: 'val:precision', Regex: 'loupe-metric.* precision=([-+0-9.eE]+)' },
  { Name: 'val:recall', Regex: 'loupe-metric.* recall=([-+0-9.eE]+)' },
  { Name: 'val:map50', Regex: 'loupe-metric.* map50=([-+0-9.eE]+)' },
  { Name: 'val:map50_95', Regex: 'loupe-metric.* map50_95=([-+0-9.eE]+)' },
];

/**
 * CreateDeployment's policies and IoT job configuration with loupe's default rollout (no
 * `edge.rollout` changes): ROLLBACK on failure, components notified, exponential rollout, abort
 * at 10 % failed or timed out, 30-minute job timeout.
 */
export const EXPECTED_DEFAULT_DEPLOYMENT_POLICIES = {
  deploymentPolicies: {
    failureHandlingPolicy: 'ROLLBACK',
    componentUpdatePolicy: { action: 'NOTIFY_COMPONENTS', timeoutInSeconds: 60 },
    configurationValidationPolicy: { timeoutInSeconds: 60 },
  },
  iotJobConfiguration: {
    jobExecutionsRolloutConfig: {
      exponentialRate: { baseRatePerMinute: 2, incrementFactor: 2, rateIncreaseCriteria: { numberOfSucceededThings: 2 } },
      maximumPerMinute: 50,
    },
    abortConfig: {
      criteriaList: [
        { failureType: 'FAILED', action: 'CANCEL', thresholdPercentage: 10, minNumberOfExecutedThings: 5 },
        { failureType: 'TIMED_OUT', action: 'CANCEL', thresholdPercentage: 10, minNumberOfExecutedThings: 5 },
      ],
    },
    timeoutConfig: { inProgressTimeoutInMinutes: 30 },
  },
};
