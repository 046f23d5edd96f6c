import { z } from 'zod';

/**
 * loupe.Model's configuration (filled in by the build or by `loupe` republishing a model): what
 * the model is. loupe.Model runs no program; loupe.Inference reads these values through its
 * recipe's Setenv (`{loupe.Model:configuration:/sha256}` ...) and checks the model's digest.
 */
export const modelConfigSchema = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/i, 'must be a hex SHA-256'),
});
export type ModelConfig = z.infer<typeof modelConfigSchema>;
