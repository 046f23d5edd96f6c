import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startObjectStore } from '../../embedded/objectstore/index.js';
import { stateHomeCases } from './state-home-cases.js';

// The embedded object store (loupe's S3 stand-in; its conditional writes are its own code).
stateHomeCases('embedded object store', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lp-statehome-'));
  const store = await startObjectStore({ dir });
  return {
    clientConfig: store.clientConfig,
    stop: async () => {
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
