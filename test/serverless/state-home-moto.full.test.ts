import { startMoto } from '../helpers/moto.js';
import { stateHomeCases } from './state-home-cases.js';

// moto's server (an independent implementation of S3's conditional writes, 412 PreconditionFailed).
// Full tier: moto runs from the aws-tools venv (Python).
stateHomeCases("moto's S3", () => startMoto('us-east-1'));
