import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { venvDir, venvReady, type VenvSpec } from '../training/venv.js';

/** The venv with moto's server and cfn-lint (requirements-tools.txt); LOUPE_AWS_TOOLS_VENV points at a ready one instead. */
export const AWS_TOOLS_VENV: VenvSpec = {
  name: 'aws-tools',
  requirements: join(projectRoot, 'cloud', 'infra', 'requirements-tools.txt'),
  prefix: 'aws-tools-',
  importCheck: 'import moto.server, cfnlint',
  envVar: 'LOUPE_AWS_TOOLS_VENV',
};

export const awsToolsDir = (): string => venvDir(AWS_TOOLS_VENV);
export const awsToolsReady = (): boolean => venvReady(awsToolsDir());
export const awsToolsBin = (name: 'moto_server' | 'cfn-lint'): string => join(awsToolsDir(), 'bin', name);
