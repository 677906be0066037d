import { describe, expect, it } from "vitest";
import { parseQuantity } from "../../charts-ts/quantity.ts";

describe("parseQuantity", () => {
  it.each([
    ["4", 4],
    ["500m", 0.5],
    ["1.5", 1.5],
    ["16Gi", 16 * 2 ** 30],
    ["512Mi", 512 * 2 ** 20],
    ["2k", 2000],
    ["1e3", 1000],
    ["1G", 1e9],
  ])("reads %s", (quantity, value) => {
    expect(parseQuantity(quantity)).toBeCloseTo(value);
  });

  it.each(["", "four", "16 Gi", "16GB", "-1", "1.2.3", "Gi", "1Zi"])("rejects %j", (quantity) => {
    expect(parseQuantity(quantity)).toBeUndefined();
  });
});
