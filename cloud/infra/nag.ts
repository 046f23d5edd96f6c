import { Stack, Validations, type App } from 'aws-cdk-lib';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * cdk-nag's AwsSolutions rules run on every synth (`loupe aws synth`, the CDK CLI, the tests):
 * a finding that is not acknowledged stops synthesis with CDK's policy validation report.
 * Every acknowledgement in this app goes through `nagSuppress`, next to the resource it
 * concerns, with the reason it is right for that resource; the suppressed finding ids are
 * specific (`AwsSolutions-IAM5[Resource::...]`), so a new wildcard elsewhere still fails.
 */
export function addNagChecks(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
}

export interface NagAcknowledgement {
  /** The rule, or one finding of it: `AwsSolutions-IAM5[Resource::<arn pattern>]`. */
  id: string;
  reason: string;
}

export function nagSuppress(scope: IConstruct, acks: NagAcknowledgement[]): void {
  // Rule ids of a validation plugin are acknowledged with the plugin's prefix.
  for (const a of acks)
    Validations.of(scope).acknowledge({ id: a.id.startsWith('AwsSolutions-') ? `AwsSolutions::${a.id}` : a.id, reason: a.reason });
}

/**
 * The id of one IAM5 finding: a wildcard resource, written as cdk-nag flattens it (tokens as
 * `<AWS::AccountId>`), so an acknowledgement names exactly the resource pattern it accepts.
 */
export function wildcardResource(scope: IConstruct, resource: string): string {
  return `AwsSolutions-IAM5[Resource::${flattenCfnReference(Stack.of(scope).resolve(resource))}]`;
}
