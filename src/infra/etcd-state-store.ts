// KASMINA_STATE=etcd (DESIGN §2.4): runs and the nonce ledger in etcd, shared by several replicas.
//
// Keys (prefix `kasmina/`):
//   owner/<run>          {"address","instance"} under this replica's lease: who serves the run. Its
//                        create revision is the fencing token of every write to the run.
//   run/<run>/<item>     one key per item of the run (run-state-codec.ts): seeds, rollback records,
//                        queued events and unsent packets are their own keys, so values stay small.
//   nonce/<command id>   the ledger: put-if-absent (create revision 0) under a lease at least as
//                        long as the entry's TTL, so one replica wins and etcd forgets it on time.
//
// Each acknowledged change is ONE transaction: compare owner/<run> create revision = token and
// every nonce key's create revision = 0; then its deletes, puts and nonce puts. A replica that lost
// the run (its lease expired while it was paused, say) therefore cannot overwrite the new owner's
// state. The replica lease (TTL = KASMINA_LEASE_MS rounded up to seconds) is kept alive every third
// of KASMINA_LEASE_MS; the replica stops serving its runs once KASMINA_LEASE_MS has passed on its
// monotonic clock since the last keep-alive it sent that etcd confirmed, which is never later than
// etcd's own expiry, so two replicas never serve one run at once.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Etcd3, EtcdLeaseInvalidError, isRecoverableError, type IKeyValue, type IOptions, type ITxnResponse, type Lease } from "etcd3";
import { ConsecutiveBreaker, circuitBreaker, handleWhen, retry, ConstantBackoff } from "cockatiel";
import { NonceTakenError, STATE_WRITES_METRIC, type StateChange, type StateStore, type StoredState } from "../kasmina/state-store.js";
import { OwnershipLostError, RunOwnedElsewhere, StoreUnreachableError, type RunOwnership } from "../kasmina/run-ownership.js";
import type { Histogram, MetricsPort } from "../kasmina/ports.js";

export interface EtcdStoreOptions {
  endpoints: readonly string[];
  /** KASMINA_LEASE_MS: how long a replica may serve its runs without a confirmed keep-alive. */
  leaseMs: number;
  /** KASMINA_ADVERTISE_ADDRESS: HOST:PORT other replicas send clients to. */
  advertise: string;
  auth?: { username: string; password: string } | undefined;
  /** PEM files (KASMINA_ETCD_CA, KASMINA_ETCD_CERT, KASMINA_ETCD_KEY). */
  tls?: { ca: string; cert?: string | undefined; key?: string | undefined } | undefined;
  metrics: MetricsPort;
  log: (message: string) => void;
  wallMs?: () => number;
  monotonicMs?: () => number;
  /** Deadline of one etcd request (default: a third of leaseMs, at most 5 s). */
  callTimeoutMs?: number;
  prefix?: string;
}

interface Owned {
  /** Create revision of owner/<run>: the fencing token. */
  token: string;
}

/** `etcd:ENDPOINTS` for GetStatus, with any user:password@ taken out of the URLs. */
export function describeEndpoints(endpoints: readonly string[]): string {
  return `etcd:${endpoints.map((e) => e.replace(/\/\/[^@/]*@/, "//")).join(",")}`;
}

export class EtcdStateStore implements StateStore, RunOwnership {
  readonly description: string;
  readonly ownership: RunOwnership = this;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly instance = randomUUID();
  private readonly wallMs: () => number;
  private readonly monotonicMs: () => number;
  private readonly callTimeoutMs: number;
  private readonly writes: Histogram;
  private readonly owned = new Map<string, Owned>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly lostListeners: ((runId: string, reason: string) => void)[] = [];
  private readonly reachableListeners: ((reachable: boolean) => void)[] = [];
  private lease: { handle: Lease; id: string } | undefined;
  /** Monotonic ms after which this replica must not act for its runs. */
  private deadline = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private nonceLease: { id: string; expiresAtMs: number } | undefined;
  private nonceLeaseGrant: Promise<{ id: string; expiresAtMs: number }> | undefined;
  private writeSeq = 0;
  private closed = false;
  private isReachable = false;
  private lastError: string | undefined;

  constructor(private readonly options: EtcdStoreOptions) {
    this.description = describeEndpoints(options.endpoints);
    this.prefix = options.prefix ?? "kasmina/";
    this.wallMs = options.wallMs ?? Date.now;
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
    this.callTimeoutMs = options.callTimeoutMs ?? Math.min(5000, Math.max(500, Math.floor(options.leaseMs / 3)));
    this.writes = options.metrics.histogram(STATE_WRITES_METRIC, "Duration of one committed state-store transaction", "s");
    const etcdOptions: IOptions = {
      hosts: [...options.endpoints],
      dialTimeout: this.callTimeoutMs,
      // Every unary call has a deadline: an unreachable etcd fails a call, it never hangs it.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.callTimeoutMs }),
      grpcOptions: { "grpc.max_receive_message_length": 256 * 1024 * 1024 },
      faultHandling: {
        // A member that failed twice is skipped for a second, so calls go to the live members.
        host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(2) }),
        // One retry on another member; a retried write that had in fact been applied is
        // recognised by its write id (see write()).
        global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.min(2, options.endpoints.length), backoff: new ConstantBackoff(50) }),
      },
    };
    if (options.auth !== undefined) etcdOptions.auth = options.auth;
    if (options.tls !== undefined) {
      etcdOptions.credentials = {
        rootCertificate: readFileSync(options.tls.ca),
        ...(options.tls.cert === undefined ? {} : { certChain: readFileSync(options.tls.cert) }),
        ...(options.tls.key === undefined ? {} : { privateKey: readFileSync(options.tls.key) }),
      };
    }
    this.client = new Etcd3(etcdOptions);
  }

  /** Starts the lease loop; resolves after the first attempt (the store may still be unreachable). */
  async start(): Promise<void> {
    await this.tick();
    this.schedule();
  }

  get reachable(): boolean {
    return this.isReachable;
  }

  onLost(listener: (runId: string, reason: string) => void): void {
    this.lostListeners.push(listener);
  }

  onReachable(listener: (reachable: boolean) => void): void {
    this.reachableListeners.push(listener);
  }

  /** Replicas load a run when they take it over (acquire); the ledger lives in etcd only. */
  load(): StoredState {
    return { runs: new Map(), nonces: [] };
  }

  owns(runId: string): boolean {
    return this.owned.has(runId) && this.checkDeadline() && this.owned.has(runId);
  }

  async acquire(runId: string): Promise<Map<string, string>> {
    if (this.closed) throw new StoreUnreachableError("the etcd state store is closed (the replica is shutting down)");
    for (let attempt = 0; attempt < 3; attempt++) {
      this.checkDeadline();
      // A replica that just gave up its lease (woken from a pause, say) asks for a fresh one first.
      if (this.lease === undefined) await this.tick();
      const lease = this.lease;
      if (lease === undefined) throw new StoreUnreachableError(`etcd (${this.options.endpoints.join(",")}) is unreachable: this replica holds no lease`);
      const ownerKey = this.ownerKey(runId);
      const current = this.owned.get(runId);
      if (current !== undefined) return this.readRun(runId, current);
      let response: ITxnResponse;
      try {
        response = await this.client
          .if(ownerKey, "Create", "==", 0)
          .then(this.client.put(ownerKey).value(this.ownerValue()).lease(lease.id), this.client.getAll().prefix(this.runPrefix(runId)))
          .else(this.client.get(ownerKey))
          .commit();
      } catch (error) {
        throw this.unreachable(error);
      }
      if (response.succeeded) {
        const owned = { token: response.header.revision };
        // Our lease may have been lost while the request was in flight.
        if (this.lease?.id !== lease.id) continue;
        this.owned.set(runId, owned);
        return itemsOf(response.responses[1]?.response_range.kvs ?? [], this.runPrefix(runId));
      }
      const kv = response.responses[0]?.response_range.kvs[0];
      if (kv === undefined) continue; // released in between: try again
      const holder = parseOwner(kv.value.toString("utf8"));
      if (holder.instance !== this.instance) throw new RunOwnedElsewhere(runId, holder.address);
      if (kv.lease === lease.id) {
        const owned = { token: kv.create_revision };
        this.owned.set(runId, owned);
        return this.readRun(runId, owned);
      }
      // Ours under a lease we gave up (its deadline passed): replace it, unless it changed meanwhile.
      try {
        await this.client.if(ownerKey, "Mod", "==", kv.mod_revision).then(this.client.delete().key(ownerKey)).commit();
      } catch (error) {
        throw this.unreachable(error);
      }
    }
    throw new StoreUnreachableError(`could not take training run ${JSON.stringify(runId)}: its ownership kept changing`);
  }

  commit(change: StateChange): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnreachableError("the etcd state store is closed (the replica is shutting down)"));
    // Changes of one run commit in submission order; runs commit in parallel.
    const previous = this.chains.get(change.runId) ?? Promise.resolve();
    const next = previous.then(() => this.write(change));
    const tail = next.catch(() => undefined);
    this.chains.set(change.runId, tail);
    void tail.then(() => {
      if (this.chains.get(change.runId) === tail) this.chains.delete(change.runId);
    });
    return next;
  }

  async settled(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  /** Drains, then revokes the lease: every run this replica owned is free for another at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settled();
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.ticking;
    const lease = this.lease;
    this.lease = undefined;
    this.owned.clear();
    if (lease !== undefined) {
      try {
        await lease.handle.revoke({ deadline: Date.now() + this.callTimeoutMs });
      } catch (error) {
        this.options.log(`etcd: could not revoke the lease on shutdown (${(error as Error).message}); its runs move after KASMINA_LEASE_MS`);
      }
    }
    this.client.close();
  }

  private async write(change: StateChange): Promise<void> {
    const started = performance.now();
    const runId = change.runId;
    if (!this.owns(runId)) throw new OwnershipLostError(runId, "its ownership lapsed before the write");
    const owned = this.owned.get(runId);
    if (owned === undefined) throw new OwnershipLostError(runId, "its ownership lapsed before the write");
    const ownerKey = this.ownerKey(runId);
    const writeId = `${this.instance}:${++this.writeSeq}`;
    const nonces = [...new Map(change.nonces.map((n) => [n.id, n])).values()];
    let txn = this.client.if(ownerKey, "Create", "==", owned.token);
    for (const n of nonces) txn = txn.and(this.nonceKey(n.id), "Create", "==", 0);
    const ops = [];
    if (change.dropRun === true) ops.push(this.client.delete().prefix(this.runPrefix(runId)), this.client.delete().key(ownerKey));
    for (const key of change.deletes) ops.push(this.client.delete().key(this.itemKey(runId, key)));
    for (const [key, value] of change.puts) ops.push(this.client.put(this.itemKey(runId, key)).value(value));
    if (nonces.length > 0) {
      try {
        const lease = await this.nonceLeaseFor(Math.max(...nonces.map((n) => n.expiresAtMs)));
        for (const n of nonces) ops.push(this.client.put(this.nonceKey(n.id)).value(writeId).lease(lease));
      } catch (error) {
        throw this.unreachable(error);
      }
    }
    let response: ITxnResponse;
    try {
      response = await txn
        .then(...ops)
        .else(this.client.get(ownerKey), ...nonces.map((n) => this.client.get(this.nonceKey(n.id))))
        .commit();
    } catch (error) {
      throw this.unreachable(error);
    }
    if (!response.succeeded) {
      const owner = response.responses[0]?.response_range.kvs[0];
      if (owner === undefined || owner.create_revision !== owned.token) {
        const reason = "a fenced write was refused: another replica took the run";
        this.lose(runId, reason);
        throw new OwnershipLostError(runId, reason);
      }
      const holders = response.responses.slice(1).map((r) => r.response_range.kvs[0]?.value.toString("utf8"));
      // Every nonce held by this very write: an earlier attempt that etcd applied before a retry.
      if (!holders.every((h) => h === writeId)) {
        const index = holders.findIndex((h) => h !== undefined && h !== writeId);
        throw new NonceTakenError(nonces[Math.max(0, index)]?.id ?? "");
      }
    }
    if (change.dropRun === true) this.owned.delete(runId);
    this.writes.record((performance.now() - started) / 1000, { "kasmina.state.store": "etcd" });
  }

  /** A lease that outlives the entry by at most ~2 s, shared by the entries of about one second. */
  private async nonceLeaseFor(expiresAtMs: number): Promise<string> {
    const current = this.nonceLease;
    if (current !== undefined && current.expiresAtMs >= expiresAtMs && current.expiresAtMs <= expiresAtMs + 2000) return current.id;
    if (this.nonceLeaseGrant === undefined) {
      const now = this.wallMs();
      const ttl = Math.max(1, Math.ceil((expiresAtMs - now) / 1000) + 1);
      const handle = this.client.lease(ttl, { autoKeepAlive: false });
      this.nonceLeaseGrant = handle.grant().then(
        (id) => {
          this.nonceLeaseGrant = undefined;
          this.nonceLease = { id, expiresAtMs: now + ttl * 1000 };
          return this.nonceLease;
        },
        (error: unknown) => {
          this.nonceLeaseGrant = undefined;
          throw error;
        },
      );
    }
    const granted = await this.nonceLeaseGrant;
    if (granted.expiresAtMs >= expiresAtMs) return granted.id;
    return this.nonceLeaseFor(expiresAtMs);
  }

  private async readRun(runId: string, owned: Owned): Promise<Map<string, string>> {
    let response: ITxnResponse;
    try {
      response = await this.client.if(this.ownerKey(runId), "Create", "==", owned.token).then(this.client.getAll().prefix(this.runPrefix(runId))).commit();
    } catch (error) {
      throw this.unreachable(error);
    }
    if (!response.succeeded) {
      this.lose(runId, "another replica took the run");
      throw new OwnershipLostError(runId, "another replica took the run");
    }
    return itemsOf(response.responses[0]?.response_range.kvs ?? [], this.runPrefix(runId));
  }

  /** True while the keep-alive deadline has not passed; past it, every run is dropped. */
  private checkDeadline(): boolean {
    if (this.monotonicMs() < this.deadline) return true;
    if (this.lease !== undefined) {
      const stale = this.lease;
      this.lease = undefined;
      // Best effort: a lease we stopped trusting should free its runs as soon as possible.
      stale.handle.revoke({ deadline: Date.now() + this.callTimeoutMs }).catch(() => undefined);
      this.loseAll("its keep-alive deadline passed (KASMINA_LEASE_MS without a confirmed keep-alive)");
      this.kick();
    }
    return false;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, Math.max(50, Math.floor(this.options.leaseMs / 3)));
    this.timer.unref();
  }

  /** Runs a tick now (after a lost lease), unless one is running. */
  private kick(): void {
    if (this.ticking === undefined && !this.closed) void this.tick();
  }

  private tick(): Promise<void> {
    if (this.ticking !== undefined) return this.ticking;
    this.ticking = this.renew().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async renew(): Promise<void> {
    if (this.closed) return;
    this.checkDeadline();
    const sent = this.monotonicMs();
    try {
      if (this.lease === undefined) {
        const handle = this.client.lease(Math.ceil(this.options.leaseMs / 1000), { autoKeepAlive: false });
        handle.on("lost", () => undefined); // reported through keepaliveOnce's rejection
        const id = await handle.grant();
        this.lease = { handle, id };
      } else {
        await this.lease.handle.keepaliveOnce({ deadline: Date.now() + this.callTimeoutMs });
      }
      this.deadline = sent + this.options.leaseMs;
      this.lastError = undefined;
      this.setReachable(true);
    } catch (error) {
      if (error instanceof EtcdLeaseInvalidError) {
        this.lease = undefined;
        this.deadline = Number.NEGATIVE_INFINITY;
        this.loseAll("its lease expired in etcd");
        this.setReachable(true);
        return this.renew();
      }
      this.setReachable(false);
      this.checkDeadline();
    }
  }

  private setReachable(reachable: boolean): void {
    if (reachable === this.isReachable) return;
    this.isReachable = reachable;
    this.options.log(reachable ? `etcd reachable (${this.options.endpoints.join(",")})` : `etcd unreachable (${this.options.endpoints.join(",")}): calls answer UNAVAILABLE`);
    this.reachableListeners.forEach((listener) => listener(reachable));
  }

  private unreachable(error: unknown): Error {
    if (error instanceof OwnershipLostError || error instanceof NonceTakenError || error instanceof RunOwnedElsewhere) return error;
    const message = error instanceof Error ? error.message : String(error);
    // Operators see why calls answer UNAVAILABLE (e.g. etcd's --max-txn-ops), each reason once in a row.
    if (message !== this.lastError) this.options.log(`etcd request failed: ${message}`);
    this.lastError = message;
    this.kick();
    return new StoreUnreachableError(`etcd (${this.options.endpoints.join(",")}) did not complete the request: ${message}`);
  }

  private lose(runId: string, reason: string): void {
    if (!this.owned.delete(runId)) return;
    this.lostListeners.forEach((listener) => listener(runId, reason));
  }

  private loseAll(reason: string): void {
    for (const runId of [...this.owned.keys()]) this.lose(runId, reason);
  }

  private ownerValue(): string {
    return JSON.stringify({ address: this.options.advertise, instance: this.instance });
  }

  private ownerKey(runId: string): string {
    return `${this.prefix}owner/${runId}`;
  }

  private runPrefix(runId: string): string {
    return `${this.prefix}run/${runId}/`;
  }

  private itemKey(runId: string, key: string): string {
    return `${this.runPrefix(runId)}${key}`;
  }

  private nonceKey(id: string): string {
    return `${this.prefix}nonce/${id}`;
  }
}

function itemsOf(kvs: readonly IKeyValue[], prefix: string): Map<string, string> {
  const items = new Map<string, string>();
  for (const kv of kvs) items.set(kv.key.toString("utf8").slice(prefix.length), kv.value.toString("utf8"));
  return items;
}

function parseOwner(text: string): { address: string; instance: string } {
  try {
    const value = JSON.parse(text) as { address?: unknown; instance?: unknown };
    return { address: typeof value.address === "string" ? value.address : "unknown", instance: typeof value.instance === "string" ? value.instance : "" };
  } catch {
    return { address: "unknown", instance: "" };
  }
}
