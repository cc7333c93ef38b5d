// TLS and mutual TLS over a real socket, with certificates made by openssl for the test.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";
import { unimplementedApi } from "../../src/server/api.js";
import { startServer } from "../../src/server/server.js";
import { noopMetrics } from "../../src/kasmina/ports.js";
import { call } from "../support/grpc-clients.js";

let dir: string;
const file = (name: string): string => join(dir, name);
const openssl = (...args: string[]): void => {
  execFileSync("openssl", args, { stdio: "pipe" });
};

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "kasmina-tls-"));
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kasmina-test-ca", "-keyout", file("ca.key"), "-out", file("ca.pem"));
  for (const [name, san] of [["server", "IP:127.0.0.1"], ["client", "DNS:trainer"]] as const) {
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`));
    execFileSync("bash", ["-c", `printf 'subjectAltName=${san}\\n' > ${file(`${name}.ext`)}`]);
    openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", file(`${name}.ext`), "-out", file(`${name}.pem`));
  }
});

const servers: { shutdown(ms?: number): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.shutdown(500);
});

async function tlsServer(mutual: boolean) {
  const api = unimplementedApi();
  api.exportSeedStates = () => ({ seeds: [], currentEpoch: 3 });
  const server = await startServer({
    config: {
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: 1 << 20,
      authToken: undefined,
      tlsCert: file("server.pem"),
      tlsKey: file("server.key"),
      tlsClientCa: mutual ? file("ca.pem") : undefined,
    },
    api,
    metrics: noopMetrics,
    log: () => undefined,
  });
  servers.push(server);
  return server;
}

describe("TLS", () => {
  it("serves over TLS to a client that trusts the CA, and not to a plaintext client", async () => {
    const server = await tlsServer(false);
    const secure = new KasminaServiceClient(server.address, credentials.createSsl(readFileSync(file("ca.pem"))));
    await expect(call(secure, secure.exportSeedStates, {})).resolves.toMatchObject({ currentEpoch: 3 });
    secure.close();
    const plain = new KasminaServiceClient(server.address, credentials.createInsecure());
    await expect(call(plain, plain.exportSeedStates, {})).rejects.toMatchObject({ code: status.UNAVAILABLE });
    plain.close();
  });

  it("with KASMINA_TLS_CLIENT_CA, requires a client certificate signed by that CA", async () => {
    const server = await tlsServer(true);
    const ca = readFileSync(file("ca.pem"));
    const withCert = new KasminaServiceClient(
      server.address,
      credentials.createSsl(ca, readFileSync(file("client.key")), readFileSync(file("client.pem"))),
    );
    await expect(call(withCert, withCert.exportSeedStates, {})).resolves.toMatchObject({ currentEpoch: 3 });
    withCert.close();
    const withoutCert = new KasminaServiceClient(server.address, credentials.createSsl(ca));
    await expect(call(withoutCert, withoutCert.exportSeedStates, {})).rejects.toMatchObject({ code: status.UNAVAILABLE });
    withoutCert.close();
  });
});
