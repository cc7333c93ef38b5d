// Ownership of parameters (spec §15.3): each trainable kernel parameter belongs to one seed;
// teacher parameters belong to nobody and may never be updated by a seed.

export class ParameterConflictError extends Error {
  constructor(parameter: string, owner: string) {
    super(`parameter ${parameter} already registered to ${owner}`);
    this.name = "ParameterConflictError";
  }
}

export class ParameterRegistry {
  private readonly owners = new Map<string, string>();
  private readonly bySeed = new Map<string, Set<string>>();
  private readonly teacher = new Set<string>();

  /** Throws on a parameter owned by another seed; parameters before it stay registered (as the original). */
  registerSeed(seedId: string, parameters: Iterable<string>): void {
    let owned = this.bySeed.get(seedId);
    if (owned === undefined) {
      owned = new Set();
      this.bySeed.set(seedId, owned);
    }
    for (const parameter of parameters) {
      const owner = this.owners.get(parameter);
      if (owner !== undefined && owner !== seedId) throw new ParameterConflictError(parameter, owner);
      this.owners.set(parameter, seedId);
      owned.add(parameter);
    }
  }

  deregisterSeed(seedId: string): void {
    for (const parameter of this.bySeed.get(seedId) ?? []) this.owners.delete(parameter);
    this.bySeed.delete(seedId);
  }

  registerTeacher(parameters: Iterable<string>): void {
    for (const parameter of parameters) this.teacher.add(parameter);
  }

  validateUpdate(seedId: string, parameters: Iterable<string>): boolean {
    for (const parameter of parameters) {
      if (this.teacher.has(parameter) || this.owners.get(parameter) !== seedId) return false;
    }
    return true;
  }

  /** Parameters a seed owns, in registration order (the state store keeps them with the seed). */
  parametersOf(seedId: string): string[] | undefined {
    const owned = this.bySeed.get(seedId);
    return owned === undefined ? undefined : [...owned];
  }

  teacherParameters(): string[] {
    return [...this.teacher];
  }

  /** Puts back a seed's ownership saved before a restart, without conflict checks (they passed then). */
  restoreSeed(seedId: string, parameters: readonly string[]): void {
    this.bySeed.set(seedId, new Set(parameters));
    for (const parameter of parameters) this.owners.set(parameter, seedId);
  }

  ownerOf(parameter: string): string | undefined {
    return this.owners.get(parameter);
  }
}
