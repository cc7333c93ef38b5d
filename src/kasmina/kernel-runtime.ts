// The kernel runtime port (spec §8): blueprint id → kernel. A kernel here is a descriptor of its
// parameters and artifact, not an executable model: the trainer loads the weights itself.

export interface KernelParameter {
  readonly name: string;
  readonly shape: readonly number[];
  readonly trainable: boolean;
  readonly elementBytes: number;
}

export interface Kernel {
  readonly blueprintId: string;
  readonly artifactRef: string;
  readonly checksum: string;
  readonly parameters: readonly KernelParameter[];
}

export interface FetchedKernel {
  readonly kernel: Kernel;
  /** Latency the runtime reports; when absent the manager's measured time is used. */
  readonly latencyMs?: number;
}

export interface KernelRuntime {
  /** Throws when the blueprint cannot be provided. */
  fetchKernel(blueprintId: string): FetchedKernel;
}

/** Stands in for a seed whose kernel could not be loaded, or that is paused: no parameters. */
export const IDENTITY_KERNEL: Kernel = Object.freeze({
  blueprintId: "identity",
  artifactRef: "",
  checksum: "",
  parameters: Object.freeze([]),
});

/** Parameter identities of a seed's kernel: the trainer instantiates the module per seed. */
export const kernelParameterKey = (seedId: string, parameter: KernelParameter): string => `${seedId}/${parameter.name}`;
