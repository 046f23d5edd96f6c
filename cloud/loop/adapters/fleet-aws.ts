import type { GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import type { S3Client } from '@aws-sdk/client-s3';
import { AwsGreengrassFleet } from '../../publish/greengrass-aws.js';
import type { FleetStore } from '../../publish/fleet-store.js';
import { readRecipeFile } from '../../publish/model-component.js';
import type { LoopConfig } from '../config.js';
import type { FleetPort } from '../ports.js';

type AwsFleetConfig = Extract<NonNullable<LoopConfig['fleet']>, { backend: 'aws' }>;

/**
 * The fleet as an AWS IoT Greengrass v2 thing group (`fleet.backend: "aws"`): artefacts go to S3,
 * component versions and deployments through the Greengrass control plane. The deploy step
 * records the deployment's state as AWS reports it; confirm then polls (or listens to telemetry).
 */
export function awsFleet(f: AwsFleetConfig, greengrass: GreengrassV2Client, s3: S3Client, store: FleetStore): FleetPort {
  const fleet = new AwsGreengrassFleet({
    greengrass,
    s3,
    bucket: f.bucket,
    prefix: f.prefix,
    thingGroupArn: f.thingGroupArn,
    rollout: f.rollout,
  });
  return {
    backend: 'aws',
    fleet,
    store,
    baseRecipe: async () => (f.baseRecipe ? readRecipeFile(f.baseRecipe) : fleet.baseRecipe('loupe.Model')),
    deploymentOutcome: (id) => fleet.deploymentStatus(id),
    confirmPollMs: f.pollSeconds * 1000,
    close: async () => {},
  };
}
