// The service surface as plain async functions; server.ts adapts them to grpc-js.
import type {
  AdvanceAlphaRequest,
  AdvanceAlphaResponse,
  ApplyCommandRequest,
  ApplyCommandResponse,
  DrainTelemetryRequest,
  DrainTelemetryResponse,
  ExportSeedStatesRequest,
  ExportSeedStatesResponse,
  FinalizeStepRequest,
  FinalizeStepResponse,
  GetIsolationStatsRequest,
  GetIsolationStatsResponse,
  GetProjectionRequest,
  GetProjectionResponse,
  GetRollbackPayloadRequest,
  GetRollbackPayloadResponse,
  GetStatusRequest,
  GetStatusResponse,
  RecordIsolationViolationRequest,
  RecordIsolationViolationResponse,
  RegisterHostRequest,
  RegisterHostResponse,
  RegisterTeacherRequest,
  RegisterTeacherResponse,
  ReportGradientsRequest,
  ReportGradientsResponse,
  ReportGradientSketchRequest,
  ReportGradientSketchResponse,
  UpdateEpochRequest,
  UpdateEpochResponse,
  WatchTelemetryRequest,
  WatchTelemetryResponse,
} from "../../generated/esper/kasmina/v1/kasmina.js";
import { KasminaError } from "../kasmina/errors.js";
import type { CallContext } from "./adapter.js";

type Unary<Req, Res> = (request: Req, context: CallContext) => Promise<Res> | Res;

export interface KasminaApi {
  applyCommand: Unary<ApplyCommandRequest, ApplyCommandResponse>;
  finalizeStep: Unary<FinalizeStepRequest, FinalizeStepResponse>;
  updateEpoch: Unary<UpdateEpochRequest, UpdateEpochResponse>;
  advanceAlpha: Unary<AdvanceAlphaRequest, AdvanceAlphaResponse>;
  exportSeedStates: Unary<ExportSeedStatesRequest, ExportSeedStatesResponse>;
  registerHost: Unary<RegisterHostRequest, RegisterHostResponse>;
  registerTeacher: Unary<RegisterTeacherRequest, RegisterTeacherResponse>;
  reportGradients: (requests: AsyncIterable<ReportGradientsRequest>, context: CallContext) => Promise<ReportGradientsResponse>;
  getIsolationStats: Unary<GetIsolationStatsRequest, GetIsolationStatsResponse>;
  recordIsolationViolation: Unary<RecordIsolationViolationRequest, RecordIsolationViolationResponse>;
  getRollbackPayload: Unary<GetRollbackPayloadRequest, GetRollbackPayloadResponse>;
  drainTelemetry: Unary<DrainTelemetryRequest, DrainTelemetryResponse>;
  watchTelemetry: (
    request: WatchTelemetryRequest,
    write: (response: WatchTelemetryResponse) => Promise<void>,
    context: CallContext,
  ) => Promise<void>;
  getStatus: Unary<GetStatusRequest, GetStatusResponse>;
  getProjection: Unary<GetProjectionRequest, GetProjectionResponse>;
  reportGradientSketch: Unary<ReportGradientSketchRequest, ReportGradientSketchResponse>;
}

const unimplemented = (method: string) => (): never => {
  throw new KasminaError("unimplemented", `${method} is not implemented yet`);
};

/** Every RPC answers UNIMPLEMENTED; real implementations replace entries one by one. */
export function unimplementedApi(): KasminaApi {
  return {
    applyCommand: unimplemented("ApplyCommand"),
    finalizeStep: unimplemented("FinalizeStep"),
    updateEpoch: unimplemented("UpdateEpoch"),
    advanceAlpha: unimplemented("AdvanceAlpha"),
    exportSeedStates: unimplemented("ExportSeedStates"),
    registerHost: unimplemented("RegisterHost"),
    registerTeacher: unimplemented("RegisterTeacher"),
    reportGradients: async () => unimplemented("ReportGradients")(),
    getIsolationStats: unimplemented("GetIsolationStats"),
    recordIsolationViolation: unimplemented("RecordIsolationViolation"),
    getRollbackPayload: unimplemented("GetRollbackPayload"),
    drainTelemetry: unimplemented("DrainTelemetry"),
    watchTelemetry: async () => unimplemented("WatchTelemetry")(),
    getStatus: unimplemented("GetStatus"),
    getProjection: unimplemented("GetProjection"),
    reportGradientSketch: unimplemented("ReportGradientSketch"),
  };
}
