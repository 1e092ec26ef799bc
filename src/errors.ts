/**
 * Every error the package throws on purpose extends VlmGrpoError: it carries a stable `code` and a
 * `remedy` sentence saying what to do. Argument errors from the kernels are plain TypeError/RangeError.
 */
export class VlmGrpoError extends Error {
  readonly code: string;
  readonly remedy: string;

  constructor(code: string, message: string, remedy: string, options?: { cause?: unknown }) {
    super(`${message}\n  → ${remedy}`, options);
    this.name = 'VlmGrpoError';
    this.code = code;
    this.remedy = remedy;
  }
}

/** The native addon is missing or could not be loaded. */
export class NativeAddonError extends VlmGrpoError {
  constructor(message: string, remedy: string, cause?: unknown) {
    super('ERR_NATIVE_ADDON', message, remedy, { cause });
    this.name = 'NativeAddonError';
  }
}
