// Container health probe: asks grpc.health.v1 for KasminaService; exit 0 only when SERVING.
import { credentials, loadPackageDefinition, type GrpcObject, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";

interface HealthClient extends Client {
  check(request: { service: string }, options: { deadline: number }, callback: (error: ServiceError | null, response: { status: string }) => void): void;
}

const host = process.env["KASMINA_HEALTH_HOST"] ?? "127.0.0.1";
const port = process.env["KASMINA_PORT"] ?? "50051";
const pkg = loadPackageDefinition(loadSync(protoPath, { enums: String })) as GrpcObject;
const Health = (((pkg["grpc"] as GrpcObject)["health"] as GrpcObject)["v1"] as GrpcObject)["Health"] as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => HealthClient;
const client = new Health(`${host}:${port}`, credentials.createInsecure());
client.check({ service: "esper.kasmina.v1.KasminaService" }, { deadline: Date.now() + 3000 }, (error, response) => {
  client.close();
  if (error) {
    console.error(`unhealthy: ${error.message}`);
    process.exit(1);
  }
  console.log(response.status);
  process.exit(response.status === "SERVING" ? 0 : 1);
});
