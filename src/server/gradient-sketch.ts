// GetProjection and ReportGradientSketch (DESIGN §2.3): a trainer fetches the session's prepared
// projection indices once, then sends per backward pass only Σg² and g at those indices. Both go
// through the seed's isolation session (its plans and its observer routine), so a sketch pass and
// a full ReportGradients pass of the same gradients give the same report.
import type {
  GetProjectionRequest,
  GetProjectionResponse,
  ParameterProjection,
  ReportGradientSketchRequest,
  ReportGradientSketchResponse,
} from "../../generated/esper/kasmina/v1/kasmina.js";
import { GradientSide, IsolationSession, MAX_PARAM_KEY_LENGTH, SketchError, type IsolationSessionConfig } from "../isolation/index.js";
import { KasminaError, failedPrecondition, invalidArgument, notFound } from "../kasmina/errors.js";
import type { SeedManager } from "../kasmina/seed-manager.js";
import type { CallContext } from "./adapter.js";
import type { CallRuns } from "./call-run.js";
import { checkIdLength, quote } from "./limits.js";
import type { MetricsPort } from "../kasmina/ports.js";
import { isolationReportDuration, report } from "./report-gradients.js";

export interface SketchApiOptions {
  /** Sessions are per run: each call works on the run its metadata selects. */
  runs: CallRuns;
  /** Configuration of the sessions the manager opens; used for a scratch session that only validates. */
  sessionConfig: IsolationSessionConfig;
  backendName: string;
  /** KASMINA_MAX_MESSAGE_BYTES: a GetProjection reply must fit in one message. */
  maxMessageBytes: number;
  metrics?: MetricsPort;
}

/** Wire bytes of one index at most (a uint64 varint), plus per-projection framing. */
const INDEX_BYTES = 10;
const PROJECTION_OVERHEAD = 40;

const EXACT_MODE = "exact mode (KASMINA_PROJECTION_SAMPLES=0) has no projections: exact mode needs full gradients, sent with ReportGradients";

function requireSeedId(seedId: string): string {
  checkIdLength(seedId, "seed_id");
  if (seedId.trim() === "") throw invalidArgument("seed_id must not be empty");
  return seedId;
}

/** The seed's open session, if any; NOT_FOUND for an unknown seed. */
function openSession(manager: SeedManager, seedId: string): IsolationSession | undefined {
  if (!manager.hasSeed(seedId) || manager.isEphemeral(seedId)) throw notFound(`seed ${quote(seedId)} is not managed`);
  const session = manager.isolationSession(seedId);
  return session instanceof IsolationSession ? session : undefined;
}

/** The seed's session; FAILED_PRECONDITION when none is open (there is no projection to give). */
function sessionFor(manager: SeedManager, seedId: string): IsolationSession {
  const session = openSession(manager, seedId);
  if (session === undefined) {
    throw failedPrecondition(
      `seed ${quote(seedId)} has no isolation session (one opens when its kernel attaches with a host registered: RegisterHost, then germinate)`,
    );
  }
  return session;
}

function toNumel(value: bigint, where: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`${where}: numel ${value} is not a safe integer`);
  return Number(value);
}

function scratchSession(config: IsolationSessionConfig, sketches: ReportGradientSketchRequest["sketches"]): IsolationSession {
  const scratch = new IsolationSession({ ...config });
  scratch.disableCollection();
  if (scratch.projectionSamples <= 0) return scratch;
  for (const sketch of sketches) {
    const side = sketch.side === GradientSide.HOST || sketch.side === GradientSide.SEED;
    if (!side || sketch.paramKey === "" || sketch.paramKey.length > MAX_PARAM_KEY_LENGTH || sketch.numel > BigInt(Number.MAX_SAFE_INTEGER)) continue;
    if (scratch.preparedPlan(sketch.paramKey) === undefined) scratch.prepareProjection(sketch.paramKey, Number(sketch.numel));
  }
  return scratch;
}

export function createSketchApi(options: SketchApiOptions): {
  getProjection: (request: GetProjectionRequest, context: CallContext) => Promise<GetProjectionResponse>;
  reportGradientSketch: (request: ReportGradientSketchRequest, context: CallContext) => Promise<ReportGradientSketchResponse>;
} {
  const { runs, backendName } = options;
  const duration = isolationReportDuration(options.metrics);
  return {
    getProjection(request, context) {
      const seedId = requireSeedId(request.seedId);
      // Every check runs before any plan is prepared, so a refused request prepares nothing.
      const wanted: { key: string; numel: number }[] = [];
      const seen = new Set<string>();
      request.parameters.forEach((p, i) => {
        const where = `parameters[${i}]`;
        if (p.paramKey === "") throw invalidArgument(`${where}.param_key is empty`);
        if (p.paramKey.length > MAX_PARAM_KEY_LENGTH) {
          throw invalidArgument(`${where}.param_key ${quote(p.paramKey)} is longer than ${MAX_PARAM_KEY_LENGTH} characters`);
        }
        if (seen.has(p.paramKey)) throw invalidArgument(`${where}.param_key ${quote(p.paramKey)} appears twice`);
        seen.add(p.paramKey);
        wanted.push({ key: p.paramKey, numel: toNumel(p.numel, `${where} (${quote(p.paramKey)})`) });
      });
      if (wanted.length === 0) throw invalidArgument("parameters is empty: name the parameters (param_key, numel) to project");
      // Prepared plans are session state, which is not durable (DESIGN §2.2): no activity to commit.
      return runs.within(context, ({ manager }) => {
        const session = sessionFor(manager, seedId);
        const samples = session.projectionSamples;
        if (samples <= 0) throw failedPrecondition(EXACT_MODE);
        let replyBytes = 0;
        wanted.forEach(({ key, numel }, i) => {
          const known = session.preparedPlan(key)?.numel;
          if (known !== undefined && known !== numel) {
            throw invalidArgument(`parameters[${i}] (${quote(key)}): numel ${numel} differs from ${known} seen earlier in this session`);
          }
          replyBytes += PROJECTION_OVERHEAD + key.length * 3 + INDEX_BYTES * Math.min(numel, samples);
        });
        if (replyBytes > options.maxMessageBytes) {
          throw new KasminaError(
            "resource_exhausted",
            `the projections of ${wanted.length} parameters need about ${replyBytes} bytes, over KASMINA_MAX_MESSAGE_BYTES (${options.maxMessageBytes}): ask in smaller batches`,
          );
        }
        const projections: ParameterProjection[] = wanted.map(({ key, numel }) => {
          const plan = session.prepareProjection(key, numel);
          return {
            paramKey: key,
            numel: BigInt(numel),
            indices: plan.indices === null ? [] : Array.from(plan.indices, (index) => BigInt(index)),
            // spec §13.2: an empty parameter has no projection, scale 0.
            scale: plan.indices === null ? 0 : plan.scale,
          };
        });
        return { projections, samples };
      }, false);
    },

    reportGradientSketch(request, context) {
      const started = performance.now();
      const seedId = requireSeedId(request.seedId);
      // A recorded violation is state (DESIGN §2.2): committed before the report answers.
      return runs.within(context, ({ manager }) => {
        const session = openSession(manager, seedId);
        // As ReportGradients does, a seed without a session (culled to embargo, no host) still has
        // its pass validated, by a scratch session that records nothing; its projections are the
        // sketches' own numels, so only the shape of each sketch is checked.
        const target = session ?? scratchSession(options.sessionConfig, request.sketches);
        let result;
        try {
          result = target.applySketch(request.sketches);
        } catch (error) {
          if (error instanceof SketchError) {
            throw error.kind === "invalid" ? invalidArgument(error.message) : failedPrecondition(error.message);
          }
          throw error;
        }
        // DESIGN decision 12, as for a streamed pass: every applied pass is verified.
        if (result.applied && !result.snapshot.isolated) manager.recordIsolationViolation(seedId);
        const violations = manager.seedView(seedId)?.isolationViolations ?? 0;
        return { report: report(seedId, session === undefined ? undefined : result.snapshot, violations, backendName) };
      }).then((response) => {
        duration.record((performance.now() - started) / 1000, { "kasmina.isolation.pass": "sketch" });
        return response;
      });
    },
  };
}
