// "The run of this call" (DESIGN §2.1): the `kasmina-training-run` metadata key selects it, absent ⇒
// the default run. Handlers use forCall(context) for the run (its manager and state) and within()
// to run their work and commit what it changed before answering (DESIGN §2.2).
import { invalidArgument } from "../kasmina/errors.js";
import { RUN_ID_PATTERN, type TrainingRun, type TrainingRuns } from "../kasmina/training-runs.js";
import type { CallContext } from "./adapter.js";
import type { NonceEntry } from "../kasmina/state-store.js";

export const RUN_METADATA_KEY = "kasmina-training-run";

export class CallRuns {
  constructor(readonly runs: TrainingRuns) {}

  /** The selected run's id, validated (INVALID_ARGUMENT naming the key). */
  runIdOf(context: Pick<CallContext, "metadata">): string {
    const values = context.metadata.get(RUN_METADATA_KEY);
    if (values.length === 0) return this.runs.defaultRunId;
    const value = values[0];
    if (values.length > 1 || typeof value !== "string" || !RUN_ID_PATTERN.test(value)) {
      const shown = typeof value === "string" ? JSON.stringify(value.slice(0, 128)) : "binary";
      throw invalidArgument(`metadata ${RUN_METADATA_KEY} must be one value of 1-128 characters of [A-Za-z0-9._:-], got ${values.length > 1 ? `${values.length} values` : shown}`);
    }
    return value;
  }

  /**
   * The run this call selects, created by its first call (RESOURCE_EXHAUSTED past the limit); with
   * replicas, taken over and loaded first, or UNAVAILABLE naming the replica that owns it.
   */
  forCall(context: Pick<CallContext, "metadata">): TrainingRun | Promise<TrainingRun> {
    return this.runs.take(this.runIdOf(context));
  }

  /**
   * Runs `work` on the call's run and answers only after what it changed is committed, also when
   * it throws (a refused command still leaves its `command_rejected` event). `activity` = the call
   * counts as the run's last activity.
   */
  async within<T>(context: Pick<CallContext, "metadata">, work: (run: TrainingRun) => T | Promise<T>, activity = true): Promise<T> {
    const run = await this.forCall(context);
    let result: T;
    // The nonces this call's work registered, taken before anything else can run: another call's
    // commit must not carry them (with replicas a nonce is claimed in its own call's transaction).
    let nonces: NonceEntry[] | undefined;
    try {
      const pending = work(run);
      nonces = this.runs.takeNonces();
      result = await pending;
    } finally {
      nonces ??= this.runs.takeNonces();
      await this.runs.commit(run, activity, nonces);
    }
    return result;
  }
}
