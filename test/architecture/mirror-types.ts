/**
 * Compile-time checks (tsc, so `npm run build` and `npx tsc --noEmit -p .` fail when one breaks):
 * the AWS write mirrors cannot be used where a full store is wanted, and the full stores can
 * be used where a mirror target is. Each `@ts-expect-error` fails the build if the line
 * under it ever compiles, i.e. if a mirror became assignable to a full store again.
 */
import type { FeatureStoreLabelStore } from '../../cloud/labelstore/featurestore.js';
import type { SqliteLabelStore } from '../../cloud/labelstore/sqlite.js';
import type { LabelStore, LabelStoreMirrorTarget } from '../../cloud/labelstore/types.js';
import type { SageMakerModelRegistry } from '../../cloud/registry/sagemaker-registry.js';
import type { SqliteModelRegistry } from '../../cloud/registry/sqlite-registry.js';
import type { ModelRegistry, ModelRegistryMirrorTarget, RegistryKeyLookup } from '../../cloud/registry/types.js';

export function mirrorsAreNotStores(fs: FeatureStoreLabelStore, sm: SageMakerModelRegistry): void {
  // @ts-expect-error Feature Store's reads lag its writes: not a LabelStore
  const labels: LabelStore = fs;
  // @ts-expect-error SageMaker cannot name the champion: not a ModelRegistry
  const registry: ModelRegistry = sm;
  void labels;
  void registry;
}

export function storesServeAsMirrorTargets(
  sqlLabels: SqliteLabelStore,
  sqlRegistry: SqliteModelRegistry,
  sm: SageMakerModelRegistry,
): void {
  const a: LabelStoreMirrorTarget = sqlLabels;
  const b: LabelStore = sqlLabels;
  const c: ModelRegistry = sqlRegistry;
  // Both registries answer findByKey the same way (registry-findbykey conformance tests).
  const lookups: RegistryKeyLookup[] = [sqlRegistry, sm];
  const d: ModelRegistryMirrorTarget = sm;
  void [a, b, c, d, lookups];
}
