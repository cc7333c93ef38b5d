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
import {
  GradientFramingError,
  GradientLimitError,
  IsolationSession,
  type IsolationSessionConfig,
  type IsolationSnapshot,
} from "../isolation/index.js";
import { invalidArgument, notFound, resourceExhausted } from "../kasmina/errors.js";
import { noopMetrics, type Histogram, type MetricsPort } from "../kasmina/ports.js";
import type { SeedManager } from "../kasmina/seed-manager.js";
import type { CallContext } from "./adapter.js";
import type { CallRuns } from "./call-run.js";
import { checkIdLength, quote } from "./limits.js";

/** The isolation engine's errors as statuses: framing ⇒ INVALID_ARGUMENT, a bound ⇒ RESOURCE_EXHAUSTED. */
function mapped(error: unknown): unknown {
  if (error instanceof GradientFramingError) return invalidArgument(error.message);
  if (error instanceof GradientLimitError) return resourceExhausted(error.message);
  return error;
}

export interface GradientApiOptions {
  /** Sessions are per run: each stream works on the run its metadata selects. */
  runs: CallRuns;
  /** Configuration of the sessions the manager opens; used for a scratch session that only validates. */
  sessionConfig: IsolationSessionConfig;
  backendName: string;
  metrics?: MetricsPort;
}

/** DESIGN §2 binding name: seconds from a pass's first message to its report, by pass kind. */
export const ISOLATION_REPORT_DURATION = "kasmina.isolation.report.duration";

export function isolationReportDuration(metrics: MetricsPort | undefined): Histogram {
  return (metrics ?? noopMetrics).histogram(ISOLATION_REPORT_DURATION, "Time from a pass's first gradient message to its isolation report", "s");
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
  getIsolationStats: (request: GetIsolationStatsRequest, context: CallContext) => Promise<GetIsolationStatsResponse>;
} {
  const { runs, backendName } = options;
  const duration = isolationReportDuration(options.metrics);
  return {
    async reportGradients(requests, context) {
      // Synchronous unless a replica must take the run over first: a watcher subscribes in its call's turn.
      const taken = runs.forCall(context);
      const run = taken instanceof Promise ? await taken : taken;
      const { manager } = run;
      let seedId: string | undefined;
      let session: IsolationSession | undefined;
      let pass: ReturnType<IsolationSession["beginPass"]> | undefined;
      let index = 0;
      let started = 0;
      try {
        for await (const chunk of requests) {
          if (context.signal.aborted) break;
          if (seedId === undefined) {
            started = performance.now();
            checkIdLength(chunk.seedId, "chunk 1: seed_id");
            if (chunk.seedId.trim() === "") throw invalidArgument("chunk 1: seed_id must not be empty");
            seedId = chunk.seedId;
            if (!manager.hasSeed(seedId) || manager.isEphemeral(seedId)) throw notFound(`seed ${quote(seedId)} is not managed`);
            // A seed without a session (no host registered, no kernel) still has its stream
            // validated, by a scratch session whose commit records nothing.
            session = sessionOf(manager, seedId);
            const target = session ?? new IsolationSession({ ...options.sessionConfig });
            if (session === undefined) target.disableCollection();
            pass = target.beginPass();
          } else if (chunk.seedId !== seedId) {
            throw invalidArgument(`chunk ${index + 1}: seed_id ${quote(chunk.seedId)} differs from ${quote(seedId)}; one stream carries one seed`);
          }
          checkIdLength(chunk.paramKey, `chunk ${index + 1}: param_key`);
          try {
            pass?.feed({ paramKey: chunk.paramKey, side: chunk.side, numel: chunk.numel, offset: chunk.offset, values: chunk.values });
          } catch (error) {
            // The engine's message names the chunk (1-based), the parameter and the side.
            throw mapped(error);
          }
          index += 1;
        }
        if (context.signal.aborted) throw context.signal.reason;
        if (seedId === undefined || pass === undefined) throw invalidArgument("the stream carried no chunks");
        let result;
        try {
          result = pass.commit();
        } catch (error) {
          throw mapped(error);
        }
        pass = undefined;
        if (result.applied && !result.snapshot.isolated && manager.hasSeed(seedId)) manager.recordIsolationViolation(seedId);
        const violations = manager.seedView(seedId)?.isolationViolations ?? 0;
        // A recorded violation is state (DESIGN §2.2): committed before the report answers.
        await runs.runs.commit(run);
        duration.record((performance.now() - started) / 1000, { "kasmina.isolation.pass": "full" });
        return { report: report(seedId, session === undefined ? undefined : result.snapshot, violations, backendName) };
      } finally {
        pass?.abort();
      }
    },

    getIsolationStats(request, context) {
      const seedId = request.seedId;
      checkIdLength(seedId, "seed_id");
      if (seedId.trim() === "") throw invalidArgument("seed_id must not be empty");
      return runs.within(context, ({ manager }) => {
        const ctx = manager.seedView(seedId);
        if (ctx === undefined || manager.isEphemeral(seedId)) throw notFound(`seed ${quote(seedId)} is not managed`);
        return { report: report(seedId, sessionOf(manager, seedId)?.snapshot(), ctx.isolationViolations, backendName) };
      }, false);
    },
  };
}
