/**
 * One replica at a time delivers status callbacks: a coordination.k8s.io Lease, taken
 * and renewed with optimistic concurrency (a write with a stale resourceVersion loses).
 * A holder that cannot renew within the lease duration steps down by itself, so two
 * replicas never both believe they lead for longer than clock skew allows.
 */
import { ApiException, CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from "@kubernetes/client-node";

/** The Lease the dispatcher's Role lets it get, create and update. */
export const CALLBACK_LEASE_NAME = "training-dispatcher-callbacks";

export interface LeaderElectionProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** This replica, e.g. the pod name. */
  readonly identity: string;
  /** @default 15 */
  readonly leaseSeconds?: number;
  /** @default 5 */
  readonly renewSeconds?: number;
  readonly onChange: (leading: boolean) => void;
}

export class LeaderElection {
  private readonly props: Required<LeaderElectionProps>;
  private readonly api: CoordinationV1Api;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  /** When this replica last renewed successfully. */
  private renewedAt = 0;
  private stopped = false;

  constructor(props: LeaderElectionProps) {
    this.props = { leaseSeconds: 15, renewSeconds: 5, ...props };
    this.api = props.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    void this.tick();
  }

  /** Steps down and gives the lease back at once, so a successor need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.set(false);
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity === this.props.identity) {
        await this.api.replaceNamespacedLease({
          name: CALLBACK_LEASE_NAME,
          namespace: this.props.namespace,
          body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, renewTime: undefined } },
        });
      }
    } catch {
      // It expires by itself.
    }
  }

  private async tick(): Promise<void> {
    try {
      this.set(await this.acquireOrRenew());
    } catch {
      // The API server is away: keep leading only while the lease cannot have expired.
      if (this.leading && Date.now() - this.renewedAt > this.props.leaseSeconds * 1000) this.set(false);
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.props.renewSeconds * 1000);
  }

  private set(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.props.onChange(leading);
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: CALLBACK_LEASE_NAME, namespace: this.props.namespace });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  private async acquireOrRenew(): Promise<boolean> {
    const now = new V1MicroTime();
    const { identity, leaseSeconds, namespace } = this.props;
    const lease = await this.read();
    const mine = { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, renewTime: now };
    try {
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace,
          body: { metadata: { name: CALLBACK_LEASE_NAME, namespace }, spec: { ...mine, acquireTime: now, leaseTransitions: 0 } },
        });
      } else {
        const spec = lease.spec ?? {};
        const held = spec.holderIdentity !== undefined && spec.holderIdentity !== identity;
        const expires = new Date(spec.renewTime ?? 0).getTime() + (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
        if (held && expires > Date.now()) return false;
        const taking = spec.holderIdentity !== identity;
        await this.api.replaceNamespacedLease({
          name: CALLBACK_LEASE_NAME,
          namespace,
          body: {
            ...lease,
            spec: {
              ...spec,
              ...mine,
              ...(taking && { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
            },
          },
        });
      }
    } catch (error) {
      // Another replica wrote first (409 on create or on a stale resourceVersion): it leads.
      if (error instanceof ApiException && error.code === 409) return false;
      throw error;
    }
    this.renewedAt = Date.now();
    return true;
  }
}
