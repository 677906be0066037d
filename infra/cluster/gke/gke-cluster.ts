import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { execKubeconfig } from "../kubeconfig.ts";

export interface GkeClusterArgs extends Pick<gcp.container.ClusterArgs, "network" | "subnetwork" | "deletionProtection"> {
  readonly clusterName: string;
  readonly project: string;
  /** A region: a regional control plane, nodes spread over its zones. */
  readonly region: string;
  readonly releaseChannel: "RAPID" | "REGULAR" | "STABLE";
  /** Cost labels for the cluster. */
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * A GKE control plane with Workload Identity, Dataplane V2 (which enforces the
 * trainers' NetworkPolicy) and a least-privilege service account for its nodes.
 * Node pools are separate components; the default pool is removed.
 */
export class GkeCluster extends pulumi.ComponentResource {
  readonly cluster: gcp.container.Cluster;
  /** Service account of every node pool's VMs. */
  readonly nodeServiceAccount: gcp.serviceaccount.Account;
  /** Authenticates through gke-gcloud-auth-plugin with the caller's gcloud credentials; a secret. */
  readonly kubeconfig: pulumi.Output<string>;

  constructor(name: string, args: GkeClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:cluster:GkeCluster", name, {}, opts);
    const created = createGkeCluster(name, args, this);
    this.cluster = created.cluster;
    this.nodeServiceAccount = created.nodeServiceAccount;
    this.kubeconfig = created.kubeconfig;
    this.registerOutputs({ clusterName: this.cluster.name, kubeconfig: this.kubeconfig });
  }
}

function createGkeCluster(name: string, args: GkeClusterArgs, parent: pulumi.Resource) {
  const opts = { parent };
  const nodeServiceAccount = new gcp.serviceaccount.Account(
    `${name}-nodes`,
    {
      project: args.project,
      accountId: `${args.clusterName}-nodes`.slice(0, 30).replace(/-+$/, ""),
      displayName: `Nodes of GKE cluster ${args.clusterName}`,
    },
    opts,
  );
  // Logs, metrics and image pulls; not the broad default compute service account.
  new gcp.projects.IAMMember(
    `${name}-nodes`,
    {
      project: args.project,
      role: "roles/container.defaultNodeServiceAccount",
      member: pulumi.interpolate`serviceAccount:${nodeServiceAccount.email}`,
    },
    opts,
  );

  const cluster = new gcp.container.Cluster(
    name,
    {
      name: args.clusterName,
      project: args.project,
      location: args.region,
      network: args.network,
      subnetwork: args.subnetwork,
      removeDefaultNodePool: true,
      initialNodeCount: 1,
      releaseChannel: { channel: args.releaseChannel },
      workloadIdentityConfig: { workloadPool: `${args.project}.svc.id.goog` },
      networkingMode: "VPC_NATIVE",
      ipAllocationPolicy: {},
      datapathProvider: "ADVANCED_DATAPATH",
      resourceLabels: args.labels,
      deletionProtection: args.deletionProtection,
    },
    opts,
  );

  const kubeconfig = execKubeconfig({
    name: cluster.name,
    server: pulumi.interpolate`https://${cluster.endpoint}`,
    certificateAuthorityData: cluster.masterAuth.clusterCaCertificate,
    exec: { command: "gke-gcloud-auth-plugin", args: [] },
  });
  return { cluster, nodeServiceAccount, kubeconfig };
}
