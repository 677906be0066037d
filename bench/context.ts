/** What every phase gets from run.ts. */
import type { KubeConfig } from "@kubernetes/client-node";
import type { RecordingBackend } from "./backend.ts";
import type { BenchConfig } from "./config.ts";

export interface PhaseContext {
  readonly config: BenchConfig;
  readonly kubeConfig: KubeConfig;
  readonly kubeconfigPath: string;
  /** Aborted on the phase's timeout or Ctrl-C. */
  readonly signal: AbortSignal;
  readonly backend: RecordingBackend;
  /** Bearer token of the dispatcher processes the bench starts. */
  readonly apiToken: string;
  log(line: string): void;
  /** A problem worth reporting that does not void the phase's figures. */
  warn(message: string): void;
  /** Creates a fresh bench namespace (deleted at the end of the run at the latest). */
  namespace(name: string, options?: { noPods?: boolean }): Promise<string>;
  /** Deletes a bench namespace; waits for it when later phases could feel its deletion. */
  dropNamespace(name: string): Promise<void>;
}
