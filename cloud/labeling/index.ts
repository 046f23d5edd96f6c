/**
 * Labelling: jobs, consolidation, verification, the web UI, the simulated workforce and the
 * Ground Truth backend. See README.md in this folder for the flow and the consolidation rule.
 *
 *   new Labeling(store, { dbPath?, now?, leaseSeconds? })    jobs.ts
 *     .createJob(spec) .getJob(name) .listJobs() .items(name) .eligible(asOf?, batch?)
 *     .nextTask(job, worker, {skip?}) .submit(job, ref, worker, boxes) .release(job, ref)
 *     .nextVerification(job, verifier, {skip?}) .verify(job, ref, {verdict, reason?, verifier})
 *     .recordConsolidated(job, ref, boxes, meta?) .hasItem(ref)
 *   consolidate(workerAnnotations, {iouThreshold?, minVotes?})   consolidate.ts
 *   startLabelServer({ lab, images, token, port?, host? })       server.ts + ui/
 *   runSimulatedWorkforce(lab, job, { workers, truth })           workforce.ts
 *   runSimulatedVerifier(lab, job, { id, truth })
 *   truthFromStore(store, { refPrefix?, asOf? })
 *   new GroundTruthBackend(opts)                                  groundtruth.ts
 *   new ImageSource({ s3?, mappings? }), metalTagsMapping(dir)    images.ts
 */
export * from './jobs.js';
export * from './consolidate.js';
export * from '../../contracts/box.js';
export * from './images.js';
export * from './server.js';
export * from './workforce.js';
export * from './groundtruth.js';
