// Seed lifecycle stages and the allowed transitions (spec §3.1).
import { SeedLifecycleStage as Stage, seedLifecycleStageToJSON } from "../leyline.js";

const ALLOWED: ReadonlyMap<Stage, readonly Stage[]> = new Map([
  [Stage.SEED_STAGE_UNKNOWN, [Stage.SEED_STAGE_DORMANT]],
  [Stage.SEED_STAGE_DORMANT, [Stage.SEED_STAGE_GERMINATED, Stage.SEED_STAGE_TERMINATED]],
  [Stage.SEED_STAGE_GERMINATED, [Stage.SEED_STAGE_TRAINING, Stage.SEED_STAGE_CULLED]],
  [Stage.SEED_STAGE_TRAINING, [Stage.SEED_STAGE_BLENDING, Stage.SEED_STAGE_CULLED]],
  [Stage.SEED_STAGE_BLENDING, [Stage.SEED_STAGE_SHADOWING, Stage.SEED_STAGE_CULLED]],
  [Stage.SEED_STAGE_SHADOWING, [Stage.SEED_STAGE_PROBATIONARY, Stage.SEED_STAGE_CULLED]],
  [Stage.SEED_STAGE_PROBATIONARY, [Stage.SEED_STAGE_FOSSILIZED, Stage.SEED_STAGE_CULLED]],
  [Stage.SEED_STAGE_FOSSILIZED, [Stage.SEED_STAGE_TERMINATED]],
  [Stage.SEED_STAGE_CULLED, [Stage.SEED_STAGE_EMBARGOED]],
  [Stage.SEED_STAGE_EMBARGOED, [Stage.SEED_STAGE_RESETTING]],
  [Stage.SEED_STAGE_RESETTING, [Stage.SEED_STAGE_DORMANT]],
  [Stage.SEED_STAGE_TERMINATED, []],
]);

export const stageName = (stage: Stage): string => seedLifecycleStageToJSON(stage);

export function canTransition(from: Stage, to: Stage): boolean {
  return ALLOWED.get(from)?.includes(to) ?? false;
}

/** Stages in which isolation collects gradients (spec §13.4). */
export const isCollectingStage = (stage: Stage): boolean =>
  stage === Stage.SEED_STAGE_TRAINING || stage === Stage.SEED_STAGE_BLENDING;

/** DESIGN decision 7: blending is allowed only while the seed's output is actually blended in. */
export const blendAllowed = (stage: Stage): boolean =>
  stage === Stage.SEED_STAGE_BLENDING ||
  stage === Stage.SEED_STAGE_SHADOWING ||
  stage === Stage.SEED_STAGE_PROBATIONARY ||
  stage === Stage.SEED_STAGE_FOSSILIZED;
