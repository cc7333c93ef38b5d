// Decoding of ReportGradientsRequest without copying `values`. The generated decoder copies every
// bytes field into a fresh Buffer; for 4 MiB gradient chunks that is an allocation per chunk and a
// second copy, since the isolation pass copies unaligned bytes once itself (DESIGN §5: one copy).
// Here `values` is a view into the transport's message buffer, valid while the chunk is handled.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { ReportGradientsRequest } from "../../generated/esper/kasmina/v1/kasmina.js";

export function decodeGradientChunk(bytes: Uint8Array): ReportGradientsRequest {
  const reader = new BinaryReader(bytes);
  const chunk: ReportGradientsRequest = {
    seedId: "",
    paramKey: "",
    side: 0,
    numel: 0n,
    offset: 0n,
    values: Buffer.alloc(0),
  };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    switch (field === 6 && wireType === WireType.LengthDelimited ? 6 : wireType === expectedWireType(field) ? field : 0) {
      case 1:
        chunk.seedId = reader.string();
        break;
      case 2:
        chunk.paramKey = reader.string();
        break;
      case 3:
        chunk.side = reader.int32();
        break;
      case 4:
        chunk.numel = BigInt(reader.uint64().toString());
        break;
      case 5:
        chunk.offset = BigInt(reader.uint64().toString());
        break;
      case 6: {
        const view = reader.bytes();
        chunk.values = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
        break;
      }
      default:
        // Unknown or mistyped fields are skipped, as the generated decoder does.
        reader.skip(wireType);
    }
  }
  return chunk;
}

function expectedWireType(field: number): WireType | undefined {
  switch (field) {
    case 1:
    case 2:
      return WireType.LengthDelimited;
    case 3:
    case 4:
    case 5:
      return WireType.Varint;
    default:
      return undefined;
  }
}
