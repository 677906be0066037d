/**
 * Kubernetes resource quantities ("500m", "16Gi", "2", "1e3"), parsed far enough
 * to validate them and to compare a request with its limit before the API
 * server sees them.
 */

const QUANTITY = /^(?<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?<suffix>[munkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]+)?$/;

const SUFFIX_MULTIPLIER: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The quantity's value in base units, or undefined when it is not a quantity. */
export function parseQuantity(quantity: string): number | undefined {
  const match = QUANTITY.exec(quantity);
  if (!match?.groups) return undefined;
  const value = Number(match.groups.number);
  const suffix = match.groups.suffix;
  if (suffix === undefined) return value;
  if (suffix[0] === "e" || suffix[0] === "E") return value * 10 ** Number(suffix.slice(1));
  return value * (SUFFIX_MULTIPLIER[suffix] ?? Number.NaN);
}
