/** Element types of the safetensors format that this package reads and writes. */
export type DType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && Object.hasOwn(DTYPE_SIZE, value);
}

/** Float dtypes that decode to Float32. */
export type FloatDType = "F64" | "F32" | "F16" | "BF16";

export function isFloatDType(dtype: DType): dtype is FloatDType {
  return dtype === "F64" || dtype === "F32" || dtype === "F16" || dtype === "BF16";
}

/**
 * Number of elements of a shape, or undefined when a dimension is not a non-negative safe
 * integer or the product is not a safe integer (so byte counts never lose precision).
 */
export function elementCount(shape: readonly unknown[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}
