import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { Metadata } from "@grpc/grpc-js";
import { connect } from "node:http2";
import { FLOW_CONTROL_WINDOW, startServer, type RunningServer, KASMINA_SERVICE_NAME } from "../../src/server/server.js";
import { unimplementedApi } from "../../src/server/api.js";
import { noopMetrics } from "../../src/kasmina/ports.js";
import { KasminaError } from "../../src/kasmina/errors.js";
import { call, healthStatus, kasminaClient, reflectionServices } from "../support/grpc-clients.js";

const baseConfig = {
  host: "127.0.0.1",
  port: 0,
  maxMessageBytes: 4 * 1024 * 1024,
  authToken: undefined,
  tlsCert: undefined,
  tlsKey: undefined,
  tlsClientCa: undefined,
};

describe("server skeleton over a real socket", () => {
  let server: RunningServer;
  const logs: string[] = [];
  beforeAll(async () => {
    const api = unimplementedApi();
    api.getStatus = () => {
      throw new Error("secret internal detail");
    };
    api.exportSeedStates = () => {
      throw new KasminaError("not_found", "seed 'x' is not managed");
    };
    server = await startServer({ config: baseConfig, api, metrics: noopMetrics, log: (m) => logs.push(m) });
  });
  afterAll(async () => server.shutdown(1000));

  it("reports SERVING for the server and for KasminaService", async () => {
    expect(await healthStatus(server.address)).toBe("SERVING");
    expect(await healthStatus(server.address, KASMINA_SERVICE_NAME)).toBe("SERVING");
  });

  it("lists KasminaService and health through reflection", async () => {
    const services = await reflectionServices(server.address);
    expect(services).toContain("esper.kasmina.v1.KasminaService");
    expect(services).toContain("grpc.health.v1.Health");
  });

  it("answers UNIMPLEMENTED for an RPC whose implementation has not landed", async () => {
    const client = kasminaClient(server.address);
    await expect(call(client, client.updateEpoch, { epoch: 1 })).rejects.toMatchObject({
      code: status.UNIMPLEMENTED,
      details: expect.stringContaining("UpdateEpoch"),
    });
    client.close();
  });

  it("maps a domain error to its status and hides internal errors behind INTERNAL", async () => {
    const client = kasminaClient(server.address);
    await expect(call(client, client.exportSeedStates, {})).rejects.toMatchObject({
      code: status.NOT_FOUND,
      details: "seed 'x' is not managed",
    });
    const internal = await call(client, client.getStatus, {}).catch((e: unknown) => e);
    expect(internal).toMatchObject({ code: status.INTERNAL });
    expect(JSON.stringify(internal)).not.toContain("secret internal detail");
    expect(logs.join("\n")).toContain("secret internal detail");
    client.close();
  });

  it("answers INVALID_ARGUMENT for bytes that are not a protobuf message", async () => {
    const client = kasminaClient(server.address);
    const raw = await new Promise<unknown>((resolve) => {
      // 0x0a 0xff: field 1, length-delimited, with a length running past the end.
      client.makeUnaryRequest(
        "/esper.kasmina.v1.KasminaService/GetStatus",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0xff, 0x01]),
        new Metadata(),
        (error) => resolve(error),
      );
    });
    expect(raw).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("malformed GetStatus request") });
    client.close();
  });

  it("turns NOT_SERVING while draining", async () => {
    const other = await startServer({ config: baseConfig, api: unimplementedApi(), metrics: noopMetrics, log: () => undefined });
    other.setServing(false);
    expect(await healthStatus(other.address)).toBe("NOT_SERVING");
    other.setServing(true);
    expect(await healthStatus(other.address)).toBe("SERVING");
    await other.shutdown(1000);
  });
});

describe("HTTP/2 flow control", () => {
  it("advertises a 16 MiB stream window, so large gradient uploads do not stall on 64 KiB", async () => {
    const server = await startServer({ config: baseConfig, api: unimplementedApi(), metrics: noopMetrics, log: () => undefined });
    const session = connect(`http://${server.address}`);
    const settings = await new Promise<{ initialWindowSize?: number }>((resolve, reject) => {
      session.on("error", reject);
      // The server's second SETTINGS frame carries the widened window.
      session.on("remoteSettings", (s) => {
        if ((s.initialWindowSize ?? 0) > 65_535) resolve(s);
      });
      setTimeout(() => resolve(session.remoteSettings), 2000);
    });
    expect(settings.initialWindowSize).toBe(FLOW_CONTROL_WINDOW);
    session.close();
    await server.shutdown(1000);
  });
});

describe("message size limit", () => {
  it("answers RESOURCE_EXHAUSTED for a request over KASMINA_MAX_MESSAGE_BYTES", async () => {
    const api = unimplementedApi();
    api.registerHost = (request) => ({ parameterCount: request.parameters.length });
    const server = await startServer({ config: { ...baseConfig, maxMessageBytes: 4096 }, api, metrics: noopMetrics, log: () => undefined });
    const client = kasminaClient(server.address);
    const parameters = Array.from({ length: 400 }, (_, i) => ({ key: `layer.${i}.weight`, shape: [64, 64], trainable: true, elementBytes: 4 }));
    await expect(call(client, client.registerHost, { parameters })).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    await expect(call(client, client.registerHost, { parameters: parameters.slice(0, 2) })).resolves.toEqual({ parameterCount: 2 });
    client.close();
    await server.shutdown(1000);
  });
});

describe("bearer token", () => {
  it("refuses calls without the token with UNAUTHENTICATED and accepts the right one", async () => {
    const api = unimplementedApi();
    api.exportSeedStates = () => ({ seeds: [], currentEpoch: 7 });
    const server = await startServer({
      config: { ...baseConfig, authToken: "tok-123" },
      api,
      metrics: noopMetrics,
      log: () => undefined,
    });
    const client = kasminaClient(server.address);
    await expect(call(client, client.exportSeedStates, {})).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const wrong = new Metadata();
    wrong.set("authorization", "Bearer nope");
    await expect(call(client, client.exportSeedStates, {}, wrong)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const right = new Metadata();
    right.set("authorization", "Bearer tok-123");
    await expect(call(client, client.exportSeedStates, {}, right)).resolves.toMatchObject({ currentEpoch: 7 });
    // Health stays open for probes.
    expect(await healthStatus(server.address)).toBe("SERVING");
    client.close();
    await server.shutdown(1000);
  });
});
