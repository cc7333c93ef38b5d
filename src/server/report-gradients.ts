// ReportGradients and GetIsolationStats: one backward pass of one seed, streamed as chunks.
// Chunks are reduced as they arrive (the stream is pulled one message at a time, which is its
// backpressure); the pass is committed only when the stream ends cleanly, so a bad chunk or a
// cancelled call leaves no trace. DESIGN decision 12: every committed pass is verified, and a
// failed verify records an isolation violation.
import type {
  GetIsolationStatsRequest,
  GetIsolationStatsResponse,
  IsolationReport,
  ReportGradientsRequest,
  ReportGradientsResponse,
} from "../../generated/esper/kasmina/v1/kasmina.js";
import { GradientFramingError, IsolationSession, type IsolationSessionConfig, type IsolationSnapshot } from "../isolation/index.js";
import { invalidArgument, notFound } from "../kasmina/errors.js";
import type { SeedManager } from "../kasmina/seed-manager.js";
import type { CallContext } from "./adapter.js";

export interface GradientApiOptions {
  manager: SeedManager;
  /** Configuration of the sessions the manager opens; used for a scratch session that only validates. */
  sessionConfig: IsolationSessionConfig;
  backendName: string;
}

export function report(seedId: string, snapshot: IsolationSnapshot | undefined, violations: number, backend: string): IsolationReport {
  return {
    seedId,
    hostNorm: snapshot?.hostNorm ?? 0,
    seedNorm: snapshot?.seedNorm ?? 0,
    dotProduct: snapshot?.dotProduct ?? 0,
    dotStandardError: snapshot?.dotStandardError ?? 0,
    isolated: snapshot?.isolated ?? true,
    seedViolations: violations,
    collecting: snapshot?.collecting ?? false,
    backend,
    elementsProcessed: BigInt(snapshot?.elementsProcessed ?? 0),
  };
}

function sessionOf(manager: SeedManager, seedId: string): IsolationSession | undefined {
  const session = manager.isolationSession(seedId);
  return session instanceof IsolationSession ? session : undefined;
}

export function createGradientApi(options: GradientApiOptions): {
  reportGradients: (requests: AsyncIterable<ReportGradientsRequest>, context: CallContext) => Promise<ReportGradientsResponse>;
  getIsolationStats: (request: GetIsolationStatsRequest) => GetIsolationStatsResponse;
} {
  const { manager, backendName } = options;
  return {
    async reportGradients(requests, context) {
      let seedId: string | undefined;
      let session: IsolationSession | undefined;
      let pass: ReturnType<IsolationSession["beginPass"]> | undefined;
      let index = 0;
      try {
        for await (const chunk of requests) {
          if (context.signal.aborted) break;
          if (seedId === undefined) {
            if (chunk.seedId.trim() === "") throw invalidArgument("chunk 1: seed_id must not be empty");
            seedId = chunk.seedId;
            if (!manager.hasSeed(seedId) || manager.isEphemeral(seedId)) throw notFound(`seed ${JSON.stringify(seedId)} is not managed`);
            // A seed without a session (no host registered, no kernel) still has its stream
            // validated, by a scratch session whose commit records nothing.
            session = sessionOf(manager, seedId);
            const target = session ?? new IsolationSession({ ...options.sessionConfig });
            if (session === undefined) target.disableCollection();
            pass = target.beginPass();
          } else if (chunk.seedId !== seedId) {
            throw invalidArgument(`chunk ${index + 1}: seed_id ${JSON.stringify(chunk.seedId)} differs from ${JSON.stringify(seedId)}; one stream carries one seed`);
          }
          try {
            pass?.feed({ paramKey: chunk.paramKey, side: chunk.side, numel: chunk.numel, offset: chunk.offset, values: chunk.values });
          } catch (error) {
            // The engine's message names the chunk (1-based), the parameter and the side.
            if (error instanceof GradientFramingError) throw invalidArgument(error.message);
            throw error;
          }
          index += 1;
        }
        if (context.signal.aborted) throw context.signal.reason;
        if (seedId === undefined || pass === undefined) throw invalidArgument("the stream carried no chunks");
        let result;
        try {
          result = pass.commit();
        } catch (error) {
          if (error instanceof GradientFramingError) throw invalidArgument(error.message);
          throw error;
        }
        pass = undefined;
        if (result.applied && !result.snapshot.isolated && manager.hasSeed(seedId)) manager.recordIsolationViolation(seedId);
        const violations = manager.seedView(seedId)?.isolationViolations ?? 0;
        return { report: report(seedId, session === undefined ? undefined : result.snapshot, violations, backendName) };
      } finally {
        pass?.abort();
      }
    },

    getIsolationStats(request) {
      const seedId = request.seedId;
      if (seedId.trim() === "") throw invalidArgument("seed_id must not be empty");
      const ctx = manager.seedView(seedId);
      if (ctx === undefined || manager.isEphemeral(seedId)) throw notFound(`seed ${JSON.stringify(seedId)} is not managed`);
      return { report: report(seedId, sessionOf(manager, seedId)?.snapshot(), ctx.isolationViolations, backendName) };
    },
  };
}
