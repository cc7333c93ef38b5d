// The prefetch contract over the in-process bus (KASMINA_BUS=memory).
import { MemoryBus, MemoryStreams } from "../../src/prefetch/memory-bus.js";
import { prefetchContract, type BusHarness } from "./contract.js";

const SECRET = "memory-secret";
let streams = new MemoryStreams();

const harness: BusHarness = {
  secret: SECRET,
  makeBus: () => new MemoryBus({ secret: SECRET, streams }),
  appendRaw: async (stream, fields) => {
    streams.append(stream, fields);
  },
  entries: async (stream) => streams.range(stream),
  pending: async (stream, group) => streams.pendingCount(stream, group),
  readWithoutAck: async (stream, group, consumer) => streams.readNew(stream, group, consumer, 10).map((entry) => entry.id),
  blockedReaders: async (stream) => streams.blockedReaders(stream),
  reset: async () => {
    streams = new MemoryStreams();
  },
};

prefetchContract("the in-process bus", () => harness);
