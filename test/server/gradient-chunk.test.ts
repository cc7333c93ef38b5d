import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ReportGradientsRequest } from "../../generated/esper/kasmina/v1/kasmina.js";
import { decodeGradientChunk } from "../../src/server/gradient-chunk.js";

describe("decodeGradientChunk", () => {
  it("decodes exactly what the generated decoder decodes, for any chunk", () => {
    fc.assert(
      fc.property(
        fc.record({
          seedId: fc.string(),
          paramKey: fc.string(),
          side: fc.integer({ min: -3, max: 5 }),
          numel: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          offset: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          values: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
        }),
        (message) => {
          const bytes = ReportGradientsRequest.encode(message).finish();
          expect(decodeGradientChunk(bytes)).toEqual(ReportGradientsRequest.decode(bytes));
        },
      ),
    );
  });

  it("returns values as a view of the message buffer, not a copy", () => {
    const bytes = ReportGradientsRequest.encode({ seedId: "s", paramKey: "p", side: 1, numel: 2n, offset: 0n, values: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]) }).finish();
    const chunk = decodeGradientChunk(bytes);
    expect(chunk.values.buffer).toBe(bytes.buffer);
  });

  it("skips unknown fields and rejects truncated input", () => {
    const known = ReportGradientsRequest.encode({ seedId: "s", paramKey: "p", side: 2, numel: 1n, offset: 0n, values: Buffer.alloc(4) }).finish();
    const withUnknown = Buffer.concat([Buffer.from(known), Buffer.from([0x50, 0x07])]); // field 10, varint 7
    expect(decodeGradientChunk(withUnknown)).toEqual(ReportGradientsRequest.decode(known));
    expect(() => decodeGradientChunk(Buffer.from([0x32, 0x10, 0x01]))).toThrow();
  });
});
