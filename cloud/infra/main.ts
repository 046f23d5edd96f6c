import { resolve } from 'node:path';
import { buildApp } from './app.js';
import { DEFAULT_INFRA_CONFIG_FILE, readInfraConfig } from './config.js';

/**
 * The CDK app as the CDK CLI runs it (`cdk synth --app "node dist/cloud/infra/main.js"`, see
 * cloud/infra/cdk.json): the configuration from LOUPE_INFRA_CONFIG (default ./loupe.infra.json);
 * the output folder and context come from the CLI through the environment, as for any CDK app.
 */
const config = readInfraConfig(resolve(process.env.LOUPE_INFRA_CONFIG ?? DEFAULT_INFRA_CONFIG_FILE));
buildApp(config).app.synth();
