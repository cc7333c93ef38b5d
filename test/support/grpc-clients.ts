// Real clients over real sockets for integration tests.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { credentials, loadPackageDefinition, Metadata, type CallOptions, type Client, type ServiceError, type GrpcObject } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";

const require = createRequire(import.meta.url);

export function kasminaClient(address: string, options: Record<string, number> = {}): KasminaServiceClient {
  return new KasminaServiceClient(address, credentials.createInsecure(), options);
}

// Matches the last overload grpc-js generates (request, metadata, options, callback), which is the
// one TypeScript infers from, so Req and Res come out typed.
type UnaryFn<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** Promisify one unary method of a grpc-js client, keeping `this`. */
export function call<Req, Res>(client: Client, method: UnaryFn<Req, Res>, request: Req, metadata: Metadata = new Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, metadata, {}, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

interface HealthClient extends Client {
  check(request: { service: string }, callback: (error: ServiceError | null, response: { status: string }) => void): void;
}

export function healthClient(address: string): HealthClient {
  const pkg = loadPackageDefinition(loadSync(healthProtoPath, { enums: String })) as GrpcObject;
  const Health = ((pkg["grpc"] as GrpcObject)["health"] as GrpcObject)["v1"] as GrpcObject;
  const Ctor = Health["Health"] as unknown as new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient;
  return new Ctor(address, credentials.createInsecure());
}

export async function healthStatus(address: string, service = ""): Promise<string> {
  const client = healthClient(address);
  try {
    return await new Promise((resolve, reject) =>
      client.check({ service }, (error, response) => (error ? reject(error) : resolve(response.status))),
    );
  } finally {
    client.close();
  }
}

/** Service names listed by server reflection (grpc.reflection.v1). */
export async function reflectionServices(address: string): Promise<string[]> {
  const protoFile = join(dirname(require.resolve("@grpc/reflection/package.json")), "build/proto/grpc/reflection/v1/reflection.proto");
  const pkg = loadPackageDefinition(loadSync(protoFile, { keepCase: true })) as GrpcObject;
  const v1 = ((pkg["grpc"] as GrpcObject)["reflection"] as GrpcObject)["v1"] as GrpcObject;
  const Ctor = v1["ServerReflection"] as unknown as new (a: string, c: ReturnType<typeof credentials.createInsecure>) => Client & {
    ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: unknown): boolean; end(): void };
  };
  const client = new Ctor(address, credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => {
      const stream = client.ServerReflectionInfo();
      stream.on("data", (response: { list_services_response?: { service: { name: string }[] } }) => {
        resolve((response.list_services_response?.service ?? []).map((s) => s.name));
        stream.end();
      });
      stream.on("error", reject);
      stream.write({ list_services: "*" });
    });
  } finally {
    client.close();
  }
}

/** Metadata selecting a training run (DESIGN §2.1). */
export function inRun(id: string): Metadata {
  const metadata = new Metadata();
  metadata.set("kasmina-training-run", id);
  return metadata;
}

/** The error a call that must fail fails with. */
export async function refusal(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("expected the call to fail");
}
