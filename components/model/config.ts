import { z } from 'zod';

/** loupe.Model configuration (filled in by the build: name, version, the model's SHA-256). */
export const modelConfigSchema = z.object({
  name: z.string().min(1).default('metal-tags'),
  version: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/i, 'must be a hex SHA-256'),
  /** folder with model.onnx and card.json; the recipe passes {artifacts:path} as LOUPE_MODEL_DIR */
  dir: z.string().optional(),
  modelFile: z.string().default('model.onnx'),
  cardFile: z.string().default('card.json'),
});
export type ModelConfig = z.infer<typeof modelConfigSchema>;
