// asl-validator ships no typings: the shape of its one export (dist/src/validator.js).
declare module 'asl-validator' {
  export default function aslValidator(
    definition: unknown,
    opts?: { checkPaths?: boolean; checkArn?: boolean },
  ): { isValid: boolean; errors: unknown[]; errorsText(separator?: string): string };
}
